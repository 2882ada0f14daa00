"""The trainer end to end on CPU, on a tiny synthetic data set written in AVA's release format:

- two gloo processes (``aesthete train --nproc 2``, through ``torch.distributed.run``) reach the same
  parameters as one process with the same global batch;
- a run stopped after an epoch (or mid-epoch) and continued with ``--resume`` ends bit for bit where the
  uninterrupted run ends, metrics included;
- ``aesthete eval`` measures the checkpoint a run wrote, as a table beside the paper's numbers or as JSON.

Small on purpose (ResNet-18 trunks, 64 px warps, ~50 photos, random initialisation): the point is the
machinery, not the scores.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from aesthete.checkpoint import load_state_dict, read_meta
from aesthete.cli import app
from aesthete.models import get_model
from aesthete.training.recipes import differences, list_recipes, parse_override, resolve
from aesthete.training.synthetic import generate
from aesthete.training.trainer import METRICS_FILE, MODEL_FILE, STATE_FILE, RunOptions, TrainingError, run, write_json

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()

# 48 photos -> 12 test (generic_test.jpgl), 3 validation, 33 training. A global batch of 11 makes three
# full steps per epoch, split 6 + 5 between two processes: unequal shares test the loss weighting.
TINY = [
    "model_config.backbone=resnet18",
    "model_config.input_size=64",
    "data.val_size=8",
    "train.batch_size=11",
    "train.pretrained=false",
    "train.amp=none",
    "optim.lr=0.05",
]


@pytest.fixture(scope="module")
def ava_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate(tmp_path_factory.mktemp("ava"), n=48, seed=1, test_fraction=0.25)


def tiny_recipe(*extra: str) -> dict[str, Any]:
    return resolve(list_recipes()["nima-r50-ava"], [parse_override(text) for text in [*TINY, *extra]])


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_state_dict(run_dir / MODEL_FILE)


def epochs_without_timing(metrics: dict[str, Any]) -> list[dict[str, Any]]:
    return [{k: v for k, v in epoch.items() if k != "seconds"} for epoch in metrics["epochs"]]


# --------------------------------------------------------------------------------------------------
# Distributed equivalence


@pytest.mark.slow
def test_two_gloo_processes_take_the_same_steps_as_one(ava_root: Path, tmp_path: Path) -> None:
    """Two CPU processes under ``--nproc 2`` end where one process ends, given the same global batch.

    Exact in principle, so the tolerance is float round-off only. What could make it differ, and why it
    does not here:
    - BatchNorm normalises with the statistics of the batch a process sees (6 or 5 photos instead of 11),
      so per-process BatchNorm cannot match one process. ``train.freeze_bn=true`` runs BatchNorm on its
      running statistics (a fixed per-channel affine map, still trained), which makes the forward pass of
      every photo independent of its batch-mates. (SyncBatchNorm would too, but the trainer only
      converts to it on CUDA, where NCCL supports it.)
    - NIMA's dropout draws masks from each process's RNG, so ``model_config.dropout=0``.
    - Augmentation (flip, 1.05 scale + random crop) is seeded per photo, so it stays on: it is the same
      whichever process decodes the photo.
    The check can fail: the parameters must move from their initial values by far more than the
    tolerance, and gradients that were not averaged (or weighted by the wrong share, or a process that
    saw the wrong photos) would leave the two runs that far apart.
    """
    extra = ["train.freeze_bn=true", "model_config.dropout=0.0", "train.epochs=2"]
    options = ["--no-pretrained", "--device", "cpu", "--workers", "0"]
    args = ["train", "nima", "--dataset", "ava", "--data-root", str(ava_root)]
    for text in [*TINY, *extra]:
        args += ["--set", text]

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    env["OMP_NUM_THREADS"] = "1"
    two = tmp_path / "two"
    proc = subprocess.run(
        [sys.executable, "-m", "aesthete", *args, "--nproc", "2", "--output", str(two), "--workers", "0"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(p.name for p in two.iterdir()) == sorted([STATE_FILE, METRICS_FILE, MODEL_FILE])

    # A second launch into the same folder is refused before any process starts, in one line.
    again = runner.invoke(app, [*args, "--nproc", "2", "--output", str(two)])
    assert again.exit_code == 2 and "pass --resume" in again.output
    assert len([line for line in again.output.splitlines() if line.strip()]) == 1
    no_data = runner.invoke(app, [*args[:5], str(tmp_path), "--nproc", "2", "--output", str(tmp_path / "x")])
    assert no_data.exit_code == 2 and "no AVA.txt" in no_data.output

    one = tmp_path / "one"
    result = runner.invoke(app, [*args, *options, "--output", str(one)])
    assert result.exit_code == 0, result.output

    m1 = json.loads((one / METRICS_FILE).read_text())
    m2 = json.loads((two / METRICS_FILE).read_text())
    assert (m1["processes"], m2["processes"]) == (1, 2)
    assert m1["global_batch"] == m2["global_batch"] == 11
    assert m1["data"] == m2["data"] == {"train": 33, "val": 3, "test": 12}

    torch.manual_seed(0)  # the trainer seeds with train.seed = 0 before it builds the model
    initial = get_model("nima", backbone="resnet18", input_size=64, dropout=0.0).state_dict()
    w1, w2 = weights(one), weights(two)
    assert w1.keys() == w2.keys()
    moved = max(float((w1[k] - initial[k]).abs().max()) for k in w1 if w1[k].is_floating_point())
    gap = max(float((w1[k] - w2[k]).abs().max()) for k in w1 if w1[k].is_floating_point())
    assert moved > 1e-2, f"training barely moved the parameters ({moved}); the comparison would prove nothing"
    assert gap < 1e-4, f"one process and two processes differ by {gap} (training moved them by {moved})"
    # Float sums in a different order (one batch of 11, or 6 + 5 averaged) drift by a few 1e-5 over the run
    # (3.4e-5 in the first convolution with torch 2.14.1); a gradient left unaveraged would move it ~1e-2.
    for k in w1:
        if not w1[k].is_floating_point():
            assert torch.equal(w1[k], w2[k]), k

    # Each epoch's training loss is averaged over the same photos, and evaluation gathers every shard.
    for e1, e2 in zip(m1["epochs"], m2["epochs"], strict=True):
        assert e2["train_loss"] == pytest.approx(e1["train_loss"], rel=1e-4)
        assert e2["val"]["images"] == e1["val"]["images"] == 3
    assert m2["test"]["images"] == m1["test"]["images"] == 12
    assert m2["test"]["emd2"] == pytest.approx(m1["test"]["emd2"], rel=1e-4)


# --------------------------------------------------------------------------------------------------
# Resume


class Stop(Exception):
    """Stands for a crash or Ctrl-C in the middle of a run."""


def stop_at(step: int) -> Any:
    def on_step(global_step: int) -> None:
        if global_step == step:
            raise Stop

    return on_step


@pytest.fixture(scope="module")
def uninterrupted(ava_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two epochs in one go, with NIMA's dropout on so that the RNG state matters to a resume."""
    output = tmp_path_factory.mktemp("runs") / "whole"
    run(tiny_recipe("train.epochs=2"), RunOptions(ava_root, output, device="cpu", workers=0, progress=False))
    return output


