"""Shared fixtures. Every test runs with its own XDG data, cache and config directories, so no test
touches a real home directory or database."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def isolated_dirs(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path_factory.mktemp("home")
    for name in ("DATA", "CACHE", "CONFIG"):
        monkeypatch.setenv(f"AESTHETE_{name}_DIR", str(home / name.lower()))
    monkeypatch.delenv("AESTHETE_DB", raising=False)
    return home


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Small, freshly initialised checkpoints (ResNet-18 trunks, 64 px inputs) built by the tests.

    Their scores mean nothing; they exercise the real loading and scoring path quickly."""
    import torch

    from aesthete.checkpoint import save_checkpoint
    from aesthete.models import get_model

    folder = tmp_path_factory.mktemp("checkpoints")
    torch.manual_seed(0)
    out = {}
    for name in ("nima", "hla-gcn"):
        model = get_model(name, backbone="resnet18", input_size=64)
        out[name] = save_checkpoint(model, folder / f"{name}-tiny.safetensors", extra={"note": "test weights"})
    return out
