"""Shared fixtures. Every test runs with its own XDG data, cache and config directories, so no test
touches a real home directory or database."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

# Whether any phase of a test failed, so its home is kept to look at (as tmp_path_retention_policy = "failed"
# keeps a failed test's tmp_path): a passing test's home is removed at once, because weights caches and
# checkpoints add up to gigabytes over the suite and CI's disk is small.
_FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[pytest.TestReport]:
    report = yield
    if report.failed:
        item.stash[_FAILED] = True
    return report


@pytest.fixture(autouse=True)
def isolated_dirs(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    home = tmp_path_factory.mktemp("home")
    for name in ("DATA", "CACHE", "CONFIG"):
        monkeypatch.setenv(f"AESTHETE_{name}_DIR", str(home / name.lower()))
    monkeypatch.delenv("AESTHETE_DB", raising=False)
    yield home
    if not request.node.stash.get(_FAILED, False):
        shutil.rmtree(home, ignore_errors=True)


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
