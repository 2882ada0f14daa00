"""The architectures aesthete knows and the module that builds each, readable without importing torch.

``aesthete.models`` imports exactly these modules for their registrations, so this table is the one
place a new model is announced; ``score`` checks a ``--model`` name against it before any torch import.
"""

from __future__ import annotations

ARCHITECTURES: dict[str, str] = {
    "nima": "nima",
    "hla-gcn": "hla_gcn",
    "mp-ada": "mp_ada",
    "apm": "apm",
    "saf": "saf",
    "pear": "pear",
    "pear-prior": "pear",  # PEAR's attribute prior network: trains, never scores photos
    "topiq-iaa": "topiq",  # runs pyiqa's published TOPIQ IAA checkpoint (converted)
    "laion-aesthetic": "laion_aesthetic",  # LAION's head on CLIP ViT-L/14: one score, not a distribution
}


def check_architecture(name: str) -> str:
    """Return ``name`` if aesthete knows it, else raise ValueError listing the known names."""
    if name not in ARCHITECTURES:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(sorted(ARCHITECTURES))}")
    return name