@pytest.mark.slow
@pytest.mark.parametrize(
    ("stop", "every"),
    [(4, 0), (6, 2)],
    ids=["after-epoch-1", "mid-epoch-2"],
)
def test_resume_reproduces_the_uninterrupted_run_bit_for_bit(
    ava_root: Path, tmp_path: Path, uninterrupted: Path, stop: int, every: int
) -> None:
    """A run stopped in its fourth optimiser step (3 steps an epoch: the last checkpoint is the end of epoch
    1), or in its sixth with a mid-epoch checkpoint every 2 steps (the last checkpoint is epoch 2, step 2),
    then continued by ``aesthete train --resume``: the same weights to the last bit and the same metrics.
    The work done after the checkpoint is lost and redone, as after a crash."""
    extra = ["train.epochs=2"] + ([f"train.checkpoint_every={every}"] if every else [])
    recipe = tiny_recipe(*extra)
    output = tmp_path / "interrupted"
    with pytest.raises(Stop):
        run(recipe, RunOptions(ava_root, output, device="cpu", workers=0, progress=False), on_step=stop_at(stop))
    state = torch.load(output / STATE_FILE, map_location="cpu", weights_only=True)
    # The last checkpoint: the end of epoch 1 (epoch 1 done, step 0), or step 2 of epoch 2.
    assert (state["epoch"], state["step"]) == ((1, 0) if not every else (1, 2))
    assert not (output / MODEL_FILE).exists()

    # Without --resume an existing run is refused, in one line.
    args = ["train", "nima", "--data-root", str(ava_root), "--output", str(output), "--device", "cpu"]
    args += ["--workers", "0"]
    for text in [*TINY, *extra]:
        args += ["--set", text]
    refused = runner.invoke(app, args)
    assert refused.exit_code == 2 and "pass --resume" in refused.output

    # A different recipe cannot continue it.
    changed = runner.invoke(app, [*args, "--resume", "--lr", "0.1"])
    assert changed.exit_code == 2 and "different recipe (optim.lr)" in changed.output

    resumed = runner.invoke(app, [*args, "--resume", "--limit", "1000"])
    assert resumed.exit_code == 0, resumed.output
    # Its table says how many images it was measured on, and that this is not the paper's recipe; a
    # --limit above every split's size cut nothing, so it is not named as a difference.
    printed = " ".join(resumed.stdout.split())
    assert "test split, 12 images" in printed and "not the paper's setting: " in printed
    assert "train.epochs" in printed and "train.pretrained" in printed and "--limit" not in printed
    assert json.loads((output / METRICS_FILE).read_text())["cut_by_limit"] == []

    whole, again = weights(uninterrupted), weights(output)
    assert whole.keys() == again.keys()
    for key in whole:
        assert torch.equal(whole[key], again[key]), f"{key} differs after --resume"
    m_whole = json.loads((uninterrupted / METRICS_FILE).read_text())
    m_again = json.loads((output / METRICS_FILE).read_text())
    assert epochs_without_timing(m_again) == epochs_without_timing(m_whole)
    assert m_again["test"] == m_whole["test"]


@pytest.mark.slow  # fast itself, but reads the uninterrupted fixture's two-epoch run
def test_the_final_checkpoint_describes_its_run(uninterrupted: Path) -> None:
    meta = read_meta(uninterrupted / MODEL_FILE)
    assert meta["arch"] == "nima"
    assert meta["recipe"] == "nima-r50-ava" and meta["dataset"] == "ava"
    assert meta["trained"]["epochs"] == 2 and meta["trained"]["processes"] == 1
    metrics = json.loads((uninterrupted / METRICS_FILE).read_text())
    assert meta["metrics"]["srcc"] == pytest.approx(metrics["test"]["srcc"])
    assert meta["paper_metrics"] == metrics["paper"] == list_recipes()["nima-r50-ava"]["paper"]["metrics"]
    assert [epoch["epoch"] for epoch in metrics["epochs"]] == [1, 2]
    assert {row["metric"] for row in metrics["comparison"]} >= {"accuracy", "srcc", "lcc", "mse", "emd1", "emd2"}

    # Ready for the registry as it is.
    added = runner.invoke(app, ["weights", "add", str(uninterrupted / MODEL_FILE), "--name", "tiny-nima", "--json"])
    assert added.exit_code == 0, added.output
    assert json.loads(added.stdout)["arch"] == "nima"


