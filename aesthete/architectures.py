"""The architectures aesthete knows: the one table of model names, readable without importing torch.

``@register_model`` (``aesthete.models.registry``) refuses a name missing from this table or a builder
living in another module than the table says, and ``aesthete.models`` imports exactly the modules listed
here for their registrations. So the registered names derive from this table, and ``score`` checks a
``--model`` name against it before any torch import. Adding a model: one line here, one new module in
``aesthete/models/`` whose builder is decorated with ``@register_model``.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass

from aesthete.errors import AestheteError


@dataclass(frozen=True)
class Architecture:
    name: str
    module: str  # the module of ``aesthete.models`` that registers it
    # False for auxiliary networks that train but never score a photo (PEAR's attribute prior).
    scores_photos: bool = True


# What ``score`` (and every command that reads scores) uses when no ``--model`` is given.
DEFAULT_MODEL = "hla-gcn"

ARCHITECTURES: dict[str, Architecture] = {
    arch.name: arch
    for arch in (
        Architecture("nima", "nima"),
        Architecture("hla-gcn", "hla_gcn"),
        Architecture("mp-ada", "mp_ada"),
        Architecture("apm", "apm"),
        Architecture("saf", "saf"),
        Architecture("pear", "pear"),
        Architecture("pear-prior", "pear", scores_photos=False),
        Architecture("topiq-iaa", "topiq"),  # runs pyiqa's published TOPIQ IAA checkpoint (converted)
        Architecture("laion-aesthetic", "laion_aesthetic"),  # LAION's head on CLIP ViT-L/14: one score
    )
}


class UnknownModelError(AestheteError, KeyError):
    """A model name that is not in :data:`ARCHITECTURES`; the message lists the known ones.

    A ``KeyError`` too, as a failed lookup by name has always been, but printed without KeyError's quotes.
    """

    def __str__(self) -> str:
        name = self.args[0]
        if name in ARCHITECTURES:  # known, but asked to score: an auxiliary network
            return f"model {name!r} never scores photos; models that do: {', '.join(model_names(scoring=True))}"
        return f"unknown model {name!r}; known models: {', '.join(sorted(ARCHITECTURES))}"


def check_architecture(name: str, *, scoring: bool = False) -> str:
    """Return ``name`` if aesthete knows it (and, with ``scoring``, if it can score a photo), else raise
    :class:`UnknownModelError`."""
    arch = ARCHITECTURES.get(name)
    if arch is None or (scoring and not arch.scores_photos):
        raise UnknownModelError(name)
    return name


def filter_names(names: Iterable[str], include: str | None = None, exclude: str | None = None) -> list[str]:
    """``names`` sorted, keeping those matching the ``include`` glob and not the ``exclude`` glob."""
    kept = sorted(names)
    if include:
        kept = [n for n in kept if fnmatch.fnmatch(n, include)]
    if exclude:
        kept = [n for n in kept if not fnmatch.fnmatch(n, exclude)]
    return kept


def model_names(include: str | None = None, exclude: str | None = None, *, scoring: bool = False) -> list[str]:
    """The known model names, sorted, without importing torch; ``scoring`` keeps those that score photos."""
    names = (name for name, arch in ARCHITECTURES.items() if arch.scores_photos or not scoring)
    return filter_names(names, include, exclude)
