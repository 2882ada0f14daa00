"""``--compile``: compiled and eager runners score alike, ``off`` never compiles, auto's decision.

Agreement: small seeded configs of every model that scores photos (tests/test_models.py's, plus the
small towers of the published architectures that tests/test_precision_published.py uses) score 16
varied generated photos through the real :class:`ModelRunner`, eager and through ``torch.compile``
(inductor, freezing on CPU), both in fp32; their mean scores must agree within 0.01 and their order
(Spearman > 0.999). A real compilation takes 10-90 s on 2 shared cores, so those cases are slow; the
rest stand torch.compile in with a recorder or a failing compiler and run in seconds.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import imagegen as g
import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from test_models import SMALL, build
from test_precision_published import CASES as PUBLISHED
from test_precision_published import last_linear

from aesthete import engine
from aesthete.engine import MAX_COMPILED_SHAPES, ModelRunner, inductor_cache_dir
from aesthete.errors import AestheteError
from aesthete.models import get_model
from aesthete.scoring import COMPILE_GAINS, COMPILE_MARGIN, compile_decision, score
from aesthete.store import Store

PHOTOS = [g.scene(seed, (144, 96)) for seed in range(16)]
APM_LAST_LAYER_GAIN = 100.0  # as in test_precision: APM's initial bias otherwise hides every photo's term


def _model(case: str) -> Any:
    if case in PUBLISHED:  # small towers, last layer scaled up as test_precision_published explains
        arch, config, gain = PUBLISHED[case]
        torch.manual_seed(0)
        model = get_model(arch, **config)
        with torch.no_grad():
            last_linear(model).weight.mul_(gain)
        return model
    model = build(case)
    if case == "apm":
        with torch.no_grad():
            model.head[2].weight.mul_(APM_LAST_LAYER_GAIN)
    return model


def _scores(runner: ModelRunner, model: Any) -> np.ndarray:
    """Each photo's mean score, in batches of 8 grouped by input shape as ``score`` batches them."""
    inputs = [model.policy.prepare(photo) for photo in PHOTOS]
    out = np.zeros(len(PHOTOS))
    by_shape: dict[tuple, list[int]] = {}
    for i, pixels in enumerate(inputs):
        by_shape.setdefault(pixels.shape, []).append(i)
    for indices in by_shape.values():
        for start in range(0, len(indices), 8):
            chunk = indices[start : start + 8]
            pixels = np.stack([inputs[i] for i in chunk])
            aspect = np.array([PHOTOS[i].width / PHOTOS[i].height for i in chunk])
            rows = runner(pixels, aspect)
            out[chunk] = rows if rows.ndim == 1 else rows @ model.bin_values.numpy().astype(np.float64)
    return out


def _eager_and_compiled(case: str, dtype: torch.dtype | None, cache: Path) -> tuple[np.ndarray, np.ndarray]:
    """The 16 photos' mean scores from the eager runner and from the compiled one, in one precision."""
    model = _model(case)
    eager = _scores(ModelRunner(_model(case), torch.device("cpu"), dtype), model)
    runner = ModelRunner(model, torch.device("cpu"), dtype, compile=True, cache_dir=cache, batch_size=8)
    compiled = _scores(runner, model)
    assert runner.compiled and runner.compile_failure is None, runner.compile_failure
    assert runner.compiled_shapes, "the compiled code never ran"
    assert eager.std() > 0.01, f"{case}: scores too alike ({eager.std():.4f}) for ranks to mean anything"
    return eager, compiled


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(SMALL) + sorted(PUBLISHED))
def test_compiled_scores_agree_with_eager(case: str, tmp_path: Path) -> None:
    eager, compiled = _eager_and_compiled(case, None, tmp_path / "inductor")
    assert abs(compiled.mean() - eager.mean()) < 0.01
    assert np.abs(compiled - eager).max() < 0.01
    rho = spearmanr(eager, compiled).statistic
    assert rho > 0.999, f"{case}: rank correlation {rho:.5f}"


