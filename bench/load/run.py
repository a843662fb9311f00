"""Load benchmark: 200 simulated raters complete their sessions at once.

    .venv/bin/python bench/load/run.py [--raters 200] [--trials 10] [--rounds 3] [--think-ms 3000]
                                       [--timeout 300]

Starts PostgreSQL, Redis and gunicorn (deploy/gunicorn.conf.py, production profile) on
loopback, builds and opens a study, then in one run, --rounds times over:
  1. the trivial endpoint (/bench/ping/: same stack, one SELECT 1) under the same number
     of concurrent clients, for --baseline seconds;
  2. every rater's whole session (study page, start, next trial / submit vote until done),
     200 new raters each round;
and the trivial endpoint once more at the end, after an unmeasured warm-up of both. These
rounds run flat out (no pause between a rater's requests): they measure capacity. Then one
paced round of 200 more raters, each pausing about --think-ms before every vote as a person
looking at the images does, measures the latency raters see: flat out, 200 clients queue
behind each other and every request waits for the ones ahead of it (Little's law), so the
p99 target is judged on the paced round and the throughput target on the flat-out ones. Each
round's ratio is its rater throughput over the mean of the two trivial phases around it:
the machine is shared and its speed drifts by a quarter within a minute, so each rater
phase is compared with its neighbours and the verdict takes the median round. Each round
also shows how long its 200 starts took and its throughput once they were done, which tells
the burst of simultaneous starts from the rest; the verdict counts the whole round. Each phase
also reads the CPU time the whole stack spent per request (stack.cpu_parts), and each
round prints its ratio beside the throughput's: when both phases keep the machine busy the
two agree, which shows that what separates the phases is the CPU a request costs. Then it
checks from the database that each acknowledged vote is stored exactly once, that output
coverage differs by at most one, that no vote landed on a trial handed to another rater and
that each output's stored load matches its trials. Prints figures, ratios and a verdict;
exit status 1 when a correctness check fails. Everything stops within --timeout seconds per
phase.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import argparse  # noqa: E402
import json  # noqa: E402
import secrets  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

from bench.load import driver  # noqa: E402  (first: gevent monkey-patching)
from bench.load.stack import Stack  # noqa: E402

SLUG = "bench"
RATER_REQUESTS = ["study page", "start session", "next trial", "submit vote"]
P99_SUBMIT_TARGET_MS = 100.0
THROUGHPUT_TARGET = 0.5


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--raters", type=int, default=200)
    parser.add_argument("--trials", type=int, default=10, help="rated trials per session (plus 3 training)")
    parser.add_argument("--scenes", type=int, default=6)
    parser.add_argument("--baseline", type=float, default=6.0, help="seconds per trivial-endpoint phase")
    parser.add_argument("--rounds", type=int, default=3, help="rater phases, each between two trivial phases")
    parser.add_argument(
        "--think-ms", type=int, default=3000, help="mean pause before each vote in the paced round (0: no paced round)"
    )
    parser.add_argument("--workers", type=int, default=None, help="gunicorn workers")
    parser.add_argument("--timeout", type=float, default=300.0, help="bound of the rater phase, seconds")
    return parser.parse_args(argv)


def prepare(stack: Stack, args: argparse.Namespace) -> None:
    t0 = time.monotonic()
    stack.start_database_with_study(SLUG, scenes=args.scenes, trials_per_session=args.trials)
    stack.start_gunicorn()
    print(
        f"stack ready in {time.monotonic() - t0:.1f} s: gunicorn {stack.gunicorn_workers} workers at {stack.url}, "
        f"PostgreSQL :{stack.pg_port}, Redis :{stack.redis_port}"
    )


def ping_phase(stack: Stack, users: int, seconds: float) -> driver.Recorder:
    recorder = driver.Recorder()
    cls = driver.ping_class(recorder=recorder, deadline=time.monotonic() + seconds + 30)
    driver.run_users(
        cls,
        host=stack.url,
        users=users,
        stop_when=lambda: False,
        timeout=seconds,
        recorder=recorder,
        cpu=stack.cpu_parts,
    )
    return recorder


def rater_phase(
    stack: Stack, args: argparse.Namespace, *, think_ms: int = 0, during=None, cpu: bool = True
) -> driver.Recorder:
    recorder = driver.Recorder()
    deadline = time.monotonic() + args.timeout
    cls = driver.rater_class(
        slug=SLUG, recorder=recorder, deadline=deadline, think_ms=think_ms, run_id=secrets.token_hex(4)
    )
    if during is not None:
        import gevent

        gevent.spawn(during, recorder)
    driver.run_users(
        cls,
        host=stack.url,
        users=args.raters,
        stop_when=lambda: recorder.completed >= args.raters,
        timeout=args.timeout,
        recorder=recorder,
        cpu=stack.cpu_parts if cpu else None,
    )
    return recorder


def verify(stack: Stack, recorder: driver.Recorder, *extra: str) -> dict:
    acked = stack.work / "acked.json"
    acked.write_text(json.dumps({"votes": recorder.votes, "sessions": recorder.sessions}))
    try:
        out = stack.script("bench/load/verify.py", SLUG, str(acked), *extra)
    except RuntimeError as error:  # exit status 1: a check failed; the JSON is still printed
        out = str(error).split("\n", 1)[1]
    return json.loads([line for line in out.splitlines() if line.startswith("{")][-1])


def merged(recorders: list[driver.Recorder]) -> driver.Recorder:
    """One recorder holding every round's latencies, votes and sessions."""
    total = driver.Recorder()
    for recorder in recorders:
        for name, values in recorder.latencies.items():
            total.latencies[name].extend(values)
        for name, count in recorder.failures.items():
            total.failures[name] += count
        total.votes.update(recorder.votes)
        total.sessions.extend(recorder.sessions)
        total.completed += recorder.completed
        total.requests += recorder.requests
    return total


