"""What ``aesthete models`` lists: each scoring architecture's size, bins, backbone and input policy.

Counting parameters means building every model, which needs torch (seconds to import) even on the
meta device. The rows are therefore cached in the cache directory, keyed on the code that decides them
(the package version and the size and mtime of the model sources), so a second ``aesthete models``
never imports torch; editing a model file rebuilds the cache.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

from aesthete.architectures import model_names
from aesthete.paths import cache_dir

CACHE_FILE = "models.json"
_PACKAGE = Path(__file__).resolve().parent


def _source_key() -> str:
    """Changes whenever a file that decides a row does (stat only: no file is read)."""
    from aesthete.cli import package_version

    files = sorted((_PACKAGE / "models").glob("*.py")) + [_PACKAGE / "architectures.py", _PACKAGE / "input_policy.py"]
    stats = [(f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in files]
    return json.dumps([package_version(), stats])


def _build_rows() -> list[dict[str, Any]]:
    import torch

    from aesthete.models import get_model

    rows = []
    for name in model_names(scoring=True):  # auxiliary networks (PEAR's prior) never score a photo
        with torch.device("meta"):  # shapes only: no memory, no initialisation
            model = get_model(name)
            variants = {v: get_model(name, variant=v).num_parameters() for v in getattr(model, "variants", ())}
        rows.append({
            "name": name,
            "parameters": model.num_parameters(),
            "variant": model.config.get("variant"),
            "variants": variants,
            "bins": model.bins,
            "backbone": model.config.get("backbone"),
            "input": model.policy.describe(),
        })  # fmt: skip
    return rows


def model_rows() -> list[dict[str, Any]]:
    """One row per architecture that scores photos, from the cache when the model code is unchanged."""
    from aesthete.fileops import atomic_write_text

    key = _source_key()
    path = cache_dir() / CACHE_FILE
    try:
        cached = json.loads(path.read_text(encoding="utf-8"))
        if cached.get("key") == key and [r["name"] for r in cached["rows"]] == model_names(scoring=True):
            return cached["rows"]
    except (OSError, ValueError, KeyError, TypeError):
        pass  # missing, stale or damaged: rebuild
    rows = _build_rows()
    with contextlib.suppress(OSError):  # a read-only cache only costs the next run the same seconds
        atomic_write_text(os.fspath(path), json.dumps({"key": key, "rows": rows}))
    return rows
