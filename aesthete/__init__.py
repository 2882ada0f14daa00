"""aesthete: score, rank and cull photos with deep image-aesthetics models.

The public Python API is what the ``aesthete`` command calls::

    from contextlib import closing

    import aesthete

    with closing(aesthete.open_store("photos.db")) as store:
        summary = aesthete.score(["/photos/2024-05"], store=store)
        best = aesthete.rank(store, by="mean", top=10)

Each name is imported from its module on first use (PEP 562 ``__getattr__``), so ``import aesthete``
stays fast and imports no torch; only :func:`get_model` and a scoring run that has photos to score do.
Every error aesthete raises on purpose is an :class:`AestheteError`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# public name -> (module, attribute). One table, read by __getattr__ and __dir__.
_API: dict[str, tuple[str, str]] = {
    # score a folder and open the cache it writes
    "score": ("aesthete.scoring", "score"),
    "ScoreSummary": ("aesthete.scoring", "ScoreSummary"),
    "open_store": ("aesthete.store", "open_store"),
    "Store": ("aesthete.store", "Store"),
    # rank and cull what is cached
    "rank": ("aesthete.select", "rank"),
    "cull": ("aesthete.select", "cull"),
    "Filters": ("aesthete.select", "Filters"),
    "Ranking": ("aesthete.select", "Ranking"),
    "apply_cull": ("aesthete.culling", "apply"),
    "CullOptions": ("aesthete.culling", "CullOptions"),
    "CullReport": ("aesthete.culling", "CullReport"),
    "build_report": ("aesthete.report", "build_report"),
    # models and their weights
    "list_models": ("aesthete.architectures", "model_names"),
    "get_model": ("aesthete.models", "get_model"),
    "load_model": ("aesthete.checkpoint", "load_model"),
    "list_weights": ("aesthete.weights", "list_weights"),
    "resolve_weights": ("aesthete.weights", "resolve_weights"),
    # the error family
    "AestheteError": ("aesthete.errors", "AestheteError"),
    "OptionError": ("aesthete.errors", "OptionError"),
    "NothingToDoError": ("aesthete.errors", "NothingToDoError"),
    "UnknownModelError": ("aesthete.architectures", "UnknownModelError"),
    "StoreError": ("aesthete.store", "StoreError"),
    "WeightsError": ("aesthete.weights", "WeightsError"),
    "CheckpointError": ("aesthete.checkpoint", "CheckpointError"),
    "XmpError": ("aesthete.xmp", "XmpError"),
}

# Spelt out for linters and ``from aesthete import *``; a test keeps it equal to _API's names.
__all__ = [
    "score", "ScoreSummary", "open_store", "Store", "rank", "cull", "Filters", "Ranking", "apply_cull",
    "CullOptions", "CullReport", "build_report", "list_models", "get_model", "load_model", "list_weights",
    "resolve_weights", "AestheteError", "OptionError", "NothingToDoError", "UnknownModelError", "StoreError",
    "WeightsError", "CheckpointError", "XmpError",
]  # fmt: skip


def __getattr__(name: str) -> Any:
    try:
        module, attribute = _API[name]
    except KeyError:
        raise AttributeError(f"module 'aesthete' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_API})


if TYPE_CHECKING:  # what type checkers and editors see; at run time __getattr__ imports these on use
    from aesthete.architectures import UnknownModelError
    from aesthete.architectures import model_names as list_models
    from aesthete.checkpoint import CheckpointError, load_model
    from aesthete.culling import CullOptions, CullReport
    from aesthete.culling import apply as apply_cull
    from aesthete.errors import AestheteError, NothingToDoError, OptionError
    from aesthete.models import get_model
    from aesthete.report import build_report
    from aesthete.scoring import ScoreSummary, score
    from aesthete.select import Filters, Ranking, cull, rank
    from aesthete.store import Store, StoreError, open_store
    from aesthete.weights import WeightsError, list_weights, resolve_weights
    from aesthete.xmp import XmpError
