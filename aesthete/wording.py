"""Counts in messages, for the library's own texts (the contact sheet) and the command line alike."""

from __future__ import annotations


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """``1 photo``, ``2 photos``: a count with its noun agreeing."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"
