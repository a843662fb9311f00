"""Checks on names that become database values (scene, method and rater names).

PostgreSQL refuses a NUL character in text and a value longer than its column (SQLite
accepts both), so these are checked before anything is written, the same on both.
"""

from __future__ import annotations

import unicodedata


def name_problem(name: str, *, what: str, max_length: int) -> str | None:
    """Why ``name`` cannot be stored as a ``what`` (None if it can)."""
    if not name.strip():
        return f"empty {what} name"
    controls = sorted({f"U+{ord(c):04X}" for c in name if unicodedata.category(c) == "Cc"})
    if controls:
        shown = "NUL" if controls == ["U+0000"] else ", ".join(controls)
        return f"{what} name {_short(name)} contains a control character ({shown})"
    if len(name) > max_length:
        return f"{what} name {_short(name)} is {len(name)} characters long, more than the limit of {max_length}"
    return None


def _short(name: str) -> str:
    """The name for a message: printable, and cut when long."""
    text = "".join(c if unicodedata.category(c) != "Cc" else "\ufffd" for c in name)
    return repr(text if len(text) <= 40 else text[:37] + "...")
