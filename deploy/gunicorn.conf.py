"""gunicorn settings for Mosaic: `gunicorn -c deploy/gunicorn.conf.py config.wsgi`.

Every value can be overridden from the environment (GUNICORN_*), so the same file serves
one machine and a fleet of web machines behind a load balancer.
"""

from __future__ import annotations

import multiprocessing
import os

# Loopback by default: nginx on the same machine is the only client. A web machine behind
# a separate proxy sets GUNICORN_BIND=0.0.0.0:8000 (and MOSAIC_NUM_PROXIES accordingly).
bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
# Rater requests are short and wait on PostgreSQL: synchronous workers, a few per core.
workers = int(os.environ.get("GUNICORN_WORKERS", multiprocessing.cpu_count() * 2 + 1))
threads = int(os.environ.get("GUNICORN_THREADS", 1))
# An admin upload of up to 4 GB reaches a worker whole (nginx buffers the body), is written
# to FILE_UPLOAD_TEMP_DIR and renamed into uploads/ for its Celery job; checking and
# importing it never happens in the request. Reading 4 GB over loopback and writing it to
# disk takes about 20-60 s, so the timeout leaves room for it. nginx's proxy_read_timeout
# (deploy/nginx/mosaic.conf) is longer than this, so a request cut short here is reported
# by gunicorn, not hidden by nginx.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", 120))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", 30))
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", 5))
# Recycle workers now and then so that a slow leak never takes the site down; jitter keeps
# them from restarting all at once.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", 5000))
max_requests_jitter = int(os.environ.get("GUNICORN_MAX_REQUESTS_JITTER", 500))
forwarded_allow_ips = os.environ.get("GUNICORN_FORWARDED_ALLOW_IPS", "127.0.0.1")
accesslog = os.environ.get("GUNICORN_ACCESSLOG", "-") or None  # empty: no access log
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOGLEVEL", "info")
proc_name = "mosaic-web"