# The models --compile auto compiles in bf16 on a CPU with AMX: the case standing for each ("cpu", "bf16-amx",
# arch, backbone) entry of COMPILE_GAINS (test_auto_decision checks that every entry has one).
BF16_COMPILED = {
    "hla-gcn": ("hla-gcn", "resnet50"),
    "laion-aesthetic": ("laion-aesthetic", None),
    "nima": ("nima", "resnet50"),
    "nima-vgg16": ("nima", "vgg16"),
    "topiq-iaa": ("topiq-iaa", None),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(BF16_COMPILED))
def test_compiled_bf16_scores_agree_with_eager_bf16(case: str, tmp_path: Path) -> None:
    """In bf16 the two programs round differently (autocast casts each operation's inputs; the frozen
    program holds prepacked bf16 weights and fuses the operations between them), so they differ by bf16's
    own rounding, as eager bf16 differs from fp32. The means agree within 0.01 as in fp32; each photo and
    the order are held to the bound eager bf16 meets against fp32 (tests/test_precision.py: every score
    within 0.05 of fp32's, Spearman > 0.99). Measured here on the LAION case, compiled against eager bf16:
    largest move 0.016-0.018, Spearman 0.989 with oneDNN limited to AVX2 and 0.996 with AMX; against fp32
    0.011-0.016, Spearman 0.994-0.999 (eager bf16 against fp32: 0.019, 0.996)."""
    eager, compiled = _eager_and_compiled(case, torch.bfloat16, tmp_path / "inductor")
    assert abs(compiled.mean() - eager.mean()) < 0.01
    model = _model(case)
    fp32 = _scores(ModelRunner(model, torch.device("cpu"), None), model)
    change = np.abs(compiled - fp32).max()
    assert fp32.std() > 5 * change, f"{case}: scores too alike ({fp32.std():.4f}) for ranks to mean anything"
    assert change < 0.05, f"{case}: the compiled bf16 program moved a score by {change:.4f} from fp32's"
    rho = spearmanr(fp32, compiled).statistic
    assert rho > 0.99, f"{case}: rank correlation {rho:.5f}"


class _Recorder:
    """Stands in for torch.compile: runs the model eagerly and records every input shape it is given."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.shapes: list[tuple[int, ...]] = []

    def __call__(self, model: Any, **kwargs: Any) -> Any:
        self.calls.append(kwargs)

        def run(batch: torch.Tensor, ratios: torch.Tensor) -> Any:
            self.shapes.append(tuple(batch.shape))
            return model(batch, ratios)

        return run


def test_compile_off_never_calls_torch_compile(tiny_checkpoints: dict[str, Path], tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("torch.compile called")

    monkeypatch.setattr(torch, "compile", refuse)
    folder = tmp_path / "photos"
    folder.mkdir()
    for seed in range(40):
        g.scene(seed, (96, 64)).save(folder / f"{seed}.jpg")
    for mode in ("off", "auto"):  # auto: 40 photos never repay a compilation
        store = Store(tmp_path / f"{mode}.db")
        try:
            summary = score([str(folder)], store=store, weights=str(tiny_checkpoints["nima"]), device="cpu",
                            workers=1, compile=mode)  # fmt: skip
        finally:
            store.close()
        assert summary.scored == 40 and not summary.failed
        assert summary.compiled is False


@pytest.mark.slow
def test_compile_on_a_machine_with_a_cuda_toolkit_and_no_gpu_prints_no_cuda_notice(
    tiny_checkpoints: dict[str, Path], tmp_path: Path
) -> None:
    """`score --compile on` printed torch's "No CUDA runtime is found, using CUDA_HOME=..." (inductor imports
    torch.utils.cpp_extension, which logs it where a CUDA toolkit is and no GPU): here the toolkit is
    CUDA_HOME and the GPU hidden, so a CUDA build of torch logs it on any machine (a CPU build never does)."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for seed in range(2):
        g.scene(seed, (96, 64)).save(folder / f"{seed}.jpg")
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root), "CUDA_HOME": str(tmp_path), "CUDA_VISIBLE_DEVICES": ""}
    args = ["score", str(folder), "--weights", str(tiny_checkpoints["nima"]), "--device", "cpu", "--compile", "on",
            "--workers", "1", "--db", str(tmp_path / "a.db")]  # fmt: skip
    result = subprocess.run([sys.executable, "-m", "aesthete", *args], env=env, capture_output=True, text=True,
                            timeout=600)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "compiled" in result.stdout.splitlines()[0]  # it did compile (a failed compilation says so instead)
    assert "CUDA" not in result.stderr, result.stderr


