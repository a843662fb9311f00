"""Reading and checking a CSV of votes collected elsewhere (``import_ratings``).

Every problem in the file is collected before anything is written, so an organizer fixes
the file once instead of once per error; the write itself is
:func:`analysis.services.ratings_import`.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from studies.validation import name_problem

REQUIRED_COLUMNS: tuple[str, ...] = ("rater", "scene", "method", "score")
# The largest response time the database stores (a PositiveIntegerField: 24.8 days).
MAX_RESPONSE_MS = 2_147_483_647
OPTIONAL_COLUMNS: tuple[str, ...] = ("response_ms",)
# An error list the length of a 50 000-row file helps no one; the count is still given.
MAX_REPORTED_PROBLEMS = 200


@dataclass(frozen=True)
class Problem:
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}" if self.line else self.message


class RatingsImportError(Exception):
    """The file has problems; nothing was imported."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems, key=lambda p: (p.line, p.message))
        super().__init__(f"{len(self.problems)} problem(s); nothing was imported")

    def report(self) -> str:
        shown = self.problems[:MAX_REPORTED_PROBLEMS]
        lines = [str(p) for p in shown]
        if len(self.problems) > len(shown):
            lines.append(f"... and {len(self.problems) - len(shown)} more")
        return "\n".join(lines)


@dataclass(frozen=True)
class VoteRow:
    line: int
    rater: str
    scene: str
    method: str
    score: int
    response_ms: int | None


@dataclass
class ParsedVotes:
    rows: list[VoteRow] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


# What analysis.exports puts in front of a cell a spreadsheet would read as a formula.
_GUARDED = tuple("'" + start for start in ("=", "+", "-", "@", "\t", "\r"))


def _unguarded(cell: str) -> str:
    """The cell without the quote an export put in front of a would-be formula."""
    return cell[1:] if cell.startswith(_GUARDED) else cell


def _name_limits() -> dict[str, int]:
    """The longest rater, scene and method name the database stores."""
    from raters.models import Rater
    from studies.models import Method, Scene

    return {
        "rater": Rater._meta.get_field("external_id").max_length,
        "scene": Scene._meta.get_field("name").max_length,
        "method": Method._meta.get_field("name").max_length,
    }


def _parse_int(raw: str) -> int | None:
    text = raw.strip()
    try:
        return int(text)
    except ValueError:
        pass
    # "4.0" from a spreadsheet is the integer 4; "4.5" is not a level of any scale.
    try:
        value = float(text)
    except ValueError:
        return None
    return int(value) if value.is_integer() else None


def parse_votes(data: bytes | str, *, scores: Iterable[int]) -> ParsedVotes:
    """Parse the CSV and check each row on its own (header, types, scale, duplicates).

    Checks that need the database (unknown scene or method, a vote already stored) are
    made by the service, which adds to the same problem list.
    """
    result = ParsedVotes()
    if isinstance(data, bytes):
        try:
            # utf-8-sig: spreadsheets save a byte-order mark that would rename column one.
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            result.problems.append(Problem(0, f"the file is not UTF-8 text ({exc.reason})"))
            return result
    else:
        text = data.removeprefix("\ufeff")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        result.problems.append(Problem(0, "the file is empty: expected a header row"))
        return result
    columns = [name.strip() for name in header]
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        result.problems.append(
            Problem(
                1,
                f"missing column(s): {', '.join(missing)} (expected {','.join(REQUIRED_COLUMNS)})",
            )
        )
    known = set(REQUIRED_COLUMNS) | set(OPTIONAL_COLUMNS)
    unknown = [c for c in columns if c not in known]
    if unknown:
        # A misspelt "respone_ms" would otherwise be dropped without a word.
        result.problems.append(
            Problem(1, f"unknown column(s): {', '.join(unknown)} (allowed: {', '.join(sorted(known))})")
        )
    repeated = sorted({c for c in columns if columns.count(c) > 1})
    if repeated:
        result.problems.append(Problem(1, f"repeated column(s): {', '.join(repeated)}"))
    if result.problems:
        return result

    index = {name: i for i, name in enumerate(columns)}
    allowed = sorted(set(scores))
    allowed_text = ", ".join(str(s) for s in allowed)
    first_line: dict[tuple[str, str, str], int] = {}
    duplicates: dict[tuple[str, str, str], list[int]] = defaultdict(list)
    while True:
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            result.problems.append(Problem(reader.line_num, f"unreadable CSV: {exc}"))
            break
        line = reader.line_num
        if not any(cell.strip() for cell in record):
            continue  # blank line, e.g. at the end of the file
        if len(record) != len(columns):
            result.problems.append(Problem(line, f"{len(record)} field(s) where the header has {len(columns)}"))
            continue
        cells = {name: _unguarded(record[i].strip()) for name, i in index.items()}
        problems_before = len(result.problems)
        for name, max_length in _name_limits().items():
            if not cells[name]:
                result.problems.append(Problem(line, f"empty {name}"))
                continue
            problem = name_problem(cells[name], what=name, max_length=max_length)
            if problem:
                result.problems.append(Problem(line, problem))
        score = _parse_int(cells["score"])
        if score is None:
            result.problems.append(Problem(line, f"score {cells['score']!r} is not an integer"))
        elif score not in allowed:
            result.problems.append(Problem(line, f"score {score} is outside the study's scale ({allowed_text})"))
        response_ms: int | None = None
        raw_ms = cells.get("response_ms", "")
        if raw_ms:
            response_ms = _parse_int(raw_ms)
            if response_ms is None or response_ms < 0:
                result.problems.append(Problem(line, f"response_ms {raw_ms!r} is not a non-negative integer"))
            elif response_ms > MAX_RESPONSE_MS:
                result.problems.append(
                    Problem(line, f"response_ms {raw_ms!r} is more than the largest stored, {MAX_RESPONSE_MS}")
                )
        key = (cells["rater"], cells["scene"], cells["method"])
        if all(key):
            if key in first_line:
                duplicates[key].append(line)
            else:
                first_line[key] = line
        if len(result.problems) == problems_before:
            assert score is not None
            result.rows.append(VoteRow(line, *key, score, response_ms))
    for key, lines in duplicates.items():
        for line in lines:
            result.problems.append(
                Problem(
                    line,
                    f"duplicate vote: rater {key[0]!r} already rated method {key[2]!r} on scene "
                    f"{key[1]!r} at line {first_line[key]}",
                )
            )
    if not result.rows and not result.problems:
        result.problems.append(Problem(0, "the file has a header but no votes"))
    return result
