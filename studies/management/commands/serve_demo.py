from __future__ import annotations

import errno
import logging
import socket
import threading
import time

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
        "Build the demo study (once), then serve it with the development server and print the "
        "links and the admin login once it is listening. What `make demo` runs."
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
        # A line per task (they run in-process) and libvips' "threadpool completed" lines
        # would bury the links: while building, only errors are logged.
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
            self.stdout.write(self.style.SUCCESS("\nMosaic demo is serving.") + "\n" + links)

        threading.Thread(target=announce, daemon=True).start()
        call_command("runserver", f"{host}:{port}", use_reloader=False)
