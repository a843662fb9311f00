"""Simulated raters and the trivial-endpoint phase, on locust's event loop (gevent).

Import this module first: locust patches the standard library for gevent on import.
Each simulated rater is a Prolific participant with its own id and its own client address
(X-Forwarded-For, as nginx would send it): it opens the study page, starts its session,
then asks for the next trial and votes until the session is complete. A request that
fails (connection reset, 5xx, 429) is retried with the same content after a short pause,
as the rating page does, so a rater rides out a killed worker or a database restart; a
vote counts as acknowledged only when a 200/201 came back for it.
"""

from __future__ import annotations

import os
import random
import secrets
import time
from collections import defaultdict
from dataclasses import dataclass, field

# Every request opens a connection (gunicorn's sync workers close each one), and gevent's
# default resolver hands each lookup of 127.0.0.1 to a thread: a tenth of a millisecond of
# the load generator's CPU per request, on the machine under test. A literal address needs
# no lookup that could block.
os.environ.setdefault("GEVENT_RESOLVER", "block")

import gevent  # noqa: E402
import locust  # noqa: F401, E402  (patches the standard library for gevent)
import numpy as np  # noqa: E402
from locust import FastHttpUser, constant, task  # noqa: E402
from locust.env import Environment  # noqa: E402
from locust.exception import StopUser  # noqa: E402

CSRF = secrets.token_hex(16)  # 32 characters: a valid CSRF secret for cookie and header


@dataclass
class Recorder:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    failures: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    votes: dict[str, int] = field(default_factory=dict)
    sessions: list[str] = field(default_factory=list)
    completed: int = 0
    requests: int = 0
    started: float = 0.0
    finished: float = 0.0
    # When the last session start of the phase was answered, and the requests by then.
    starts_done: float = 0.0
    requests_at_starts_done: int = 0
    # CPU seconds each part of the stack used from started to finished (see run_users).
    cpu_parts: dict[str, float] = field(default_factory=dict)

    def summary(self, name: str) -> dict[str, float]:
        values = np.array(self.latencies.get(name, []), dtype=float)
        if not values.size:
            return {"n": 0, "p50": float("nan"), "p95": float("nan"), "p99": float("nan")}
        p50, p95, p99 = np.percentile(values, [50, 95, 99])
        return {"n": int(values.size), "p50": p50, "p95": p95, "p99": p99}

    @property
    def throughput(self) -> float:
        return self.requests / max(self.finished - self.started, 1e-9)

    @property
    def cpu_ms_per_request(self) -> float:
        return sum(self.cpu_parts.values()) * 1000 / max(self.requests, 1)

    def cpu_ms_per_request_of(self, part: str) -> float:
        return self.cpu_parts.get(part, 0.0) * 1000 / max(self.requests, 1)

    @property
    def throughput_after_starts(self) -> float:
        """Requests per second once every rater of the phase has started: votes and next
        trials only, without the burst of simultaneous starts at the beginning."""
        return (self.requests - self.requests_at_starts_done) / max(self.finished - self.starts_done, 1e-9)


class _Client(FastHttpUser):
    abstract = True
    wait_time = constant(0)
    network_timeout = 60.0
    connection_timeout = 10.0
    recorder: Recorder
    deadline: float

    def on_start(self) -> None:
        self.address = f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1, 255)}"
        self.headers = {"X-Forwarded-For": self.address, "X-CSRFToken": CSRF, "Cookie": f"csrftoken={CSRF}"}
        # The CSRF cookie goes by hand (above) and the raters need no other (they resume by
        # their Prolific id). Python's cookie jar parsed and matched the server's cookies on
        # every request: CPU of the load generator, on the machine under test, that only the
        # rater phase paid (the trivial endpoint sets no cookie).
        self.client.client.cookiejar = None

    def call(self, method: str, path: str, *, name: str, json: object = None, ok=(200, 201)):
        """Send until an answer in ``ok`` (or another 4xx) comes back; time the successful try."""
        pause = 0.05
        while True:
            if time.monotonic() > self.deadline:
                raise StopUser()
            start = time.perf_counter()
            response = self.client.request(method, path, headers=self.headers, json=json, name=name)
            elapsed_ms = (time.perf_counter() - start) * 1000
            status = response.status_code or 0
            self.recorder.requests += 1
            if status in ok:
                self.recorder.latencies[name].append(elapsed_ms)
                return response
            self.recorder.failures[f"{name} {status}"] += 1
            if 400 <= status < 500 and status != 429:
                return response
            gevent.sleep(pause)
            pause = min(pause * 2, 1.0)


def rater_class(*, slug: str, recorder: Recorder, deadline: float, think_ms: int, run_id: str) -> type:
    counter = iter(range(10**9))

    class Rater(_Client):
        @task
        def session(self) -> None:
            self.recorder, self.deadline = recorder, deadline
            number = next(counter)
            self.call("GET", f"/s/{slug}/?PROLIFIC_PID=bench-{run_id}-{number}", name="study page")
            started = self.call(
                "POST",
                f"/api/studies/{slug}/sessions/",
                name="start session",
                json={
                    "PROLIFIC_PID": f"bench-{run_id}-{number}",
                    "STUDY_ID": slug,
                    "SESSION_ID": f"s{number}",
                    "device": {"screen_width": 1920, "screen_height": 1080, "device_pixel_ratio": 1.0},
                },
            )
            token = started.json()["token"]
            recorder.sessions.append(token)
            recorder.starts_done, recorder.requests_at_starts_done = time.monotonic(), recorder.requests
            while True:
                answer = self.call("GET", f"/api/sessions/{token}/next/", name="next trial").json()
                trial = answer["trial"]
                if trial is None:
                    break
                if think_ms:
                    gevent.sleep(random.uniform(0.5, 1.5) * think_ms / 1000)
                score = random.randint(1, 5)
                voted = self.call(
                    "POST",
                    f"/api/sessions/{token}/trials/{trial['token']}/rating/",
                    name="submit vote",
                    json={"score": score, "response_ms": 1500},
                )
                if voted.status_code in (200, 201):
                    recorder.votes[trial["token"]] = voted.json()["score"]
            recorder.completed += 1
            raise StopUser()

    return Rater


def ping_class(*, recorder: Recorder, deadline: float) -> type:
    class Pinger(_Client):
        @task
        def ping(self) -> None:
            self.recorder, self.deadline = recorder, deadline
            self.call("GET", "/bench/ping/", name="trivial")

    return Pinger


def run_users(
    user_class: type, *, host: str, users: int, stop_when, timeout: float, recorder: Recorder, cpu=None
) -> None:
    """Start ``users`` at once, run until ``stop_when()`` or ``timeout`` seconds, then stop.
    ``cpu()``, if given, tells the CPU seconds used so far by each part of the stack: the
    recorder keeps how many each part used during the phase."""
    env = Environment(user_classes=[user_class], host=host)
    runner = env.create_local_runner()
    cpu_started = cpu() if cpu else {}
    recorder.started = time.monotonic()
    runner.start(users, spawn_rate=users)
    end = time.monotonic() + timeout
    while time.monotonic() < end and not stop_when():
        gevent.sleep(0.1)
    recorder.finished = time.monotonic()
    if cpu:
        recorder.cpu_parts = {part: seconds - cpu_started.get(part, 0.0) for part, seconds in cpu().items()}
    runner.quit()
    runner.greenlet.join(timeout=30)