def test_resume_refuses_fewer_epochs_than_the_run_has_begun(ava_root: Path, tmp_path: Path) -> None:
    """``--epochs`` may be raised on resume, but not below the epoch the saved state is in: a run stopped in
    epoch 2 and resumed with ``--epochs 1`` wrote a checkpoint that said 1 epoch beside a history of 2
    (field test). Resuming within the epoch it reached is still allowed."""
    output = tmp_path / "run"
    recipe = tiny_recipe("train.epochs=3", "train.checkpoint_every=2")
    options = RunOptions(ava_root, output, device="cpu", workers=0, progress=False, resume=True)
    with pytest.raises(Stop):
        run(recipe, replace(options, resume=False), on_step=stop_at(6))  # 3 steps an epoch: epoch 2, step 2
    fewer = tiny_recipe("train.epochs=1", "train.checkpoint_every=2")
    with pytest.raises(TrainingError, match="has reached epoch 2; --epochs must be at least that"):
        run(fewer, options)
    with pytest.raises(Stop):  # epoch 2 is allowed: the run goes on from where it stopped
        run(tiny_recipe("train.epochs=2", "train.checkpoint_every=2"), options, on_step=stop_at(6))


def test_undefined_metrics_are_null_in_json(tmp_path: Path) -> None:
    """A metric with no value (the SRCC of constant scores) is NaN in memory; ``metrics.json`` and ``eval
    --json`` write it as ``null`` (field test: they wrote ``NaN``, which is not JSON)."""

    def strict(text: str) -> Any:
        return json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in JSON"))

    write_json(tmp_path / METRICS_FILE, {"test": {"srcc": float("nan"), "loss": float("inf"), "mse": 0.5}})
    assert strict((tmp_path / METRICS_FILE).read_text())["test"] == {"srcc": None, "loss": None, "mse": 0.5}

    root = generate(tmp_path / "ava", n=12, seed=3, test_fraction=0.5)
    rows = (root / "AVA.txt").read_text().splitlines()  # every photo the same votes: a constant truth
    (root / "AVA.txt").write_text(
        "".join(f"{i} {r.split()[1]} 0 0 1 2 3 2 1 0 0 0 0 0 0\n" for i, r in enumerate(rows))
    )
    checkpoint = tiny_checkpoint(tmp_path / "nima.safetensors")
    args = ["eval", str(checkpoint), "--dataset", "ava", "--data-root", str(root), "--device", "cpu", "--workers", "0"]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    report = strict(result.stdout)
    assert report["metrics"]["srcc"] is None and report["metrics"]["mse"] >= 0
    assert {row["metric"]: row["ours"] for row in report["comparison"]}["lcc"] is None


# --------------------------------------------------------------------------------------------------
# aesthete eval


@pytest.mark.slow
def test_eval_prints_the_metrics_beside_the_papers(ava_root: Path, uninterrupted: Path) -> None:
    checkpoint = uninterrupted / MODEL_FILE
    base = ["eval", str(checkpoint), "--dataset", "ava", "--data-root", str(ava_root), "--device", "cpu"]
    base += ["--workers", "0"]
    as_json = runner.invoke(app, [*base, "--json"])
    assert as_json.exit_code == 0, as_json.output
    report = json.loads(as_json.stdout)
    # The keys README.md documents for `eval --json`, in its order.
    documented = ["checkpoint", "dataset", "trained_on", "split", "cut_by_limit", "recipe_changes", "metrics",
                  "paper", "comparison"]  # fmt: skip
    assert list(report) == documented and report["trained_on"] == "ava"
    trained = json.loads((uninterrupted / METRICS_FILE).read_text())
    # The checkpoint carries its recipe, so "test" is the same 12 photos it was tested on after training.
    assert report["split"] == "test" and report["metrics"]["images"] == 12
    for name in ("accuracy", "srcc", "lcc", "mse", "emd1", "emd2"):
        assert report["metrics"][name] == pytest.approx(trained["test"][name], abs=1e-6), name
    assert report["paper"]["srcc"] == 0.605
    rows = {row["metric"]: row for row in report["comparison"]}
    assert rows["srcc"]["paper"] == 0.605 and rows["srcc"]["better"] == "higher"
    assert rows["emd2"]["ours"] == pytest.approx(trained["test"]["emd2"], abs=1e-6)

    table = runner.invoke(app, base)
    assert table.exit_code == 0, table.output
    header = next(line for line in table.stdout.splitlines() if "metric" in line)
    assert "ours" in header and "paper" in header
    srcc_row = next(line for line in table.stdout.splitlines() if " srcc " in line)
    assert f"{trained['test']['srcc']:.4f}" in srcc_row and "0.6050" in srcc_row
    # Under it, what the checkpoint's training changed from the paper's recipe, as `train` printed it (eval
    # said nothing of the tiny recipe: its numbers read as the paper's setting).
    changed = "not the paper's setting: " + ", ".join(report["recipe_changes"])
    assert report["recipe_changes"] == differences(
        resolve(list_recipes()["nima-r50-ava"]), tiny_recipe("train.epochs=2")
    )
    assert "train.pretrained" in changed and "model_config.backbone" in changed
    assert "ava test, 12 images" in table.stdout and changed in " ".join(table.stdout.split())
    cut_short = runner.invoke(app, [*base, "--limit", "5"])
    assert "ava test, 5 images" in cut_short.stdout and f"{changed}, --limit 5" in " ".join(cut_short.stdout.split())
    # A limit above the split's 12 photos cuts nothing: the same setting as without it.
    roomy = runner.invoke(app, [*base, "--limit", "50"])
    assert "ava test, 12 images" in roomy.stdout and "--limit" not in roomy.stdout

    val = runner.invoke(app, [*base, "--split", "val", "--json"])
    assert val.exit_code == 0, val.output
    assert json.loads(val.stdout)["metrics"]["images"] == 3
    assert json.loads(val.stdout)["paper"] == {}  # the paper's numbers are test numbers

    limited = runner.invoke(app, [*base, "--limit", "5", "--json"])
    assert limited.exit_code == 0, limited.output
    assert json.loads(limited.stdout)["metrics"]["images"] == 5
    assert json.loads(limited.stdout)["cut_by_limit"] is True and report["cut_by_limit"] is False


