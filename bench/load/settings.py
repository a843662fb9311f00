"""The production profile plus one trivial endpoint, /bench/ping/, for the benchmarks."""

from __future__ import annotations

from config.settings import *  # noqa: F403

ROOT_URLCONF = "bench.load.urls"
