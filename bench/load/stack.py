"""A throwaway production-like stack on loopback for the load and fault benchmarks.

PostgreSQL (a fresh cluster in a temporary folder), Redis, gunicorn with
deploy/gunicorn.conf.py and, on request, a Celery worker: each on 127.0.0.1 and a free
port, each stopped by its own PID when the benchmark ends (or is interrupted). Needs
Debian's ``postgresql`` and ``redis-server`` packages (``.ci/run`` installs them).
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PYTHON = sys.executable


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


_TICKS = os.sysconf("SC_CLK_TCK")


def _process_times() -> dict[int, tuple[int, int, int]]:
    """Every process: pid -> (parent pid, its own CPU ticks, the CPU ticks of the children
    it has reaped), from /proc."""
    times = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:  # ended meanwhile
            continue
        # After the command: state, ppid, ..., utime (14th field), stime, cutime, cstime.
        times[int(entry.name)] = (int(fields[1]), int(fields[11]) + int(fields[12]), int(fields[13]) + int(fields[14]))
    return times


def tree_cpu_seconds(roots: list[int], times: dict[int, tuple[int, int, int]] | None = None) -> float:
    """CPU seconds used so far by ``roots`` and all their descendants, those that have
    ended too (their time is in their parent's reaped-children count)."""
    times = _process_times() if times is None else times
    children: dict[int, list[int]] = {}
    for pid, (parent, _, _) in times.items():
        children.setdefault(parent, []).append(pid)
    ticks, todo, seen = 0, [pid for pid in roots if pid in times], set()
    while todo:
        pid = todo.pop()
        if pid in seen:  # one root below another
            continue
        seen.add(pid)
        _, own, reaped = times[pid]
        ticks += own + reaped
        todo.extend(children.get(pid, []))
    return ticks / _TICKS


def wait_until(check, *, timeout: float, what: str, interval: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not ready after {timeout:.0f} s")
        time.sleep(interval)


class Stack:
    def __init__(self, *, gunicorn_workers: int | None = None, celery_time_limit: int | None = None) -> None:
        self.work = Path(tempfile.mkdtemp(prefix="mosaic-bench-"))
        self.pg_bin = self._pg_bin()
        self.pg_data = self.work / "pg"
        self.pg_port, self.redis_port, self.web_port = free_port(), free_port(), free_port()
        self.gunicorn_workers = gunicorn_workers or min(2 * (os.cpu_count() or 2) + 1, 17)
        self.celery_time_limit = celery_time_limit
        self.processes: dict[str, subprocess.Popen] = {}
        self._pg_started = False

    # --- environment -------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_URL", "CELERY_"))}
        env.update(
            DJANGO_SETTINGS_MODULE="bench.load.settings",
            DJANGO_ENV="production",
            DJANGO_SECRET_KEY="bench-only-" + "x" * 50,
            DJANGO_ALLOWED_HOSTS="127.0.0.1",
            DJANGO_SECURE_SSL_REDIRECT="0",
            DATABASE_URL=f"postgres://mosaic:mosaic@127.0.0.1:{self.pg_port}/mosaic",
            CELERY_BROKER_URL=f"redis://127.0.0.1:{self.redis_port}/0",
            MOSAIC_VAR_DIR=str(self.work / "var"),
            MOSAIC_LOG_LEVEL="WARNING",
            # One bucket per simulated rater (nginx's X-Forwarded-For hop), rates above the
            # benchmark's pace: the throttle's Redis round trips are measured, not its 429s.
            MOSAIC_NUM_PROXIES="1",
            MOSAIC_THROTTLE_SESSION_START="100000/minute",
            MOSAIC_THROTTLE_VOTE="100000/minute",
            PYTHONPATH=str(REPO),
        )
        if self.celery_time_limit:
            env["CELERY_TASK_TIME_LIMIT"] = str(self.celery_time_limit)
            env["CELERY_TASK_SOFT_TIME_LIMIT"] = str(max(1, self.celery_time_limit - 5))
        env.update(extra)
        return env

    # --- PostgreSQL --------------------------------------------------------------------
    @staticmethod
    def _pg_bin() -> Path:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
        if not found:
            sys.exit("PostgreSQL is not installed: apt-get install postgresql redis-server")
        return Path(found[-1]).parent

    def _as_pg(self, *args: str, **kwargs) -> subprocess.CompletedProcess:
        command = list(args)
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, check=True, capture_output=True, text=True, **kwargs)

    def start_postgres(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.work, "postgres")
            os.chmod(self.work, 0o755)
        self._as_pg(
            str(self.pg_bin / "initdb"),
            "-D",
            str(self.pg_data),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
        )
        self._pg_ctl("start")
        self._pg_started = True
        psql = [
            str(self.pg_bin / "psql"),
            "-h",
            "127.0.0.1",
            "-p",
            str(self.pg_port),
            "-U",
            "postgres",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
        ]
        self._as_pg(*psql, "-c", "CREATE ROLE mosaic LOGIN PASSWORD 'mosaic' CREATEDB")
        self._as_pg(*psql, "-c", "CREATE DATABASE mosaic OWNER mosaic")

    def _pg_ctl(self, action: str) -> None:
        options = f"-c listen_addresses=127.0.0.1 -p {self.pg_port} -k {self.work} -c max_connections=300"
        self._as_pg(
            str(self.pg_bin / "pg_ctl"),
            "-D",
            str(self.pg_data),
            "-l",
            str(self.work / "pg.log"),
            "-w",
            "-t",
            "60",
            "-m",
            "fast",
            action,
            "-o",
            options,
        )

    def restart_postgres(self) -> None:
        self._pg_ctl("restart")

    # --- Redis ---------------------------------------------------------------------------
    def start_redis(self) -> None:
        self.processes["redis"] = subprocess.Popen(
            [
                "redis-server",
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.redis_port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.work),
            ],
            stdout=(self.work / "redis.log").open("wb"),
            stderr=subprocess.STDOUT,
        )

        def ready() -> bool:
            try:
                with socket.create_connection(("127.0.0.1", self.redis_port), timeout=1) as conn:
                    conn.sendall(b"PING\r\n")
                    return conn.recv(16).startswith(b"+PONG")
            except OSError:
                return False

        wait_until(ready, timeout=30, what="redis")

    # --- Django processes ------------------------------------------------------------
    def manage(self, *args: str, timeout: float = 600) -> str:
        result = subprocess.run(
            [PYTHON, "manage.py", *args], cwd=REPO, env=self.env(), capture_output=True, text=True, timeout=timeout
        )
        if result.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result.stdout

    def script(self, path: str, *args: str, timeout: float = 600, **extra_env: str) -> str:
        result = subprocess.run(
            [PYTHON, path, *args], cwd=REPO, env=self.env(**extra_env), capture_output=True, text=True, timeout=timeout
        )
        if result.returncode != 0:
            raise RuntimeError(f"{path} failed:\n{result.stdout}\n{result.stderr}")
        return result.stdout

    def start_database_with_study(self, slug: str, *, scenes: int, trials_per_session: int) -> None:
        """PostgreSQL and Redis started, the schema migrated and an open study built."""
        self.start_postgres()
        self.start_redis()
        self.manage("migrate", "--noinput")
        # Built with in-process tasks (no broker) so that metrics are there before raters come.
        self.script(
            "bench/load/setup_study.py",
            slug,
            "--scenes",
            str(scenes),
            "--trials-per-session",
            str(trials_per_session),
            CELERY_BROKER_URL="",
        )

    def start_gunicorn(self) -> None:
        env = self.env(
            GUNICORN_BIND=f"127.0.0.1:{self.web_port}",
            GUNICORN_WORKERS=str(self.gunicorn_workers),
            GUNICORN_ACCESSLOG="",
            GUNICORN_LOGLEVEL="warning",
            GUNICORN_MAX_REQUESTS="0",
        )
        self.processes["gunicorn"] = subprocess.Popen(
            [PYTHON, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py", "--backlog", "2048", "config.wsgi"],
            cwd=REPO,
            env=env,
            stdout=(self.work / "gunicorn.log").open("wb"),
            stderr=subprocess.STDOUT,
        )

        def ready() -> bool:
            if self.processes["gunicorn"].poll() is not None:
                raise RuntimeError("gunicorn exited:\n" + (self.work / "gunicorn.log").read_text())
            try:
                with urllib.request.urlopen(self.url + "/bench/ping/", timeout=2) as response:
                    return response.status == 200
            except OSError:
                return False

        wait_until(ready, timeout=60, what="gunicorn")

    def gunicorn_worker_pids(self) -> list[int]:
        master = self.processes["gunicorn"].pid
        children = Path(f"/proc/{master}/task/{master}/children")
        return [int(pid) for pid in children.read_text().split()] if children.exists() else []

    def cpu_parts(self) -> dict[str, float]:
        """CPU seconds used so far by each part of the stack on this machine, counting
        processes that have ended, from one snapshot of /proc: the simulated clients (this
        process, and the scripts it has run and reaped), gunicorn (master and workers),
        PostgreSQL (postmaster and backends), Redis and, when one runs, the Celery worker."""
        times = _process_times()
        postmaster = int((self.pg_data / "postmaster.pid").read_text().split()[0])
        children = {
            name: tree_cpu_seconds([self.processes[key].pid], times)
            for name, key in (("gunicorn", "gunicorn"), ("Redis", "redis"), ("Celery", "celery"))
            if key in self.processes
        }
        # This process's tree holds its children too: the clients are what is left of it.
        clients = tree_cpu_seconds([os.getpid()], times) - sum(children.values())
        return {**children, "PostgreSQL": tree_cpu_seconds([postmaster], times), "clients": clients}

    def start_celery(self, *, concurrency: int = 1) -> subprocess.Popen:
        process = subprocess.Popen(
            [
                PYTHON,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "--loglevel=INFO",
                f"--concurrency={concurrency}",
                "-n",
                f"bench-{len(self.processes)}@127.0.0.1",
                "--without-gossip",
                "--without-mingle",
            ],
            cwd=REPO,
            env=self.env(),
            stdout=(self.work / "celery.log").open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: killed with its pool children
        )
        self.processes["celery"] = process
        return process

    def kill_celery(self) -> None:
        process = self.processes["celery"]
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)

    # --- teardown --------------------------------------------------------------------
    def stop(self) -> None:
        for name, process in reversed(list(self.processes.items())):
            if process.poll() is None:
                try:
                    if name == "celery":
                        os.killpg(process.pid, signal.SIGTERM)
                    else:
                        process.terminate()
                    process.wait(timeout=20)
                except (subprocess.TimeoutExpired, ProcessLookupError):
                    process.kill()
                    process.wait(timeout=10)
        if self._pg_started:
            try:
                self._as_pg(str(self.pg_bin / "pg_ctl"), "-D", str(self.pg_data), "-m", "immediate", "-w", "stop")
            except subprocess.CalledProcessError:
                pass
        shutil.rmtree(self.work, ignore_errors=True)

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
