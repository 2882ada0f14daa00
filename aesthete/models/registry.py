"""A small model registry in the spirit of torchvision's ``_api.py``: builders stored by name."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from typing import Any

from aesthete.errors import AestheteError

_BUILDERS: dict[str, Callable[..., Any]] = {}


def register_model(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a keyword-only builder under ``name``; a duplicate name is a programming error."""

    def wrap(builder: Callable[..., Any]) -> Callable[..., Any]:
        if name in _BUILDERS:
            raise ValueError(f"model {name!r} is already registered")
        _BUILDERS[name] = builder
        return builder

    return wrap


class UnknownModelError(AestheteError, KeyError):
    def __str__(self) -> str:
        return f"unknown model {self.args[0]!r}; known models: {', '.join(sorted(_BUILDERS))}"


def get_model(name: str, **config: Any) -> Any:
    """Build model ``name``. Options left as ``None`` keep the model's defaults (as timm does),
    so a CLI flag the user did not set never overrides a paper's value."""
    try:
        builder = _BUILDERS[name]
    except KeyError:
        raise UnknownModelError(name) from None
    return builder(**{key: value for key, value in config.items() if value is not None})


def list_models(include: str | None = None, exclude: str | None = None) -> list[str]:
    names = sorted(_BUILDERS)
    if include:
        names = [n for n in names if fnmatch.fnmatch(n, include)]
    if exclude:
        names = [n for n in names if not fnmatch.fnmatch(n, exclude)]
    return names
