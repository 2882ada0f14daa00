"""The one device picker and the one on-device normalisation that scoring and training share, and the
dataset registry the recipes and ``train`` read."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from aesthete import devices
from aesthete.input_policy import IMAGENET_MEAN, IMAGENET_STD
from aesthete.training.datasets import DATASETS, get_dataset, read_dataset
from aesthete.training.splits import DatasetError


def test_auto_prefers_cuda_then_mps_then_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert devices.pick_device("auto").type == "mps"  # training's `auto` never picked MPS before
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert devices.pick_device("auto") == torch.device("cpu")


def test_explicit_devices_are_checked_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(devices.EngineError, match="CUDA was requested"):
        devices.pick_device("cuda", local_rank=1)
    with pytest.raises(devices.EngineError, match="MPS was requested"):
        devices.pick_device("mps")
    with pytest.raises(devices.EngineError, match="unknown device"):
        devices.pick_device("gpu0")


def test_a_process_of_several_gets_its_own_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    assert devices.pick_device("cuda", local_rank=3) == torch.device("cuda", 3)
    assert devices.pick_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(devices.EngineError, match="only 4 CUDA"):
        devices.pick_device("cuda:4")


def test_engine_and_training_normalise_with_the_same_helper() -> None:
    from aesthete import engine
    from aesthete.training import data

    assert engine.pick_device is devices.pick_device and engine.EngineError is devices.EngineError
    assert engine.normalise is devices.normalise and data.normalise is devices.normalise


def test_normalise_is_the_imagenet_formula_in_the_layout_asked_for() -> None:
    pixels = torch.randint(0, 256, (2, 3, 5, 7), dtype=torch.uint8)
    out = devices.normalise(pixels, IMAGENET_MEAN, IMAGENET_STD, channels_last=True)
    expected = (pixels.float() / 255 - torch.tensor(IMAGENET_MEAN).view(3, 1, 1)) / torch.tensor(IMAGENET_STD).view(
        3, 1, 1
    )
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    assert out.dtype == torch.float32 and out.is_contiguous(memory_format=torch.channels_last)
    patches = torch.zeros((1, 2, 3, 4, 4), dtype=torch.uint8)  # 5-D patch batches keep their layout
    assert devices.normalise(patches, IMAGENET_MEAN, IMAGENET_STD, channels_last=True).is_contiguous()
    assert pixels.dtype == torch.uint8  # the input is not modified in place


def test_the_registry_names_each_dataset_once() -> None:
    assert {name: d.bins for name, d in DATASETS.items()} == {"ava": 10, "aadb": 5}
    assert all(get_dataset(name).name == name for name in DATASETS)
    with pytest.raises(DatasetError, match="unknown dataset 'koniq'"):
        get_dataset("koniq")


def test_the_registry_locator_says_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no AVA.txt"):
        get_dataset("ava").locate(tmp_path)
    with pytest.raises(DatasetError, match="is not a directory"):
        read_dataset("aadb", tmp_path / "absent")


def test_recipes_devices_and_preflight_import_no_torch() -> None:
    code = (
        "import sys, aesthete.devices, aesthete.training.preflight, aesthete.training.datasets, "
        "aesthete.cli.train; print('torch' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
