"""The production profile plus one trivial endpoint, /bench/ping/, for the benchmarks."""

from __future__ import annotations

from config.settings import *  # noqa: F403

ROOT_URLCONF = "bench.load.urls"

# The fault benchmark kills a Celery worker mid-task: its unacknowledged task comes back
# once the visibility timeout (2 x CELERY_TASK_TIME_LIMIT, shortened there) has passed and
# a sweep finds it. Sweep every 2 s instead of kombu's ~100 s so that the run stays short.
if envstr("MOSAIC_BENCH_FAST_RESTORE"):  # noqa: F405
    CELERY_BROKER_TRANSPORT_OPTIONS = {  # noqa: F405
        **CELERY_BROKER_TRANSPORT_OPTIONS,  # noqa: F405
        "unacked_restore_interval": 2,
        "unacked_restore_throttle": 1,
    }
