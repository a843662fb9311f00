"""CPU a web worker spends starting, before its first request, side by side in one run.

    .venv/bin/python bench/load/boot.py [--runs 5]

gunicorn starts each worker by importing config.wsgi (the production profile, as
bench/load/run.py runs it), and the first request loads every URL and so every view
module. A worker starts again after each 5000 requests (max_requests) and after a crash,
on the machine that serves the raters. This runs, in fresh interpreters and alternating:
  - "web worker": config.wsgi and every URL: what a worker loads now;
  - "with analysis": the same, then the analysis and imaging modules (pandas, SciPy,
    statsmodels, matplotlib, scikit-image, pyvips): what an organizer's first results page
    or a Celery task adds, and what every worker loaded before they were left to the views
    and tasks that use them.
Prints the median CPU time (user + system) of each and their ratio.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.load.stack import REPO, Stack  # noqa: E402

WEB = "import config.wsgi; from django.urls import get_resolver; get_resolver().url_patterns"
ANALYSIS = "import analysis.services, analysis.exports, analysis.plots, studies.metrics, pyvips"
KINDS = {"web worker": WEB, "with analysis": f"{WEB}; {ANALYSIS}"}


def child_cpu(code: str, env: dict[str, str]) -> float:
    """CPU seconds (user + system) of a fresh interpreter running ``code``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, check=True, timeout=120)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="starts of each kind, alternating")
    args = parser.parse_args(argv)
    seconds: dict[str, list[float]] = {kind: [] for kind in KINDS}
    # The environment gunicorn runs with in bench/load/run.py; nothing is started: importing
    # contacts no database or broker.
    with Stack() as stack:
        env = stack.env()
        child_cpu(KINDS["with analysis"], env)  # not counted: fills the file cache
        for _ in range(args.runs):
            for kind, code in KINDS.items():
                seconds[kind].append(child_cpu(code, env))
    medians = {kind: statistics.median(values) for kind, values in seconds.items()}
    print(f"CPU to start, median of {args.runs} fresh interpreters each, alternating:")
    for kind, median in medians.items():
        print(f"  {kind:<16}{median:>7.2f} s   (runs: {', '.join(f'{v:.2f}' for v in seconds[kind])})")
    print(f"web worker / with analysis: {medians['web worker'] / medians['with analysis']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
