"""The one family of errors aesthete's library raises on purpose.

Every error a user can cause or meet (a damaged database, a missing checkpoint, a bad recipe) derives
from :class:`AestheteError`, so the command line maps the whole family to a one-line message and an
exit code in one place, and a Python caller can catch everything aesthete means with one ``except``.
"""

from __future__ import annotations


class AestheteError(Exception):
    """Base of every error aesthete raises for a reason it can explain in one line."""


class OptionError(AestheteError, ValueError):
    """An option value, or a combination of options, that cannot work (``--top`` with ``--keep``, an
    unknown sort key). A ``ValueError`` too, as bad arguments are in Python."""


class NothingToDoError(AestheteError, LookupError):
    """Nothing to work on: nothing scored yet, no photos in scope. The command line exits 3 for it."""
