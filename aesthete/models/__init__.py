"""The aesthetics models, one module per paper, registered by name.

Importing this package imports torch. Adding a model is one new module that decorates its builder
with ``@register_model`` and one line in ``_MODEL_MODULES`` below.
"""

from __future__ import annotations

import importlib

from aesthete.models.base import AestheticModel, Batch
from aesthete.models.registry import UnknownModelError, get_model, list_models, register_model

# Imported for their registrations. A module that fails to import is an error, never silently skipped.
_MODEL_MODULES = ("nima", "hla_gcn", "mp_ada", "apm", "saf", "pear")
for _module in _MODEL_MODULES:
    importlib.import_module(f"aesthete.models.{_module}")

__all__ = ["AestheticModel", "Batch", "UnknownModelError", "get_model", "list_models", "register_model"]
