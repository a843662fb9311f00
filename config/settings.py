"""Mosaic settings.

The embedded default (SQLite, a Celery worker on kombu's filesystem transport, files on
local disk) needs no environment variable at all. Production sets DJANGO_ENV=production and the variables
named below; every value is read through config.env, which refuses a malformed one.
"""

from __future__ import annotations

from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from config.env import envbool, envint, envlist, envstr
from config.openapi import PATH_CONVERTERS

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(envstr("MOSAIC_VAR_DIR", str(BASE_DIR / "var")))

DJANGO_ENV = envstr("DJANGO_ENV", "development")
if DJANGO_ENV not in {"development", "production", "test"}:
    raise ImproperlyConfigured(f"DJANGO_ENV={DJANGO_ENV!r}: expected development, production or test")
PRODUCTION = DJANGO_ENV == "production"

SECRET_KEY = envstr("DJANGO_SECRET_KEY")
if not SECRET_KEY:
    if PRODUCTION:
        raise ImproperlyConfigured(
            "DJANGO_ENV=production needs DJANGO_SECRET_KEY: set it to a long random string, "
            'for example the output of: python -c "import secrets; print(secrets.token_urlsafe(50))"'
        )
    SECRET_KEY = "dev-only-insecure-key-never-used-in-production-0123456789abcdefghij"
elif PRODUCTION:
    # The placeholder of deploy/env.example, copied unchanged, is public: anyone could sign
    # sessions and CSRF tokens with it. Django's own deploy check asks for 50 characters.
    if SECRET_KEY.startswith(("change-me", "dev-only-insecure-key")) or len(SECRET_KEY) < 50:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY is the placeholder of deploy/env.example or shorter than 50 characters: "
            'set it to the output of: python -c "import secrets; print(secrets.token_urlsafe(50))"'
        )

DEBUG = envbool("DJANGO_DEBUG", default=not PRODUCTION)
ALLOWED_HOSTS = envlist("DJANGO_ALLOWED_HOSTS", default=[] if PRODUCTION else ["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = envlist("DJANGO_CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "axes",
    "studies",
    "raters",
    "analysis",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",
    "csp.middleware.CSPMiddleware",
]

# Every page: scripts and styles from this site only, no inline script anywhere (inline
# style attributes stay allowed: OpenSeadragon and the admin set them), nothing framed.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:", "blob:"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

# Logins (the admin's): django-axes refuses an address for an hour after
# MOSAIC_LOGIN_FAILURE_LIMIT wrong passwords, whatever comes after them.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = envint("MOSAIC_LOGIN_FAILURE_LIMIT", 10)
AXES_COOLOFF_TIME = 1  # hour
AXES_LOCKOUT_PARAMETERS = ["ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False

ROOT_URLCONF = "config.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "config.wsgi.application"

# SQLite is the embedded default: WAL lets raters read while one writer commits, and
# IMMEDIATE transactions take the write lock up front so two concurrent votes queue on
# the busy timeout instead of failing with "database is locked" halfway through.
_SQLITE_OPTIONS = {
    "transaction_mode": "IMMEDIATE",
    "timeout": envint("MOSAIC_SQLITE_TIMEOUT", 20),
    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
}
DATABASE_URL = envstr("DATABASE_URL")
if DATABASE_URL:
    DATABASES = {
        "default": dj_database_url.parse(
            DATABASE_URL, conn_max_age=envint("DATABASE_CONN_MAX_AGE", 60), conn_health_checks=True
        )
    }
else:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": VAR_DIR / "db.sqlite3",
        }
    }
# The same options whether SQLite is the default or named by a sqlite:// DATABASE_URL.
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"].setdefault("OPTIONS", {}).update(_SQLITE_OPTIONS)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]
# OpenSeadragon arrives from npm; node_modules is served as a static source so the
# viewer needs no copy step.
NODE_MODULES_DIR = BASE_DIR / "node_modules"
if NODE_MODULES_DIR.is_dir():
    STATICFILES_DIRS.append(("vendor", NODE_MODULES_DIR))

MEDIA_ROOT = Path(envstr("MOSAIC_MEDIA_ROOT", str(VAR_DIR / "media")))
MEDIA_URL = "media/"
# Large uploads are written here while the request arrives, on the media file system, so
# that saving one for its job (uploads/) is a rename, not a copy of gigabytes.
FILE_UPLOAD_TEMP_DIR = Path(envstr("MOSAIC_UPLOAD_TEMP_DIR", str(MEDIA_ROOT / "uploads" / "incoming")))
FILE_UPLOAD_TEMP_DIR.mkdir(parents=True, exist_ok=True)

# Uploads: a challenge zip holds full-resolution PNGs, so the request body limit is
# large, but every image is checked against a pixel limit before it is decoded.
DATA_UPLOAD_MAX_MEMORY_SIZE = envint("MOSAIC_MAX_REQUEST_BYTES", 10 * 1024 * 1024)
FILE_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
MOSAIC_MAX_UPLOAD_BYTES = envint("MOSAIC_MAX_UPLOAD_BYTES", 4 * 1024 * 1024 * 1024)
MOSAIC_MAX_PIXELS = envint("MOSAIC_MAX_PIXELS", 60_000_000)
# Tile pyramids are built with lossless WebP tiles (a third fewer bytes than PNG on
# photographs, decoded by every supported browser), or PNG; pyramids built either way
# are served, whatever this says now.
MOSAIC_TILE_FORMAT = envstr("MOSAIC_TILE_FORMAT", "webp").strip().lower()
if MOSAIC_TILE_FORMAT not in ("webp", "png"):
    raise ImproperlyConfigured(f"MOSAIC_TILE_FORMAT={MOSAIC_TILE_FORMAT!r}: expected webp or png")

