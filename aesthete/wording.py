"""Counts and file names in messages, for the library's own texts (the contact sheet) and the command line alike."""

from __future__ import annotations


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """``1 photo``, ``2 photos``: a count with its noun agreeing."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


def printable(name: str) -> str:
    """``name`` as text may show it: unchanged, or, where it holds a newline, a tab or another character a
    terminal or a page cannot show (an escape code), quoted with that character escaped as Python writes it
    (``'a\\nb.jpg'``), so that it stays on its line and never reads like another name."""
    return name if name.isprintable() else repr(name)