@pytest.mark.slow  # fast itself, but reads the uninterrupted fixture's two-epoch run
def test_eval_errors_are_one_line(ava_root: Path, tmp_path: Path, uninterrupted: Path) -> None:
    missing = runner.invoke(app, ["eval", str(tmp_path / "none.safetensors"), "--dataset", "ava", "--data-root", "."])
    assert missing.exit_code == 2 and "Traceback" not in missing.output
    bad_split = runner.invoke(
        app, ["eval", str(uninterrupted / MODEL_FILE), "--dataset", "ava", "--data-root", ".", "--split", "dev"]
    )
    assert bad_split.exit_code == 2 and "--split must be one of train, val, test" in bad_split.output
    empty = tmp_path / "empty"
    empty.mkdir()
    no_data = runner.invoke(
        app, ["eval", str(uninterrupted / MODEL_FILE), "--dataset", "ava", "--data-root", str(empty)]
    )
    assert no_data.exit_code == 2, no_data.output
    assert len([line for line in no_data.output.splitlines() if line.strip()]) == 1


def tiny_checkpoint(path: Path, dataset: str = "ava") -> Path:
    """An untrained NIMA (10 bins) written as a trained run's checkpoint would be: no training needed."""
    from aesthete.checkpoint import save_checkpoint

    return save_checkpoint(get_model("nima", backbone="resnet18", input_size=64), path, extra={"dataset": dataset})


def test_eval_refuses_a_checkpoint_whose_bins_do_not_fit_the_dataset(tmp_path: Path) -> None:
    """An AVA checkpoint (10 bins) measured on AADB (5 bins) is refused in one line before any photo is
    read (field test: a traceback from the loss, "size of tensor a (10) must match ... (5)")."""
    from test_training_datasets import small_aadb

    small_aadb(tmp_path / "AADB")
    checkpoint = tiny_checkpoint(tmp_path / "ava-nima.safetensors")
    args = ["eval", str(checkpoint), "--dataset", "aadb", "--data-root", str(tmp_path / "AADB"), "--device", "cpu"]
    result = runner.invoke(app, [*args, "--workers", "0", "--json"])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "predicts 10 score bins (trained on ava); aadb's votes have 5" in lines[0], lines


@pytest.mark.parametrize("trained_on", ["ava", "aadb"])
def test_a_checkpoint_trained_on_another_dataset_is_measured_without_the_papers_figures(
    trained_on: str, tmp_path: Path
) -> None:
    """The papers report each model trained and tested on one dataset: a checkpoint trained on AADB and
    measured on AVA (its 10 bins fit both here) gets its metrics, no paper column, and a caption that says
    so; `--json` names the dataset it was trained on. Trained on AVA, the same checkpoint gets the paper's."""
    from aesthete.checkpoint import save_checkpoint

    root = generate(tmp_path / "ava", n=12, seed=3, test_fraction=0.5)
    recipe = {**tiny_recipe(), "dataset": trained_on}  # as a run of it on that dataset records it
    model = get_model("nima", backbone="resnet18", input_size=64)
    extra = {"dataset": trained_on, "trained": {"recipe": recipe}}
    checkpoint = save_checkpoint(model, tmp_path / "nima.safetensors", extra=extra)
    args = ["eval", str(checkpoint), "--dataset", "ava", "--data-root", str(root), "--device", "cpu", "--workers", "0"]
    as_json = runner.invoke(app, [*args, "--json"])
    assert as_json.exit_code == 0, as_json.output
    report = json.loads(as_json.stdout)
    assert report["trained_on"] == trained_on and report["metrics"]["images"] == 6
    crossed = trained_on != "ava"
    assert (report["paper"] == {}) == crossed
    papers = {row["metric"]: row["paper"] for row in report["comparison"]}
    assert papers["srcc"] == (None if crossed else 0.605) and (not crossed or set(papers.values()) == {None})
    table = runner.invoke(app, args)
    assert table.exit_code == 0, table.output
    assert ("not the paper's setting: trained on aadb" in " ".join(table.stdout.split())) == crossed
    assert ("0.6050" in table.stdout) != crossed  # NIMA's AVA SRCC, in the paper column


def test_an_empty_test_split_is_refused_before_training_or_measuring(tmp_path: Path) -> None:
    """An empty test list (or one naming no row of AVA.txt) leaves nothing to test on: ``train`` refuses it
    before the first epoch and leaves no run folder, ``eval`` refuses it too (field test: the run trained,
    printed an empty "test" line and a table of the paper's numbers beside "-", exit 0)."""
    root = generate(tmp_path / "ava", n=16, seed=2, test_fraction=0.25)
    (root / "aesthetics_image_lists" / "generic_test.jpgl").write_text("")
    output = tmp_path / "run"
    args = ["train", "nima", "--data-root", str(root), "--output", str(output), "--device", "cpu", "--workers", "0"]
    for text in TINY:
        args += ["--set", text]
    trained = runner.invoke(app, args)
    assert trained.exit_code == 2, trained.output
    assert trained.output.splitlines()[-1] == f"error: the test split of {root} holds no usable images"
    assert not output.exists()

    checkpoint = tiny_checkpoint(tmp_path / "nima.safetensors")
    measured = runner.invoke(app, ["eval", str(checkpoint), "--dataset", "ava", "--data-root", str(root), "--json"])
    assert measured.exit_code == 2 and "the test split of" in measured.output, measured.output