# Celery: long work (imports, PSNR/SSIM, tile pyramids, analysis runs) runs on a worker in
# every configuration, never inside a request. Without CELERY_BROKER_URL the broker is
# kombu's filesystem transport: one file per message in folders under the var dir, so the
# embedded default needs no server process (`make demo` starts one worker beside the web
# server; `celery -A config worker` starts one by hand).
_BROKER = envstr("CELERY_BROKER_URL")
CELERY_TASK_ALWAYS_EAGER = False
CELERY_BROKER_URL = _BROKER or "filesystem://"
MOSAIC_BROKER_DIR = Path(envstr("MOSAIC_BROKER_DIR", str(VAR_DIR / "broker")))
CELERY_TASK_EAGER_PROPAGATES = False
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = envint("CELERY_TASK_TIME_LIMIT", 15 * 60)
CELERY_TASK_SOFT_TIME_LIMIT = envint("CELERY_TASK_SOFT_TIME_LIMIT", 14 * 60)
# Late acknowledgement redelivers a task whose worker died; the visibility timeout must
# exceed the longest task or a healthy slow task would run twice.
# An upload job (studies.tasks.job_run) checks and stores every file of an import: a
# challenge of 20 teams x 50 scenes at 12 MP takes far longer than one image's task.
MOSAIC_JOB_TIME_LIMIT = envint("MOSAIC_JOB_TIME_LIMIT", 4 * 3600)
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": max(CELERY_TASK_TIME_LIMIT, MOSAIC_JOB_TIME_LIMIT) * 2}
if not _BROKER:
    for _folder in ("queue", "control"):
        (MOSAIC_BROKER_DIR / _folder).mkdir(parents=True, exist_ok=True)
    # Producers write and the worker reads the same folder; nothing is kept once consumed.
    CELERY_BROKER_TRANSPORT_OPTIONS |= {
        "data_folder_in": str(MOSAIC_BROKER_DIR / "queue"),
        "data_folder_out": str(MOSAIC_BROKER_DIR / "queue"),
        "control_folder": str(MOSAIC_BROKER_DIR / "control"),
        "store_processed": False,
        "polling_interval": 0.5,
    }
CELERY_TASK_IGNORE_RESULT = True
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
# A worker started before Redis keeps retrying instead of exiting; a task whose worker
# lost the broker connection is cancelled and, being acknowledged late, redelivered.
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = True

_REDIS_CACHE = envstr("CACHE_URL") or _BROKER
if _REDIS_CACHE.startswith("redis"):
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": _REDIS_CACHE}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# The client address of a login, as the throttles read it (see NUM_PROXIES below).
AXES_IPWARE_PROXY_COUNT = envint("MOSAIC_NUM_PROXIES", 1 if PRODUCTION else 0)
AXES_IPWARE_META_PRECEDENCE_ORDER = (
    ["HTTP_X_FORWARDED_FOR", "REMOTE_ADDR"] if AXES_IPWARE_PROXY_COUNT else ["REMOTE_ADDR"]
)

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    "DEFAULT_PARSER_CLASSES": [
        "config.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    # Client addresses: behind nginx the address is the last hop nginx
    # appends to X-Forwarded-For (MOSAIC_NUM_PROXIES=1, the production default); without
    # a proxy the header is ignored, so a client cannot choose its own bucket.
    "NUM_PROXIES": AXES_IPWARE_PROXY_COUNT,
    # Session starts per client address, high enough for a class behind one address; votes
    # and a session's other requests per session.
    "DEFAULT_THROTTLE_RATES": {
        "session_start": envstr("MOSAIC_THROTTLE_SESSION_START", "120/minute"),
        "vote": envstr("MOSAIC_THROTTLE_VOTE", "120/minute"),
        "session": envstr("MOSAIC_THROTTLE_SESSION", "240/minute"),
    },
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Mosaic API",
    "DESCRIPTION": "Rater and organizer API of Mosaic perceptual user studies.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "PATH_CONVERTER_OVERRIDES": PATH_CONVERTERS,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "config.openapi.add_common_error_responses",
    ],
}

LOGIN_URL = "admin:login"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": envstr("MOSAIC_LOG_LEVEL", "INFO")},
}

# Media for raters: served by Django in the embedded default, by nginx through
# X-Accel-Redirect in production (the same opaque URLs either way).
MOSAIC_MEDIA_ACCEL_PREFIX = envstr("MOSAIC_MEDIA_ACCEL_PREFIX")

if PRODUCTION:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = envbool("DJANGO_SECURE_SSL_REDIRECT", True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = envint("DJANGO_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    if not ALLOWED_HOSTS:
        raise ImproperlyConfigured("DJANGO_ENV=production needs DJANGO_ALLOWED_HOSTS (comma-separated)")

# A session with no vote for this long is abandoned: its unanswered trials go to others.
MOSAIC_SESSION_TIMEOUT_MINUTES = envint("MOSAIC_SESSION_TIMEOUT_MINUTES", 60)

# Adaptive allocation and self-stopping read the live decision from the cache; it is
# recomputed from the stored votes at most this often per study (raters.allocation).
MOSAIC_ALLOCATION_REFRESH_SECONDS = envint("MOSAIC_ALLOCATION_REFRESH_SECONDS", 5)
# How often a study's Jobs page in the admin asks for its progress while work is running.
MOSAIC_JOBS_REFRESH_MS = envint("MOSAIC_JOBS_REFRESH_MS", 1000)
# How often the study page reloads its live decision figure.
MOSAIC_DECISION_REFRESH_SECONDS = envint("MOSAIC_DECISION_REFRESH_SECONDS", 10)
