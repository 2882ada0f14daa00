"""External programs some tests check against (exiftool): found, or a visible skip, or under CI a failure."""

from __future__ import annotations

import os
import shutil

import pytest


def in_ci() -> bool:
    """``CI=true`` (GitHub Actions, GitLab, most CI services set it; ``.ci/run`` installs every tool)."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def require_tool(name: str, install: str) -> str:
    """The path of program ``name``. Missing: the test is skipped with the reason shown (``-ra``), or fails
    under CI, where a check that silently does not run would pass for the wrong reason."""
    found = shutil.which(name)
    if found:
        return found
    reason = f"{name} is not installed ({install})"
    if in_ci():
        pytest.fail(f"{reason}; CI must run this check", pytrace=False)
    pytest.skip(reason)