# --------------------------------------------------------------------------------------------------
# A run that cannot start


@pytest.mark.parametrize(
    ("case", "message"),
    [("no dataset", "no AVA.txt"), ("nothing to resume", "--resume: no training state"), ("folder made", "no AVA")],
)
def test_a_run_that_fails_to_start_leaves_no_folder_it_made(tmp_path: Path, case: str, message: str) -> None:
    """A failed start says why in one line (exit 2) and removes the run folder, and the parents, that it
    made; a folder that was there before is kept (field test: an empty --output was left behind)."""
    data_root = tmp_path / "not-ava"
    data_root.mkdir()
    output = tmp_path / "runs" / "nima"
    if case == "folder made":
        output.mkdir(parents=True)
    args = ["train", "nima", "--data-root", str(data_root), "--output", str(output), "--device", "cpu"]
    for text in TINY:
        args += ["--set", text]
    result = runner.invoke(app, [*args, *(["--resume"] if case == "nothing to resume" else [])])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], result.output
    assert sorted(os.listdir(tmp_path)) == (["not-ava", "runs"] if case == "folder made" else ["not-ava"])
    assert output.is_dir() == (case == "folder made")


@pytest.mark.slow  # a training run in a subprocess
def test_a_failed_write_into_the_run_folder_is_one_line(ava_root: Path, tmp_path: Path) -> None:
    """A disk that fills up (here a 1 MB file size limit: the first state.pt is ~90 MB) stops the run with
    the file and the system's reason in one line, exit 2, and no temporary file left (field test on a
    full tmpfs: torch.save's "unexpected pos 15920384 vs 15920280" traceback, exit 1). A folder that
    cannot be made (here under a file; a read-only file system in the field test) is the same."""
    import resource
    import signal

    def small_files() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))

    output = tmp_path / "run"
    args = ["train", "nima", "--data-root", str(ava_root), "--device", "cpu", "--workers", "0"]
    for text in [*TINY, "train.epochs=1"]:
        args += ["--set", text]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [sys.executable, "-m", "aesthete", *args, "--output", str(output)],
        env=env, capture_output=True, text=True, timeout=300, check=False, preexec_fn=small_files,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert proc.stderr.splitlines()[-1] == f"error: cannot write {output / STATE_FILE}: File too large"
    assert "Traceback" not in proc.stderr
    assert not output.exists()  # nothing was written, so the folder it made is gone again

    (tmp_path / "file").write_text("")
    under_a_file = runner.invoke(app, [*args, "--output", str(tmp_path / "file" / "run")])
    assert under_a_file.exit_code == 2, under_a_file.output
    assert f"error: cannot write {tmp_path / 'file' / 'run'}: Not a directory" in under_a_file.output


# --------------------------------------------------------------------------------------------------
# ImageNet initialisation


def test_torchvision_imagenet_weights_map_onto_the_backbone_trunk() -> None:
    """The default initialisation: a torchvision classifier's state dict (here a random one: no download in
    tests) loads strictly into the model's trunk, tensor for tensor; the classifier head is left out."""
    import torchvision

    from aesthete.models.backbones import load_imagenet_trunk

    torch.manual_seed(1)
    classifier = torchvision.models.resnet18(weights=None).state_dict()
    model = get_model("nima", backbone="resnet18", input_size=64)
    load_imagenet_trunk(model.features, "resnet18", classifier)
    trunk = model.features.state_dict()
    assert len(trunk) == len([k for k in classifier if not k.startswith("fc.")])
    assert torch.equal(trunk["0.weight"], classifier["conv1.weight"])
    assert torch.equal(trunk["4.1.conv2.weight"], classifier["layer1.1.conv2.weight"])
    assert torch.equal(trunk["7.0.downsample.1.running_var"], classifier["layer4.0.downsample.1.running_var"])


# --------------------------------------------------------------------------------------------------
# Launching several processes


def test_the_launcher_is_torchrun_standalone_or_multi_node() -> None:
    from aesthete.training.launcher import launch_command

    single = launch_command(nproc=4)
    assert single[1:4] == ["-m", "aesthete.training.torchrun", "--nproc-per-node=4"]
    assert "--standalone" in single and single[-2:] == ["-m", "aesthete.training.launcher"]
    multi = launch_command(nproc=8, nodes=2, node_rank=1, master_addr="10.0.0.1", master_port=29511)
    assert "--standalone" not in multi
    assert {"--nnodes=2", "--node-rank=1", "--master-addr=10.0.0.1", "--master-port=29511"} <= set(multi)


def test_the_launcher_run_by_hand_says_what_it_is_in_one_line() -> None:
    """`python -m aesthete.training.launcher` without the job `aesthete train` hands it was a KeyError
    traceback (field test)."""
    from aesthete.training.launcher import JOB_ENV

    env = {k: v for k, v in os.environ.items() if k != JOB_ENV} | {"PYTHONPATH": str(ROOT), "COLUMNS": "1000"}
    result = subprocess.run([sys.executable, "-m", "aesthete.training.launcher"], env=env, capture_output=True,
                            text=True, timeout=120)  # fmt: skip
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.splitlines() == [
        "error: aesthete.training.launcher is an internal entry point, started by `aesthete train --nproc N` "
        "or `--gpus N`; run that instead"
    ]


