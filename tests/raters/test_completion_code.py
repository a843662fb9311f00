"""Completion codes: what a rater copies by hand into Prolific or MTurk."""

from __future__ import annotations

from raters import services


def test_completion_codes_are_ten_unambiguous_characters_drawn_evenly() -> None:
    codes = [services._completion_code() for _ in range(2000)]
    assert all(len(code) == 10 and set(code) <= set(services._CODE_ALPHABET) for code in codes)
    assert len(set(codes)) == len(codes)
    # Every character turns up at every position: each position draws from the whole
    # alphabet, not from part of it (a character misses 2000 draws with odds of e^-63).
    for position in range(10):
        assert {code[position] for code in codes} == set(services._CODE_ALPHABET)
    assert not set(services._CODE_ALPHABET) & set("01IO")
