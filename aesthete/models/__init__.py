"""The aesthetics models, one module per paper, registered by name.

Importing this package imports torch. Adding a model is one line in
``aesthete.architectures.ARCHITECTURES`` (its name, module, and whether it scores photos) and one new
module that decorates its builder with ``@register_model``.
"""

from __future__ import annotations

import importlib

from aesthete.architectures import ARCHITECTURES
from aesthete.models.base import AestheticModel, Batch
from aesthete.models.registry import UnknownModelError, get_model, list_models, register_model

# Imported for their registrations. A module that fails to import is an error, never silently skipped.
for _module in dict.fromkeys(arch.module for arch in ARCHITECTURES.values()):
    importlib.import_module(f"aesthete.models.{_module}")

__all__ = ["AestheticModel", "Batch", "UnknownModelError", "get_model", "list_models", "register_model"]