def test_a_failed_rank_ends_torchrun_in_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """torchrun's ``ChildFailedError`` (its own traceback and a 30-line report, exit 1) becomes: the
    library error the ranks stopped on, once, and exit 2 (field test: ``--nproc 2 --resume --lr 0.5``
    printed ~45 lines after the ranks' "different recipe", then each rank's copy of it), else one line
    naming the rank."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError, ProcessFailure

    from aesthete.training.launcher import ERROR_FILE_ENV, report_error
    from aesthete.training.torchrun import ended

    def failed(exitcode: int) -> ChildFailedError:
        return ChildFailedError("aesthete.training.launcher", {1: ProcessFailure(1, 4242, exitcode, "")})

    error_files = [tmp_path / f"error{rank}.json" for rank in range(2)]
    for error_file in error_files:  # both ranks stop on the same library error, as ranks do
        monkeypatch.setenv(ERROR_FILE_ENV, str(error_file))
        report_error("error: 33 training images make no batch across 2 processes")
    assert capsys.readouterr().err == ""
    both = {rank: ProcessFailure(rank, 4242 + rank, 2, str(error_files[rank])) for rank in range(2)}
    assert ended(ChildFailedError("aesthete.training.launcher", both)) == 2
    assert capsys.readouterr().err == "error: 33 training images make no batch across 2 processes\n"
    monkeypatch.setenv(ERROR_FILE_ENV, str(tmp_path / "gone" / "error.json"))  # unwritable: said on stderr
    report_error("error: a")
    monkeypatch.delenv(ERROR_FILE_ENV)  # not under torchrun
    report_error("error: b")
    assert capsys.readouterr().err == "error: a\nerror: b\n"
    assert ended(failed(-9)) == 1
    assert capsys.readouterr().err == "error: training process of rank 1 was killed by SIGKILL\n"
    assert ended(failed(1)) == 1
    assert capsys.readouterr().err == "error: training process of rank 1 exited with status 1\n"


@pytest.mark.slow  # two training processes
def test_a_library_error_of_every_rank_is_said_once(ava_root: Path, tmp_path: Path) -> None:
    """Before: each rank printed it, between torchrun's own W and E log lines."""
    args = ["train", "nima", "--data-root", str(ava_root), "--output", str(tmp_path / "run"), "--nproc", "2",
            "--workers", "0", *(f"--set={value}" for value in TINY), "--set=train.batch_size=1"]  # fmt: skip
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "1000", "TMPDIR": str(temp)}
    env.pop("LOGLEVEL", None)
    result = subprocess.run([sys.executable, "-m", "aesthete", *args], env=env, capture_output=True, text=True,
                            timeout=300)  # fmt: skip
    lines = result.stderr.splitlines()
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert [line for line in lines if not line.startswith("AVA: ")] == [
        "error: 33 training images make no batch across 2 processes"
    ], result.stderr
    assert leftovers(temp) == [], "torchrun's log folder outlived the run"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a parent-death signal is Linux's")
