"""Counts and file names in messages, for the library's own texts (the contact sheet) and the command line alike."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """``1 photo``, ``2 photos``: a count with its noun agreeing."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


def printable(name: str) -> str:
    """``name`` as text may show it: unchanged, or, where it holds a newline, a tab or another character a
    terminal or a page cannot show (an escape code), quoted with that character escaped as Python writes it
    (``'a\\nb.jpg'``), so that it stays on its line and never reads like another name."""
    return name if name.isprintable() else repr(name)


def as_stored(text: str) -> str:
    """``text`` with each byte of a file name that is not UTF-8 (a lone surrogate, as ``os.fsdecode`` leaves
    it) written ``\\xe9``, as the database stores such a name: text that always encodes as UTF-8."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def did_you_mean(word: str, known: Iterable[str]) -> str:
    """``"; did you mean 'train.epochs'?"`` for a near miss of one of ``known`` (a typo of a key or
    option), else ``""``: to append to the refusal, so nobody has to read the source for a spelling."""
    close = difflib.get_close_matches(word, list(known), n=1, cutoff=0.75)
    return f"; did you mean {close[0]!r}?" if close else ""
