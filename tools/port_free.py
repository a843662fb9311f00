"""Exit with a message when HOST:PORT is taken or PORT is not a port (standard library
only: `make demo` runs it before it installs or builds anything)."""

from __future__ import annotations

import socket
import sys


def main(host: str, port_text: str) -> int:
    try:
        port = int(port_text)
    except ValueError:
        port = 0
    if not 0 < port < 65536:
        print(f"PORT={port_text!r} is not a TCP port (1-65535).", file=sys.stderr)
        return 2
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(1)
        if probe.connect_ex((host, port)) == 0:
            print(
                f"Port {port} on {host} is taken: stop what runs there or choose another, e.g. PORT=8123 make demo",
                file=sys.stderr,
            )
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