def test_torchrun_stops_when_aesthete_train_is_killed(tmp_path: Path) -> None:
    """``kill -9`` of ``aesthete train --nproc 2`` left torchrun and its ranks training on, unseen, to the
    end of the run (field test), beside any ``--resume`` of the same folder. torchrun now gets a SIGINT
    when its parent dies, as on Ctrl-C. Here a stand-in for torchrun (the same call, then a long sleep) is
    started by a stand-in for ``aesthete train``, which is killed: the pipe they share closes only when
    the stand-in for torchrun has ended, and it says it ended on SIGINT."""
    torchrun = (
        "import time\n"
        "from aesthete.training.torchrun import stop_with_parent\n"
        "stop_with_parent()\n"
        "try:\n"  # before 'started': the SIGINT may come as soon as that is read
        "    print('started', flush=True)\n"
        "    time.sleep(120)\n"
        "except KeyboardInterrupt:\n"
        "    print('stopped by SIGINT', flush=True)\n"
    )
    train = (
        "import os, subprocess, sys\n"
        f"env = {{**os.environ, 'AESTHETE_TRAIN_PID': str(os.getpid())}}\n"
        f"subprocess.Popen([sys.executable, '-c', {torchrun!r}], env=env).wait()\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    parent = subprocess.Popen([sys.executable, "-c", train], env=env, stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    assert parent.stdout.readline() == "started\n"
    parent.kill()
    assert parent.stdout.read() == "stopped by SIGINT\n"  # EOF: every process holding the pipe has ended
    parent.wait()


def leftovers(temp: Path) -> list[str]:
    """What a run left in its TMPDIR, but torch's compile cache (kept between runs on purpose)."""
    return sorted(path.name for path in temp.iterdir() if not path.name.startswith("torchinductor_"))


@pytest.mark.slow  # two training processes
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a parent-death signal is Linux's")
def test_kill_9_of_a_multi_process_train_leaves_nothing_in_tmp(ava_root: Path, tmp_path: Path) -> None:
    """The job (recipe and options) went to torchrun's ranks in /tmp/aesthete-job-*.json, removed only by
    the `aesthete train` that wrote it: after a ``kill -9`` it stayed forever (field test); and torchrun's
    own /tmp/torchelastic_* folder stayed after every run."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    args = ["train", "nima", "--data-root", str(ava_root), "--output", str(tmp_path / "run"), "--nproc", "2",
            "--workers", "0", "--epochs", "50", *(f"--set={value}" for value in TINY)]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(temp)}
    train = subprocess.Popen([sys.executable, "-m", "aesthete", *args], env=env, stderr=subprocess.PIPE, text=True,
                             start_new_session=True)  # fmt: skip
    assert train.stderr is not None
    lines = iter(train.stderr.readline, "")
    assert any(line.startswith("AVA: ") for line in lines), "rank 0 did not start"  # the ranks read the job
    train.kill()
    train.wait()
    # Every process of the run holds the pipe: EOF means torchrun stopped its ranks and all have ended.
    train.stderr.read()
    assert leftovers(temp) == [], "files outlived the run"


def test_gpu_options_fail_in_one_line_without_gpus(ava_root: Path, tmp_path: Path) -> None:
    base = ["train", "nima", "--data-root", str(ava_root), "--output", str(tmp_path / "run")]
    both = runner.invoke(app, [*base, "--gpus", "2", "--nproc", "2"])
    assert both.exit_code == 2 and "not both" in both.output
    if not torch.cuda.is_available():
        missing = runner.invoke(app, [*base, "--gpus", "2"])
        assert missing.exit_code == 2 and "--gpus 2 asked for, but 0 CUDA device(s) are visible" in missing.output
    bad_rank = runner.invoke(app, [*base, "--nodes", "2", "--node-rank", "2"])
    assert bad_rank.exit_code == 2 and "--node-rank must be below --nodes" in bad_rank.output


# --------------------------------------------------------------------------------------------------
# Staged recipes


def test_pear_prior_trains_and_reports_its_loss(tmp_path: Path) -> None:
    """PEAR's prior predicts attributes, no score distribution: its validation and test measure its loss
    (field test: ``KeyError: 'probs'`` at the first validation, so ``pear-prior-aadb`` never finished an
    epoch), and the run ends on that loss, not on an empty comparison table."""
    from test_training_datasets import small_aadb

    small_aadb(tmp_path / "AADB")
    output = tmp_path / "prior"
    args = ["train", "pear-prior", "--dataset", "aadb", "--data-root", str(tmp_path / "AADB"), "--output", str(output),
            "--no-pretrained", "--device", "cpu", "--workers", "0"]  # fmt: skip
    for text in ["model_config.backbone=resnet18", "model_config.input_size=64", "model_config.resize_short=72",
                 "train.batch_size=2", "train.amp=none"]:  # fmt: skip
        args += ["--set", text]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "pear-prior-aadb: test loss " in result.output and "┏" not in result.output
    metrics = json.loads((output / METRICS_FILE).read_text())
    assert metrics["test"]["images"] == 1 and metrics["epochs"][0]["val"]["images"] == 1
    assert read_meta(output / MODEL_FILE)["arch"] == "pear-prior"


def test_a_missing_init_checkpoint_is_one_line_before_the_data_is_read(tmp_path: Path) -> None:
    """A staged recipe run before its previous stage (``init`` names no file) is refused in one line,
    exit 2, leaving no run folder (field test: a ``FileNotFoundError`` traceback after the data was read)."""
    output = tmp_path / "run"
    missing = tmp_path / "stage1" / "model.safetensors"
    args = ["train", "pear-r50-aadb", "--data-root", str(tmp_path), "--output", str(output), "--device", "cpu",
            "--set", f"init={missing}", "--set", "model_config.backbone=resnet18", "--no-pretrained"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines == [
        f"error: init {missing} does not exist: train the stage that writes it first (docs/training.md), "
        "or point --set init=PATH at its model.safetensors"
    ], lines
    assert not output.exists()


def test_a_missing_teacher_does_not_suggest_no_pretrained(monkeypatch: pytest.MonkeyPatch) -> None:
    """APM's semantic stage distils an ImageNet classifier whatever --no-pretrained says, so its missing
    weights name the pull, not --no-pretrained (field test: the message told a --no-pretrained run to pass
    --no-pretrained); a backbone's missing weights still offer it."""
    import torchvision

    from aesthete import weights
    from aesthete.models import backbones

    def offline(name: str) -> Any:
        raise OSError("no network")

    monkeypatch.setattr(weights, "backbone_weights_path", lambda name: None)
    monkeypatch.setattr(torchvision.models, "get_weight", offline)
    with pytest.raises(weights.WeightsError) as teacher:
        backbones.imagenet_classifier("resnet18")
    assert "aesthete weights pull resnet18-imagenet1k-v1" in str(teacher.value)
    assert str(teacher.value).endswith("; a teacher needs them even with --no-pretrained")
    with pytest.raises(weights.WeightsError, match="; pass --no-pretrained$"):
        backbones.imagenet_state_dict("resnet18")


def test_a_missing_teacher_stops_the_run_before_its_data_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """APM's teacher is built after the data plan, so its missing weights stopped a run only after the
    labels were read and every image found (minutes on AVA); ``train`` now checks them first. The data
    root here holds no AVA.txt: the old order said so instead."""
    import torchvision

    from aesthete import weights

    def offline(name: str) -> Any:
        raise OSError("no network")

    monkeypatch.setattr(weights, "backbone_weights_path", lambda name: None)
    monkeypatch.setattr(torchvision.models, "get_weight", offline)
    (tmp_path / "AVA").mkdir()
    result = runner.invoke(app, ["train", "apm-r101-ava-semantic", "--data-root", str(tmp_path / "AVA"),
                                 "--output", str(tmp_path / "run"), "--device", "cpu", "--no-pretrained"])  # fmt: skip
    assert result.exit_code == 2, result.output
    assert result.output.splitlines() == [
        "error: ImageNet weights for resnet101 are not available (OSError: no network); run `aesthete weights "
        "pull resnet101-imagenet1k-v1` (see `aesthete weights list`); a teacher needs them even with --no-pretrained"
    ]
    assert not (tmp_path / "run").exists()


@pytest.mark.slow  # a training run
def test_an_epoch_without_validation_says_no_val(ava_root: Path, tmp_path: Path) -> None:
    """``data.val_size = 0`` (MP_ada's recipe trains on the whole pool): the epoch line leaves "val" out
    rather than printing "val" with nothing after it (field test: ``lr 0.001  val   (18 s)``)."""
    args = ["train", "nima", "--data-root", str(ava_root), "--output", str(tmp_path / "run"), "--device", "cpu",
            "--workers", "0"]  # fmt: skip
    for text in [*TINY, "data.val_size=0", "train.epochs=1"]:
        args += ["--set", text]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    epoch = next(line for line in result.output.splitlines() if line.startswith("epoch 1/1"))
    assert " val" not in epoch and epoch.endswith(" s)"), epoch


@pytest.mark.slow  # tests a two-epoch run again
def test_resuming_a_finished_run_says_so_and_tests_it_again(
    ava_root: Path, tmp_path: Path, uninterrupted: Path
) -> None:
    """``--resume`` of a run that has done all its epochs trains nothing and tests the same weights again
    (field test: it said "resumed at epoch 3, step 0" of a 2-epoch run)."""
    import shutil

    output = shutil.copytree(uninterrupted, tmp_path / "whole")
    lines: list[str] = []
    options = RunOptions(ava_root, output, device="cpu", workers=0, progress=False, resume=True)
    summary = run(tiny_recipe("train.epochs=2"), options, say=lines.append)
    assert "the run has finished its 2 epochs: testing it again (raise --epochs to train on)" in lines
    assert not [line for line in lines if line.startswith(("resumed", "epoch"))], lines
    assert summary["test"] == json.loads((uninterrupted / METRICS_FILE).read_text())["test"]


def test_a_run_folder_is_new_empty_unrelated_or_a_run_to_resume_never_files_a_run_would_overwrite(
    tmp_path: Path,
) -> None:
    """``--output`` may be a new folder, an empty one, or one whose files a run leaves alone; a folder
    holding another run (without --resume), or a model.safetensors / metrics.json no run left there
    (field test: a folder of downloaded checkpoints was accepted, and its model.safetensors would have
    been replaced at the end), is refused in one line before any data is read, the file untouched."""
    from aesthete.training.preflight import check_run_folder

    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "IMG_0001.jpg").write_bytes(b"jpeg")
    for folder in (tmp_path / "new", photos):
        check_run_folder(folder, resume=False)
    finished = tmp_path / "finished"
    finished.mkdir()
    for name in (STATE_FILE, METRICS_FILE, MODEL_FILE):
        (finished / name).write_bytes(b"run")
    check_run_folder(finished, resume=True)
    with pytest.raises(TrainingError, match="already holds a run; pass --resume"):
        check_run_folder(finished, resume=False)
    with pytest.raises(TrainingError, match="--resume: no training state at"):
        check_run_folder(photos, resume=True)

    downloads = tmp_path / "downloads"
    downloads.mkdir()
    (downloads / MODEL_FILE).write_bytes(b"someone else's checkpoint")
    args = ["train", "nima", "--data-root", str(tmp_path / "no-data-read"), "--output", str(downloads),
            "--device", "cpu", "--nproc", "2", "--no-pretrained"]  # fmt: skip
    (tmp_path / "no-data-read").mkdir()
    for launch in (args, args[:-3] + ["--no-pretrained"]):  # checked before torchrun, and by the trainer
        result = runner.invoke(app, launch)
        assert result.exit_code == 2, result.output
        assert result.output.splitlines() == [
            f"error: --output {downloads} holds {MODEL_FILE} but no training run, which a run would overwrite; "
            "choose another --output"
        ]
    assert (downloads / MODEL_FILE).read_bytes() == b"someone else's checkpoint"
    assert sorted(p.name for p in downloads.iterdir()) == [MODEL_FILE]