def mean_of(recorders: list[driver.Recorder], figure) -> float:
    return sum(figure(recorder) for recorder in recorders) / len(recorders)


def print_latencies(recorder: driver.Recorder, names: list[str]) -> None:
    print(f"  {'request':<16}{'n':>8}{'p50 ms':>10}{'p95 ms':>10}{'p99 ms':>10}")
    for name in names:
        s = recorder.summary(name)
        print(f"  {name:<16}{s['n']:>8}{s['p50']:>10.1f}{s['p95']:>10.1f}{s['p99']:>10.1f}")
    if recorder.failures:
        print("  retried answers: " + ", ".join(f"{k}: {v}" for k, v in sorted(recorder.failures.items())))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with Stack(gunicorn_workers=args.workers) as stack:
        prepare(stack, args)
        # Warm-up, not measured: fresh workers, connections and caches served the first
        # phase a fifth slower than the next ones.
        warm_up = rater_phase(stack, argparse.Namespace(**{**vars(args), "raters": max(1, args.raters // 10)}))
        ping_phase(stack, args.raters, args.baseline)
        pings = [ping_phase(stack, args.raters, args.baseline)]
        rounds = []
        for _ in range(args.rounds):
            rounds.append(rater_phase(stack, args))
            pings.append(ping_phase(stack, args.raters, args.baseline))
        paced = rater_phase(stack, args, think_ms=args.think_ms) if args.think_ms else None
        raters = merged(rounds)
        # The warm-up's votes are checked too: every stored vote must have been acknowledged.
        checks = verify(stack, merged([warm_up, *rounds, *([paced] if paced else [])]))

    print(f"\n{args.rounds} rounds of {args.raters} raters x ({args.trials} + 3 training) trials")
    print("per round: rater req/s over the mean of the trivial phases before and after it (the verdict's ratio)")
    ratios, cpu_ratios = [], []
    for index, phase in enumerate(rounds):
        around = pings[index : index + 2]  # the trivial phases before and after the round
        baseline = mean_of(around, lambda ping: ping.throughput)
        ratios.append(phase.throughput / baseline)
        print(
            f"  round {index + 1}: {phase.completed} sessions in {phase.finished - phase.started:.1f} s, "
            f"rater API {phase.throughput:.0f} req/s, trivial {pings[index].throughput:.0f} then "
            f"{pings[index + 1].throughput:.0f} req/s; ratio {ratios[-1]:.2f}"
        )
        burst = phase.starts_done - phase.started
        print(
            f"    the {phase.completed} starts took the first {burst:.1f} s; afterwards (next trial and submit vote "
            f"only) {phase.throughput_after_starts:.0f} req/s, ratio {phase.throughput_after_starts / baseline:.2f}"
        )
        trivial_cpu = mean_of(around, lambda ping: ping.cpu_ms_per_request)
        cpu_ratios.append(trivial_cpu / phase.cpu_ms_per_request)
        print(
            f"    CPU of the whole stack per request: rater API {phase.cpu_ms_per_request:.2f} ms, trivial "
            f"{pings[index].cpu_ms_per_request:.2f} then {pings[index + 1].cpu_ms_per_request:.2f} ms; "
            f"ratio {cpu_ratios[-1]:.2f}"
        )
        print(
            "      by part, rater API / trivial ms: "
            + ", ".join(
                f"{part} {phase.cpu_ms_per_request_of(part):.2f} / "
                f"{mean_of(around, lambda ping, part=part: ping.cpu_ms_per_request_of(part)):.2f}"
                for part in phase.cpu_parts
            )
        )
    ratio = statistics.median(ratios)
    trivial = merged(pings)
    print("trivial endpoint (/bench/ping/), same clients:")
    print_latencies(trivial, ["trivial"])
    print("rater API, all flat-out rounds:")
    print_latencies(raters, RATER_REQUESTS)
    ping_p99 = trivial.summary("trivial")["p99"]
    submit, nxt = raters.summary("submit vote"), raters.summary("next trial")
    if paced is not None:
        print(
            f"rater API, paced round ({paced.completed} raters pausing {args.think_ms / 1000:.1f} s on average "
            f"before each vote; {paced.throughput:.0f} req/s):"
        )
        print_latencies(paced, RATER_REQUESTS)
    print(f"throughput ratio per round: {', '.join(f'{r:.2f}' for r in ratios)}; median {ratio:.2f}")
    # The same capacity read from CPU time instead of requests per second: when the stack
    # keeps the machine busy, its throughput is the CPU it gets over the CPU a request
    # costs. (Both drift with whatever else runs on the machine, so this ratio is no
    # steadier than the throughput's; that the two agree shows the phases are CPU-bound.)
    print(
        f"CPU ratio per round (trivial CPU per request over the rater API's): "
        f"{', '.join(f'{r:.2f}' for r in cpu_ratios)}; median {statistics.median(cpu_ratios):.2f}"
    )
    print(f"p99 vs trivial p99: next trial {nxt['p99'] / ping_p99:.2f}x, submit vote {submit['p99'] / ping_p99:.2f}x")
    print("database checks: " + json.dumps(checks))

    correct = bool(checks["ok"])
    latency_round, latency_of = (paced, "paced round") if paced is not None else (raters, "flat out")
    submit_p99 = latency_round.summary("submit vote")["p99"]
    fast = submit_p99 < P99_SUBMIT_TARGET_MS
    enough = ratio >= THROUGHPUT_TARGET
    print(
        f"\nverdict: votes and coverage {'OK' if correct else 'FAILED'}; "
        f"p99 submit ({latency_of}) {submit_p99:.1f} ms {'<' if fast else '>='} {P99_SUBMIT_TARGET_MS:.0f} ms "
        f"target ({'met' if fast else 'missed'}); throughput ratio (median flat-out round) {ratio:.2f} "
        f"{'>=' if enough else '<'} {THROUGHPUT_TARGET} target ({'met' if enough else 'missed'})"
    )
    return 0 if correct else 1


if __name__ == "__main__":
    sys.exit(main())
