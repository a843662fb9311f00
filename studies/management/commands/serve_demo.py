from __future__ import annotations

import errno
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from studies.management.commands import build_demo


def port_taken(host: str, port: int) -> bool:
    """Whether something already listens on (host, port): binding there fails."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            if error.errno in (errno.EADDRINUSE, errno.EACCES):
                return True
            raise
    return False


class Command(BaseCommand):
    help = (
        "Start one Celery worker, build the demo study (once), then serve it with the development "
        "server and print the links and the admin login once it is listening; Ctrl-C stops both. "
        "What `make demo` runs."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--simulate-raters", type=int, default=12)

    def handle(self, *args, host: str, port: int, simulate_raters: int, **options) -> None:
        if not 0 < port < 65536:
            raise CommandError(f"PORT={port} is not a TCP port (1-65535).")
        if port_taken(host, port):
            raise CommandError(
                f"Port {port} on {host} is taken. Stop what runs there or choose another: PORT=8123 make demo"
            )
        base = f"http://{host}:{port}"
        # The worker first: it computes the demo's PSNR/SSIM and tile pyramids, queued as the
        # build commits, while the build goes on and the server starts.
        worker, worker_log = start_worker()
        # Ctrl-C reaches runserver as KeyboardInterrupt (it exits); a plain kill should stop
        # the worker too.
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
        try:
            self._build_and_serve(host, port, base, worker, worker_log, simulate_raters)
        finally:
            stop_worker(worker)

    def _build_and_serve(self, host, port, base, worker, worker_log, simulate_raters) -> None:
        # A line per task and libvips' "threadpool completed" lines would bury the links:
        # while building, only errors are logged (the worker logs to its own file).
        logging.disable(logging.WARNING)
        try:
            call_command("build_demo", host=base, simulate_raters=simulate_raters, links=False, stdout=self.stdout)
        finally:
            logging.disable(logging.NOTSET)
        links = build_demo.demo_links(base)

        def announce() -> None:
            # After runserver's own start-up lines, once the port answers: the last thing on screen.
            for _ in range(600):
                try:
                    with socket.create_connection((host, port), timeout=1):
                        break
                except OSError:
                    time.sleep(0.1)
            self.stdout.write(
                self.style.SUCCESS("\nMosaic demo is serving.")
                + f" Celery worker: pid {worker.pid}, log {worker_log}. Ctrl-C stops both.\n"
                + links
            )

        threading.Thread(target=announce, daemon=True).start()
        call_command("runserver", f"{host}:{port}", use_reloader=False)


def start_worker() -> tuple[subprocess.Popen, Path]:
    """One Celery worker on the configured broker (the filesystem transport by default),
    logging to a file under the var dir."""
    log_path = Path(settings.VAR_DIR) / "celery-worker.log"
    command = [sys.executable, "-m", "celery", "-A", "config", "worker", "--loglevel=INFO", "--concurrency=2"]
    command += ["-n", f"mosaic-demo-{os.getpid()}@127.0.0.1", "--without-gossip", "--without-mingle"]
    with log_path.open("ab") as log:
        worker = subprocess.Popen(command, cwd=settings.BASE_DIR, stdout=log, stderr=subprocess.STDOUT)
    return worker, log_path


def stop_worker(worker: subprocess.Popen) -> None:
    """Stop the worker this command started (by its pid): a warm shutdown lets the task at
    hand finish; one that is stuck is killed after a while. A task left unfinished is
    acknowledged late, so the next worker runs it again."""
    if worker.poll() is None:
        worker.terminate()
    try:
        worker.wait(timeout=30)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait(timeout=10)
