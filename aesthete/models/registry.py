"""A small model registry in the spirit of torchvision's ``_api.py``: builders stored by name.

The names come from :data:`aesthete.architectures.ARCHITECTURES`, the torch-free table: registering a
name that is not there (or from another module than the table says) fails at import, so the table and
the registry cannot drift apart.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from aesthete.architectures import ARCHITECTURES, UnknownModelError, filter_names
from aesthete.errors import AestheteError, OptionError
from aesthete.wording import did_you_mean

_BUILDERS: dict[str, Callable[..., Any]] = {}

__all__ = ["UnknownModelError", "get_model", "list_models", "register_model"]


def register_model(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a keyword-only builder under ``name``, which must be in ``ARCHITECTURES`` with the
    builder's module; a duplicate or unlisted name is a programming error."""

    def wrap(builder: Callable[..., Any]) -> Callable[..., Any]:
        arch = ARCHITECTURES.get(name)
        if arch is None:
            raise ValueError(f"model {name!r} is not listed in aesthete.architectures.ARCHITECTURES")
        if builder.__module__ != f"aesthete.models.{arch.module}":
            raise ValueError(f"model {name!r} is listed as built in {arch.module}, not {builder.__module__}")
        if name in _BUILDERS:
            raise ValueError(f"model {name!r} is already registered")
        _BUILDERS[name] = builder
        return builder

    return wrap


def get_model(name: str, **config: Any) -> Any:
    """Build model ``name``. Options left as ``None`` keep the model's defaults (as timm does),
    so a CLI flag the user did not set never overrides a paper's value. An option the builder does not
    take, or a value it refuses, raises :class:`aesthete.errors.OptionError` (a ``ValueError``)."""
    try:
        builder = _BUILDERS[name]
    except KeyError:
        raise UnknownModelError(name) from None
    options = {key: value for key, value in config.items() if value is not None}
    parameters = inspect.signature(builder).parameters
    unknown = sorted(set(options) - set(parameters))
    if unknown:
        raise OptionError(f"{name} has no option {unknown[0]!r}{did_you_mean(unknown[0], parameters)}")
    try:
        return builder(**options)
    except AestheteError:
        raise
    except ValueError as exc:  # the builders' own checks of their values (an unknown backbone, ...)
        raise OptionError(f"{name}: {exc}") from None


def list_models(include: str | None = None, exclude: str | None = None) -> list[str]:
    """The registered names (sorted), filtered by ``include`` / ``exclude`` globs."""
    return filter_names(_BUILDERS, include, exclude)
