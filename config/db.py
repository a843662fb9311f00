"""Timestamps read from PostgreSQL by psycopg's C parser.

Django registers its own loader for ``timestamptz`` on every connection: it parses with
psycopg's loader and then sets Django's time zone on the result. psycopg swaps its own
loaders for their C versions, but not Django's subclass, so every timestamp was parsed in
Python: about 3 µs each, and a rater's "next trial" reads a dozen (bench/load, profiled).

:func:`parse_timestamps_in_c` registers, on each new PostgreSQL connection, a loader that
does what Django's does with the C parser underneath. It carries Django's ``timezone``
attribute too, so Django's cursors, which compare it with the connection's, keep it.
"""

from __future__ import annotations

from datetime import tzinfo
from functools import cache
from typing import Any


@cache
def _loader_class(timezone: tzinfo | None) -> type | None:
    """A loader of timestamptz text that parses in C and sets ``timezone`` (None: naive),
    as Django's does; None where psycopg has no C implementation."""
    import psycopg
    from psycopg.adapt import Loader
    from psycopg.postgres import types
    from psycopg.pq import Format

    parser = psycopg.adapters.get_loader(types["timestamptz"].oid, Format.TEXT)
    if parser.__module__.startswith("psycopg."):  # the Python implementation
        return None

    class CTimestamptzLoader(Loader):
        def __init__(self, oid: int, context: Any = None) -> None:
            super().__init__(oid, context)
            # Parses in the connection's time zone, which Django sets to its own.
            self._parse = parser(oid, context).load

        def load(self, data: Any) -> Any:
            return self._parse(data).replace(tzinfo=self.timezone)

    CTimestamptzLoader.timezone = timezone
    return CTimestamptzLoader


def parse_timestamps_in_c(sender: Any, connection: Any, **kwargs: Any) -> None:
    """Receiver of ``connection_created``: PostgreSQL connections read timestamps in C."""
    if connection.vendor != "postgresql":
        return
    loader = _loader_class(connection.timezone)
    if loader is not None:
        connection.connection.adapters.register_loader("timestamptz", loader)
