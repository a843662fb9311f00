"""Fault benchmark: the load benchmark's raters while things break.

    .venv/bin/python bench/faults/run.py [--raters 200] [--trials 10] [--timeout 300]

Same stack as bench/load/run.py plus a Celery worker (concurrency 1). While the raters
run their sessions:
  1. a second study is imported with large images, queueing PSNR/SSIM and tile tasks on
     the broker; once the worker has finished a few, it is killed (SIGKILL, whole process
     group) in the middle of the next one and started again, as systemd would;
  2. one gunicorn worker is killed (SIGKILL); the master starts a new one;
  3. PostgreSQL restarts (pg_ctl restart -m fast), dropping every connection.
Raters retry what failed (as the rating page does). Afterwards: no acknowledged vote
missing or doubled, every session complete, and the interrupted study's metrics and tile
pyramids complete. Prints what it did and what it found; exit status 1 on a failure.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402

import gevent  # noqa: E402

from bench.load import driver  # noqa: E402
from bench.load.run import prepare, print_latencies, rater_phase, verify  # noqa: E402
from bench.load.stack import Stack  # noqa: E402

METRICS_SLUG = "faults-metrics"
TIME_LIMIT_S = 20  # visibility timeout = 2 x 20 s: a killed worker's task comes back in ~40 s


def log(t0: float, message: str) -> None:
    print(f"[{time.monotonic() - t0:6.1f} s] {message}", flush=True)


def task_progress(stack: Stack) -> tuple[int, int, int, int]:
    """(metrics done, outputs, tiles done, assets) of the metrics study, read with psql."""
    outputs = (
        "FROM studies_output o JOIN studies_method m ON m.id = o.method_id "
        f"JOIN studies_study s ON s.id = m.study_id WHERE s.slug = '{METRICS_SLUG}'"
    )
    sql = (
        f"SELECT (SELECT count(*) FILTER (WHERE o.metric_status = 'done') {outputs}), (SELECT count(*) {outputs}), "
        "(SELECT count(*) FILTER (WHERE a.tile_status = 'done') FROM studies_imageasset a "
        f"WHERE a.id IN (SELECT o.image_id {outputs})), (SELECT count(*) {outputs})"
    )
    command = [
        str(stack.pg_bin / "psql"),
        "-h",
        "127.0.0.1",
        "-p",
        str(stack.pg_port),
        "-U",
        "postgres",
        "-d",
        "mosaic",
        "-At",
        "-F",
        " ",
        "-c",
        sql,
    ]
    if os.geteuid() == 0:
        command = ["runuser", "-u", "postgres", "--", *command]
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=10, check=True).stdout
        return tuple(int(v) for v in out.split())  # type: ignore[return-value]
    except (subprocess.SubprocessError, ValueError):
        return (0, 0, 0, 0)


def faults(stack: Stack, args: argparse.Namespace, t0: float, report: dict):
    expected_votes = args.raters * (args.trials + 3)

    def wait_votes(share: float, recorder: driver.Recorder) -> None:
        while len(recorder.votes) < share * expected_votes and recorder.completed < args.raters:
            gevent.sleep(0.1)

    def run(recorder: driver.Recorder) -> None:
        # 1. Celery worker killed during a metric task.
        stack.start_celery()
        log(t0, "Celery worker started on the queued tasks")
        while True:
            done, outputs, tiles, assets = task_progress(stack)
            if done + tiles >= 3 and done < outputs:
                break
            gevent.sleep(0.05)
        stack.kill_celery()
        report["celery_killed_at"] = {"metrics_done": done, "outputs": outputs, "tiles_done": tiles, "assets": assets}
        log(
            t0,
            f"killed the Celery worker (SIGKILL) with {done}/{outputs} metrics and {tiles}/{assets} tile "
            "pyramids done: one task was running",
        )
        gevent.sleep(1)
        stack.start_celery()
        log(t0, "Celery worker started again")

        # 2. A gunicorn worker killed.
        wait_votes(0.25, recorder)
        pids = stack.gunicorn_worker_pids()
        if pids:
            os.kill(pids[0], signal.SIGKILL)
            report["gunicorn_worker_killed"] = pids[0]
            log(t0, f"killed gunicorn worker {pids[0]} (SIGKILL) at {len(recorder.votes)} acknowledged votes")

        # 3. PostgreSQL restarted.
        wait_votes(0.55, recorder)
        started = time.monotonic()
        stack.restart_postgres()
        report["postgres_restart_s"] = round(time.monotonic() - started, 2)
        log(
            t0,
            f"restarted PostgreSQL (took {report['postgres_restart_s']} s) at {len(recorder.votes)} acknowledged votes",
        )

    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--raters", type=int, default=200)
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--scenes", type=int, default=6)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--timeout", type=float, default=300.0, help="bound of the rater phase, seconds")
    parser.add_argument("--task-timeout", type=float, default=180.0, help="bound of the wait for the tasks")
    args = parser.parse_args(argv)
    report: dict = {}
    t0 = time.monotonic()
    stack = Stack(gunicorn_workers=args.workers, celery_time_limit=TIME_LIMIT_S)
    os.environ["MOSAIC_BENCH_FAST_RESTORE"] = "1"  # read by bench/load/settings.py in every child
    with stack:
        prepare(stack, args)
        stack.script("bench/load/setup_study.py", METRICS_SLUG, "--scenes", "3", "--size", "900x600", "--no-open")
        log(t0, "imported a second study: its PSNR/SSIM and tile tasks wait on the broker, no worker yet")
        log(t0, f"{args.raters} raters start (Celery time limit {TIME_LIMIT_S} s)")
        recorder = rater_phase(stack, args, during=faults(stack, args, t0, report), cpu=False)
        log(t0, f"rater phase over: {recorder.completed}/{args.raters} sessions completed")
        deadline = time.monotonic() + args.task_timeout
        while True:
            done, outputs, tiles, assets = task_progress(stack)
            if (outputs and done == outputs and tiles == assets) or time.monotonic() > deadline:
                break
            time.sleep(1)
        log(t0, f"metrics study: {done}/{outputs} metrics, {tiles}/{assets} tile pyramids")
        checks = verify(stack, recorder, "--metrics-study", METRICS_SLUG)
        celery_log = (stack.work / "celery.log").read_text(errors="replace")

    print("\nrater API during the faults:")
    print_latencies(recorder, ["start session", "next trial", "submit vote"])
    print("faults: " + json.dumps(report))
    print("database checks: " + json.dumps(checks))
    print(
        f"celery log: {celery_log.count(' succeeded in ')} task successes for "
        f"{checks.get('metric_outputs', 0) + checks.get('tiles_expected', 0)} tasks queued"
    )
    errors = [line for line in celery_log.splitlines() if " ERROR/" in line or "Traceback" in line]
    for line in errors[:8]:
        print("  celery: " + line[:300])
    ok = bool(checks["ok"]) and len(report) == 3
    print(
        f"\nverdict: {'OK' if ok else 'FAILED'}: "
        f"{checks['missing']} acknowledged votes missing, {checks['doubled']} doubled, "
        f"{checks['wrong_score']} with another score, {checks['stored_not_acked']} stored but never acknowledged; "
        f"{checks['sessions_complete']}/{checks['sessions_expected']} sessions complete; interrupted study "
        f"{checks.get('metric_done')}/{checks.get('metric_outputs')} metrics, "
        f"{checks.get('tiles_done')}/{checks.get('tiles_expected')} tile pyramids"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