def test_output_that_is_a_file_and_eval_of_a_model_that_scores_no_photo_are_one_line(tmp_path: Path) -> None:
    """``--output FILE`` names the file as the mistake (field test: "cannot write FILE: File exists"), and
    ``eval`` of PEAR's prior says it scores no photo (field test: "predicts 0 score bins")."""
    from test_training_datasets import small_aadb

    from aesthete.checkpoint import save_checkpoint

    small_aadb(tmp_path / "AADB")
    (tmp_path / "file").write_text("")
    args = ["train", "nima", "--data-root", str(tmp_path / "AADB"), "--output", str(tmp_path / "file"), "--device",
            "cpu", "--workers", "0", "--set", "model_config.backbone=resnet18", "--no-pretrained"]  # fmt: skip
    to_a_file = runner.invoke(app, args)
    assert to_a_file.exit_code == 2, to_a_file.output
    assert to_a_file.output.splitlines() == [f"error: --output {tmp_path / 'file'} is a file, not a folder"]

    prior = get_model("pear-prior", backbone="resnet18", input_size=64, resize_short=72)
    checkpoint = save_checkpoint(prior, tmp_path / "prior.safetensors", extra={"dataset": "aadb"})
    args = ["eval", str(checkpoint), "--dataset", "aadb", "--data-root", str(tmp_path / "AADB"), "--device", "cpu"]
    measured = runner.invoke(app, args)
    assert measured.exit_code == 2, measured.output
    assert measured.output.splitlines() == [
        f"error: {checkpoint} holds pear-prior, which scores no photo: nothing to measure against votes"
    ]


@pytest.mark.parametrize("node_rank", [0, 1])
def test_the_interrupted_line_is_one_line_on_a_narrow_console(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, node_rank: int
) -> None:
    """What a Ctrl-C leaves is said on one line however narrow the console (field test, COLUMNS=80: the
    line broke after "checkpoint;" into two)."""
    import typer

    from aesthete.cli import common
    from aesthete.cli.train import _say_interrupted

    monkeypatch.setattr(common.err, "_width", 60)
    output = tmp_path / "a-run-folder-with-a-long-name"
    output.mkdir()
    (output / STATE_FILE).write_bytes(b"")
    with pytest.raises(typer.Exit):
        _say_interrupted(output, node_rank)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("interrupted: ") and "--resume" in lines[0], lines
