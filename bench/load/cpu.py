"""CPU per rater request, in-process, beside the trivial endpoint's, in one run.

    .venv/bin/python bench/load/cpu.py [--sessions 60]

Starts PostgreSQL and Redis on loopback (as bench/load/run.py does), builds the same study,
then runs whole rater sessions through Django's test client in this process, with no HTTP
server and no other client competing for the CPU. Prints the median CPU time of each kind
of request in this process and its ratio to the trivial endpoint's (/bench/ping/: same
middleware, DRF authentication and one query), and beside it the mean CPU time PostgreSQL
and Redis spent on it (read from /proc around each request: the kernel counts in ticks of
10 ms, so only the mean over many requests means anything). Where run.py tells how the
whole stack holds up, this tells which request costs what, so that a change to one of them
can be judged alone.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import secrets  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections import defaultdict  # noqa: E402

from bench.load.stack import Stack  # noqa: E402

SLUG = "bench"
WARM_UP_SESSIONS = 5


SERVERS = ("PostgreSQL", "Redis")


def run_sessions(count: int, stack: Stack) -> tuple[dict[str, list[float]], dict[str, dict[str, float]]]:
    """CPU ms of this process per request, by kind; and the CPU ms each of SERVERS spent
    in all requests of a kind together (read outside this process's measured time)."""
    from django.test import Client

    csrf = secrets.token_hex(16)
    cpu_ms: dict[str, list[float]] = defaultdict(list)
    server_ms: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))

    def call(client: Client, name: str, method: str, path: str, number: int, body: object = None):
        measured = number >= WARM_UP_SESSIONS
        before = stack.cpu_parts() if measured else {}
        start = time.process_time()
        response = getattr(client, method)(
            path,
            data=json.dumps(body) if body is not None else None,
            content_type="application/json",
            headers={"X-CSRFToken": csrf, "X-Forwarded-For": f"10.0.{number // 250}.{number % 250 + 1}"},
        )
        elapsed = (time.process_time() - start) * 1000
        if response.status_code not in (200, 201):
            raise RuntimeError(f"{name}: {response.status_code} {response.content[:300]!r}")
        if measured:
            cpu_ms[name].append(elapsed)
            after = stack.cpu_parts()
            for server in SERVERS:
                server_ms[name][server] += (after[server] - before[server]) * 1000
        return response

    for number in range(count + WARM_UP_SESSIONS):
        client = Client(enforce_csrf_checks=True)
        client.cookies["csrftoken"] = csrf
        pid = f"cpu-{number}"
        call(client, "trivial", "get", "/bench/ping/", number)
        call(client, "study page", "get", f"/s/{SLUG}/?PROLIFIC_PID={pid}", number)
        started = call(
            client,
            "start session",
            "post",
            f"/api/studies/{SLUG}/sessions/",
            number,
            {"PROLIFIC_PID": pid, "STUDY_ID": SLUG, "SESSION_ID": pid},
        )
        token = started.json()["token"]
        while True:
            call(client, "trivial", "get", "/bench/ping/", number)
            trial = call(client, "next trial", "get", f"/api/sessions/{token}/next/", number).json()["trial"]
            if trial is None:
                break
            call(
                client,
                "submit vote",
                "post",
                f"/api/sessions/{token}/trials/{trial['token']}/rating/",
                number,
                {"score": 3, "response_ms": 1500},
            )
    return cpu_ms, server_ms


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=60)
    parser.add_argument("--trials", type=int, default=10, help="rated trials per session (plus 3 training)")
    args = parser.parse_args(argv)
    with Stack() as stack:
        stack.start_database_with_study(SLUG, scenes=6, trials_per_session=args.trials)
        os.environ.update(stack.env(DJANGO_ALLOWED_HOSTS="127.0.0.1,testserver"))
        import django

        django.setup()
        cpu_ms, server_ms = run_sessions(args.sessions, stack)
    trivial = statistics.median(cpu_ms["trivial"])
    print(f"{args.sessions} sessions of {args.trials} + 3 trials, CPU per request:")
    print("  (this process: median ms and its ratio to the trivial endpoint's; PostgreSQL and Redis: mean ms)")
    print(f"  {'request':<16}{'n':>7}{'ms':>11}{'x trivial':>11}{'PostgreSQL ms':>15}{'Redis ms':>11}")
    for name in ("trivial", "study page", "start session", "next trial", "submit vote"):
        median, n = statistics.median(cpu_ms[name]), len(cpu_ms[name])
        print(
            f"  {name:<16}{n:>7}{median:>11.2f}{median / trivial:>11.2f}"
            f"{server_ms[name]['PostgreSQL'] / n:>15.2f}{server_ms[name]['Redis'] / n:>11.2f}"
        )
    session = sum(statistics.median(cpu_ms[name]) * len(cpu_ms[name]) for name in cpu_ms if name != "trivial")
    requests = sum(len(cpu_ms[name]) for name in cpu_ms if name != "trivial")
    print(f"  mean over a session's requests: {session / requests:.2f} ms, {session / requests / trivial:.2f}x trivial")
    database = sum(server_ms[name]["PostgreSQL"] for name in server_ms if name != "trivial") / requests
    database_trivial = server_ms["trivial"]["PostgreSQL"] / len(cpu_ms["trivial"])
    print(f"  PostgreSQL, mean over a session's requests: {database:.2f} ms, trivial {database_trivial:.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