def test_compile_on_pads_batches_and_caps_shapes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    recorder = _Recorder()
    monkeypatch.setattr(torch, "compile", recorder)
    model = build("apm")  # keeps the aspect ratio: one input shape per ratio
    runner = ModelRunner(model, torch.device("cpu"), None, compile=True, cache_dir=tmp_path / "c", batch_size=4)
    assert recorder.calls == [{"dynamic": False}]
    rng = np.random.default_rng(0)
    eager = ModelRunner(build("apm"), torch.device("cpu"), None)
    seen: list[int] = []  # the batch size of every forward, compiled or eager
    runner.model.register_forward_pre_hook(lambda module, args: seen.append(len(args[0])))
    for i in range(MAX_COMPILED_SHAPES + 2):
        pixels = rng.integers(0, 256, (3, 64, 64 + 8 * i, 3), dtype=np.uint8)  # a partial batch: 3 of 4
        probs = runner(pixels, np.full(3, (64 + 8 * i) / 64))
        assert probs.shape[0] == 3  # the padding rows are dropped
        np.testing.assert_allclose(probs, eager(pixels, np.full(3, (64 + 8 * i) / 64)), atol=1e-5)
    # Every compiled call was padded to the batch size, and only the first MAX_COMPILED_SHAPES shapes compiled.
    assert {shape[0] for shape in recorder.shapes} == {4}
    assert len(set(recorder.shapes)) == MAX_COMPILED_SHAPES == len(runner.compiled_shapes)
    assert len(recorder.shapes) == MAX_COMPILED_SHAPES
    # Shapes past the cap run eagerly on the photos alone: padding them would only multiply the work and the
    # memory (a bucket of one panorama padded to a CUDA batch of 64).
    assert seen == [4] * MAX_COMPILED_SHAPES + [3, 3]
    again = rng.integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)  # a compiled shape again: padded again
    np.testing.assert_allclose(runner(again, np.ones(3)), eager(again, np.ones(3)), atol=1e-5)
    assert seen[-1] == 4 and len(recorder.shapes) == MAX_COMPILED_SHAPES + 1
    assert Path(engine.os.environ["TORCHINDUCTOR_CACHE_DIR"]) == tmp_path / "c"


def test_a_failed_compilation_falls_back_to_eager(monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    def broken(model: Any, **kwargs: Any) -> Any:
        def run(*args: Any) -> Any:
            raise RuntimeError("C++ compile error: no compiler\nsecond line")

        return run

    monkeypatch.setattr(torch, "compile", broken)
    runner = ModelRunner(build("nima"), torch.device("cpu"), None, compile=True, batch_size=8)
    eager = ModelRunner(build("nima"), torch.device("cpu"), None)
    pixels = np.random.default_rng(1).integers(0, 256, (8, 64, 64, 3), dtype=np.uint8)
    np.testing.assert_allclose(runner(pixels, np.ones(8)), eager(pixels, np.ones(8)), atol=1e-6)
    assert not runner.compiled and runner.compile_failure == "RuntimeError: C++ compile error: no compiler"
    note = capsys.readouterr().err.strip().splitlines()
    assert note == ["aesthete: torch.compile failed (RuntimeError: C++ compile error: no compiler); scoring without "
                    "compilation"]  # fmt: skip
    runner(pixels, np.ones(8))  # no second attempt, no second note
    assert capsys.readouterr().err == ""


def test_auto_decision() -> None:
    assert compile_decision("on", 1, "cpu", cached=False) and compile_decision("on", 1, "cuda", cached=False)
    assert not compile_decision("off", 10**6, "cpu", cached=True, arch="topiq-iaa")
    for (device, precision, arch, backbone), (saving, first, warm) in COMPILE_GAINS.items():
        model = {"precision": precision, "arch": arch, "backbone": backbone}
        for cached in (False, True):  # a 20-photo job never compiles
            assert not compile_decision("auto", 20, device, cached=cached, **model)
        # Just above / below the break-even photo count (with the margin), empty and warm cache.
        first_even, warm_even = COMPILE_MARGIN * first / saving, COMPILE_MARGIN * warm / saving
        assert compile_decision("auto", int(first_even) + 2, device, cached=False, **model)
        assert not compile_decision("auto", int(first_even) - 1, device, cached=False, **model)
        assert compile_decision("auto", int(warm_even) + 2, device, cached=True, **model)
        assert not compile_decision("auto", int(warm_even) + 2, device, cached=False, **model)
    # ResNet-50@300 on a CPU repays it within a few thousand photos, in fp32 and in bf16.
    nima = {"arch": "nima", "backbone": "resnet50"}
    for precision in ("fp32", "bf16-amx"):
        assert compile_decision("auto", 5000, "cpu", cached=False, precision=precision, **nima)
    # Every model auto compiles in bf16 has its compiled scores checked against eager bf16 (above).
    bf16_entries = {(arch, backbone) for device, precision, arch, backbone in COMPILE_GAINS if "bf16" in precision}
    assert bf16_entries == set(BF16_COMPILED.values())
    # No measured saving for this model, precision or device: auto stays eager however many photos.
    apm = {"arch": "apm", "backbone": "resnet101"}
    assert not compile_decision("auto", 10**6, "cpu", cached=True, precision="fp32", **apm)
    assert not compile_decision("auto", 10**6, "cpu", cached=True, precision="bf16-amx", **apm)
    assert not compile_decision("auto", 10**6, "cpu", cached=True, precision="bf16", **nima)  # no AMX: not measured
    assert not compile_decision("auto", 10**6, "cuda", cached=True, precision="bf16", **nima)
    assert not compile_decision("auto", 10**6, "mps", cached=True, precision="fp32", **nima)
    with pytest.raises(AestheteError, match="unknown --compile 'fast'"):
        compile_decision("fast", 1, "cpu", cached=False)


def test_auto_reads_the_loaded_models_own_entry(tiny_checkpoints: dict[str, Path], tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """pipeline.load_runner looks up the checkpoint's architecture and backbone (the tiny nima: resnet18) and the
    precision it runs in, in COMPILE_GAINS: with an entry, a large job compiles and a small one does not;
    without one (another backbone, another precision, bf16 on a CPU without AMX), none does."""
    from aesthete import pipeline, scoring

    monkeypatch.setenv("AESTHETE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(torch, "compile", lambda model, **options: model)  # compiling itself is not the point
    checkpoint = str(tiny_checkpoints["nima"])
    gains = {("cpu", "fp32", "nima", "resnet18"): (0.01, 10.0, 1.0)}  # break-even 2,000 photos, empty cache
    monkeypatch.setattr(scoring, "COMPILE_GAINS", gains)
    assert pipeline.load_runner(checkpoint, "cpu", "fp32", compile="auto", photos=2_001).compiled
    assert not pipeline.load_runner(checkpoint, "cpu", "fp32", compile="auto", photos=1_999).compiled
    assert not pipeline.load_runner(checkpoint, "cpu", "bf16", compile="auto", photos=10**6).compiled
    monkeypatch.setattr(scoring, "COMPILE_GAINS", {("cpu", "fp32", "nima", "resnet50"): (0.01, 10.0, 1.0)})
    assert not pipeline.load_runner(checkpoint, "cpu", "fp32", compile="auto", photos=10**6).compiled
    # bf16 on a CPU reads the "bf16-amx" entries where the CPU has AMX, and none where it has not.
    monkeypatch.setattr(scoring, "COMPILE_GAINS", {("cpu", "bf16-amx", "nima", "resnet18"): (0.01, 10.0, 1.0)})
    for amx in (True, False):
        monkeypatch.setattr(engine, "cpu_has_amx", lambda amx=amx: amx)
        assert pipeline.load_runner(checkpoint, "cpu", "bf16", compile="auto", photos=2_001).compiled is amx
        assert not pipeline.load_runner(checkpoint, "cpu", "fp32", compile="auto", photos=10**6).compiled


def test_cache_folder_is_keyed_by_torch_model_weights_and_policy(tmp_path: Path) -> None:
    base = inductor_cache_dir(tmp_path, model="nima", weights="w1", policy="p1")
    assert base.is_relative_to(tmp_path / "inductor")
    assert torch.__version__.replace("+", "-") in base.parts
    others = [inductor_cache_dir(tmp_path, model=m, weights=w, policy=p)
              for m, w, p in (("hla-gcn", "w1", "p1"), ("nima", "w2", "p1"), ("nima", "w1", "p2"))]  # fmt: skip
    assert len({base, *others}) == 4
    assert inductor_cache_dir(tmp_path, model="nima", weights="w1", policy="p1") == base


def test_bad_compile_mode_is_a_usage_error(tiny_checkpoints: dict[str, Path], tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from aesthete.cli import app

    folder = tmp_path / "photos"
    folder.mkdir()
    g.scene(0, (96, 64)).save(folder / "a.jpg")
    result = CliRunner().invoke(app, ["score", str(folder), "--weights", str(tiny_checkpoints["nima"]),
                                      "--db", str(tmp_path / "x.db"), "--compile", "fast"])  # fmt: skip
    assert result.exit_code != 0 and result.exit_code != 1
    assert "unknown --compile 'fast'" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("case", sorted(SMALL) + sorted(PUBLISHED))
def test_folding_batch_norm_keeps_the_scores(case: str) -> None:
    """fold_batchnorm (eager and compiled runners both use it) changes the arithmetic, not the function:
    with BatchNorm statistics far from identity, every model's fp32 output is the same within 1e-4, and
    no BatchNorm is left right after a convolution (torchvision's and TOPIQ's ResNet stems included)."""
    model = _model(case).eval()
    generator = torch.Generator().manual_seed(1)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.copy_(torch.randn(module.num_features, generator=generator) * 0.1)
            module.running_var.copy_(torch.rand(module.num_features, generator=generator) + 0.5)
    pixels = np.stack([model.policy.prepare(photo) for photo in PHOTOS[:4]])
    aspect = np.array([photo.width / photo.height for photo in PHOTOS[:4]])
    batch = engine.normalise(
        torch.from_numpy(pixels).movedim(-1, -3), model.policy.mean, model.policy.std, channels_last=False
    )
    ratios = torch.from_numpy(aspect.astype(np.float32))
    with torch.inference_mode():
        before = {k: v.clone() for k, v in model(batch, ratios).items() if k in ("probs", "score")}
        engine.fold_batchnorm(model)
        after = model(batch, ratios)
    assert before, case
    for key, value in before.items():  # what the runner reads (internal logits grow to ~1e3 in hla-gcn)
        torch.testing.assert_close(after[key], value, atol=1e-4, rtol=1e-4)
    for module in model.modules():  # registration order is forward order in every model here
        children = list(module.children())
        for first, second in zip(children, children[1:]):
            assert not (type(first) is torch.nn.Conv2d and type(second) is torch.nn.BatchNorm2d), (case, module)


@pytest.mark.slow
def test_compiled_code_on_cpu_holds_the_weights_as_constants(tmp_path: Path) -> None:
    """Freezing is really on: the compiled code keeps the weights it was compiled with (prepacked, folded
    into the graph), so changing the model's weights afterwards changes eager scores and not compiled
    ones. Passed as ``torch.compile(options={"freezing": True})`` it was not (torch 2.14): the weights
    stayed graph inputs, this test saw the compiled scores follow the change, and compiled ResNet-50@300
    was ~1.0x eager on a CPU."""
    runner = ModelRunner(build("nima"), torch.device("cpu"), None, compile=True, cache_dir=tmp_path / "c", batch_size=4)
    pixels = np.stack([runner.model.policy.prepare(photo) for photo in PHOTOS[:4]])
    aspect = np.full(4, 1.5)
    before = runner(pixels, aspect)
    assert runner.compiled and runner.compiled_shapes, runner.compile_failure
    with torch.no_grad():
        last_linear(runner.model).weight.mul_(-3.0)
    changed = ModelRunner(runner.model, torch.device("cpu"), None)(pixels, aspect)
    assert np.abs(changed - before).max() > 1e-3  # the change reaches the eager model
    np.testing.assert_array_equal(runner(pixels, aspect), before)
