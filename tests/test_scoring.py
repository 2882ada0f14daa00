"""End to end: discover -> decode -> model -> SQLite -> rank, through the library and the CLI."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from aesthete.cli import app
from aesthete.scoring import score
from aesthete.select import cull, rank
from aesthete.store import Store

runner = CliRunner()


def write_photo(path: Path, seed: int, size: tuple[int, int] = (96, 64), camera: str | None = None) -> Path:
    """A structured test photo: blocks of colour plus a gradient, different per seed."""
    rng = np.random.default_rng(seed)
    width, height = size
    blocks = rng.integers(0, 255, (4, 6, 3), dtype=np.uint8)
    pixels = np.asarray(Image.fromarray(blocks).resize((width, height), Image.Resampling.NEAREST), dtype=np.int16)
    pixels = np.clip(pixels + np.linspace(0, 60, width, dtype=np.int16)[None, :, None], 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels)
    exif = Image.Exif()
    if camera:
        exif[0x010F], exif[0x0110] = "TestMake", camera
        exif.get_ifd(0x8769)[0x9003] = f"2024:05:0{1 + seed % 5} 12:00:00"
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, exif=exif.tobytes() if camera else b"")
    return path


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    for i in range(6):
        write_photo(folder / f"img_{i}.jpg", i, camera="Alpha 1" if i % 2 else "Beta 2")
    write_photo(folder / "sub" / "deep.PNG", 99, size=(64, 96))
    return folder


def db_rows(db: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql).fetchall()


def test_score_caches_and_rescans_without_work(photos: Path, tmp_path: Path, tiny_checkpoints) -> None:
    store = Store(tmp_path / "a.db")
    first = score([str(photos)], store=store, weights=str(tiny_checkpoints["nima"]), device="cpu")
    assert (first.found, first.scored, first.cached, first.failed) == (7, 7, 0, [])
    second = score([str(photos)], store=store, weights=str(tiny_checkpoints["nima"]), device="cpu")
    assert (second.scored, second.cached, second.device) == (0, 7, None)  # no model was even loaded
    rows = db_rows(tmp_path / "a.db", "SELECT dist, mean, std FROM scores")
    assert len(rows) == 7
    for dist, mean, std in rows:
        probs = np.array(json.loads(dist))
        assert probs.min() >= 0 and abs(probs.sum() - 1) < 1e-4
        assert abs(mean - probs @ np.arange(1, 11)) < 1e-3 and std > 0


def test_moved_file_is_matched_by_content_not_rescored(photos: Path, tmp_path: Path, tiny_checkpoints) -> None:
    store = Store(tmp_path / "a.db")
    score([str(photos)], store=store, weights=str(tiny_checkpoints["nima"]), device="cpu")
    (photos / "img_0.jpg").rename(photos / "renamed.jpg")
    shutil.copy(photos / "img_1.jpg", photos / "copy_of_1.jpg")
    again = score([str(photos)], store=store, weights=str(tiny_checkpoints["nima"]), device="cpu")
    assert again.scored == 0 and again.cached == 8
    assert again.device is None  # two new paths, known content: the model was never loaded
    assert len(db_rows(tmp_path / "a.db", "SELECT * FROM scores")) == 7  # one row per content, not per path


def test_a_moved_photos_old_path_leaves_the_ranking_once_its_new_one_is_scanned(
    photos: Path, tmp_path: Path, tiny_checkpoints
) -> None:
    store = Store(tmp_path / "a.db")
    weights = str(tiny_checkpoints["nima"])
    score([str(photos)], store=store, weights=weights, device="cpu")
    album = tmp_path / "album"
    album.mkdir()
    (photos / "img_0.jpg").rename(album / "img_0.jpg")  # moved; its old folder is not rescanned
    (photos / "img_1.jpg").unlink()  # gone, with no twin: it may be on a drive that is not mounted
    score([str(album)], store=store, weights=weights, device="cpu")
    listed = [Path(row["path"]) for row in rank(store, weights=weights).rows]
    assert album / "img_0.jpg" in listed and photos / "img_0.jpg" not in listed
    assert photos / "img_1.jpg" in listed and len(listed) == 7


def test_changed_file_is_rescored_and_rescore_forces(photos: Path, tmp_path: Path, tiny_checkpoints) -> None:
    store = Store(tmp_path / "a.db")
    weights = str(tiny_checkpoints["nima"])
    score([str(photos)], store=store, weights=weights, device="cpu")
    write_photo(photos / "img_2.jpg", 1234)
    assert score([str(photos)], store=store, weights=weights, device="cpu").scored == 1
    forced = score([str(photos)], store=store, weights=weights, device="cpu", rescore=True)
    assert forced.scored == 7 and forced.cached == 0


def test_byte_identical_copies_found_in_one_run_are_scored_once(photos: Path, tmp_path: Path, tiny_checkpoints) -> None:
    """A copy beside its photo (``IMG_1 copy.jpg``) is decoded while its twin is, before either's score is in
    the database: the first scan scored both (field test: 'scored 48' for 24 photos and their copies)."""
    for path in sorted(photos.glob("img_*.jpg")):
        shutil.copy(path, path.with_name(f"{path.stem} copy.jpg"))
    store = Store(tmp_path / "a.db")
    first = score([str(photos)], store=store, weights=str(tiny_checkpoints["nima"]), device="cpu")
    assert (first.found, first.scored, first.cached, first.failed) == (13, 7, 6, [])
    assert len(db_rows(tmp_path / "a.db", "SELECT * FROM files WHERE status = 'ok'")) == 13


def test_rescore_scores_byte_identical_copies_once(photos: Path, tmp_path: Path, tiny_checkpoints) -> None:
    """A copy of a photo (a backup folder, a ``cp``) is the same content: its score is the photo's, so
    ``--rescore`` scores it once, as a plain rescan recognises it (field test: 24 copies scored twice)."""
    store = Store(tmp_path / "a.db")
    weights = str(tiny_checkpoints["nima"])
    backup = tmp_path / "backup"
    shutil.copytree(photos, backup)
    first = score([str(photos), str(backup)], store=store, weights=weights, device="cpu")
    assert first.found == 14 and first.failed == []
    forced = score([str(photos), str(backup)], store=store, weights=weights, device="cpu", rescore=True)
    assert (forced.scored, forced.cached) == (7, 7)


def test_another_model_gets_its_own_rows(photos: Path, tmp_path: Path, tiny_checkpoints) -> None:
    store = Store(tmp_path / "a.db")
    score([str(photos)], store=store, weights=str(tiny_checkpoints["nima"]), device="cpu")
    other = score([str(photos)], store=store, weights=str(tiny_checkpoints["hla-gcn"]), device="cpu")
    assert other.scored == 7 and other.model == "hla-gcn"
    models = db_rows(tmp_path / "a.db", "SELECT model, count(*) FROM scores GROUP BY model ORDER BY model")
    assert models == [("hla-gcn", 7), ("nima", 7)]


def test_scores_do_not_depend_on_batch(photos: Path, tmp_path: Path, tiny_checkpoints) -> None:
    weights = str(tiny_checkpoints["hla-gcn"])
    together = Store(tmp_path / "together.db")
    score([str(photos)], store=together, weights=weights, device="cpu", batch_size=7)
    alone = Store(tmp_path / "alone.db")
    score([str(photos / "img_3.jpg")], store=alone, weights=weights, device="cpu", batch_size=1)
    sql = "SELECT s.dist FROM scores s JOIN files f ON f.content_hash = s.content_hash WHERE f.path LIKE '%img_3.jpg'"
    batched = json.loads(db_rows(tmp_path / "together.db", sql)[0][0])
    single = json.loads(db_rows(tmp_path / "alone.db", sql)[0][0])
    np.testing.assert_allclose(batched, single, atol=1e-5)


def test_the_host_stores_a_batch_while_the_next_one_runs() -> None:
    """On a GPU, :meth:`ModelRunner.launch` returns before the batch has run: the batcher launches the
    next batch before it reads and stores the one before, so the device and the host work at once."""
    import torch

    from aesthete.jobs import FileResult
    from aesthete.pipeline import _Batcher
    from aesthete.scoring import ScoreSummary

    events: list[str] = []

    class Launched:
        def __init__(self, number: int, size: int) -> None:
            self.number, self.size = number, size

        def result(self) -> tuple[np.ndarray, None]:
            events.append(f"read {self.number}")
            return np.full((self.size, 2), 0.5), None

    class Runner:
        output = "distribution"
        model = type("Model", (), {"bin_values": torch.tensor([1.0, 2.0])})()
        launched = 0

        def stack(self, inputs: list[np.ndarray]) -> np.ndarray:
            return np.stack(inputs)

        def photos_per_batch(self, shape: tuple[int, ...]) -> int:
            return 2

        def launch(self, pixels: np.ndarray, aspect: np.ndarray) -> Launched:
            events.append(f"launch {self.launched}")
            self.launched += 1
            return Launched(self.launched - 1, len(pixels))

    class Writer:
        def add_score(self, result: FileResult, row: np.ndarray, bin_values: np.ndarray) -> None:
            events.append(f"store {result.path}")

        def flush(self) -> None:
            events.append("commit")

    summary = ScoreSummary()
    batcher = _Batcher(2, Runner(), Writer(), summary)
    for i in range(5):
        batcher.add(FileResult(f"p{i}", 1, 1, content_hash=f"h{i}", pixels=np.zeros((4, 4, 3), np.uint8)))
    assert events == ["launch 0", "launch 1", "read 0", "store p0", "store p1", "commit"]
    assert summary.scored == 2
    batcher.flush_all()
    assert events[6:] == ["launch 2", "read 1", "store p2", "store p3", "commit", "read 2", "store p4", "commit"]
    assert summary.scored == 5 and batcher.in_flight is None


def test_small_files_share_a_task_and_large_ones_go_alone() -> None:
    from collections import deque

    from aesthete.jobs import FileJob
    from aesthete.pipeline import TASK_BYTES, next_task

    small, half, large = 60_000, TASK_BYTES // 2, TASK_BYTES + 1
    sizes = [small] * 6 + [large, large, small, half, half, small]
    queue = deque(FileJob(f"p{i}", size, 0) for i, size in enumerate(sizes))
    tasks = [[job.path for job in next_task(queue, 4)] for _ in range(6)]
    assert tasks == [["p0", "p1", "p2", "p3"], ["p4", "p5"], ["p6"], ["p7"], ["p8", "p9"], ["p10", "p11"]]
    assert not queue
    assert [job.path for job in next_task(deque([FileJob("a", small, 0), FileJob("b", small, 0)]), 1)] == ["a"]


def test_without_weights_signals_are_cached_and_ranked(photos: Path, tmp_path: Path) -> None:
    store = Store(tmp_path / "a.db")
    summary = score([str(photos)], store=store, model="nima")
    assert summary.scored == 0 and summary.analysed == 7
    assert "aesthete weights pull" in summary.notice and "aesthete train nima" in summary.notice
    ranking = cull(store, top=3)
    assert ranking.basis == "technical" and len(ranking.rows) == 3
    assert any("technical quality" in note for note in ranking.notes)
    # A second run with nothing new touches no photo.
    assert score([str(photos)], store=store, model="nima").cached == 7


def test_bad_files_are_recorded_and_the_rest_scored(photos: Path, tmp_path: Path, tiny_checkpoints) -> None:
    (photos / "empty.jpg").write_bytes(b"")
    (photos / "noise.jpg").write_bytes(os.urandom(2000))
    good = (photos / "img_4.jpg").read_bytes()
    (photos / "half.jpg").write_bytes(good[: len(good) // 2])
    store = Store(tmp_path / "a.db")
    summary = score([str(photos)], store=store, weights=str(tiny_checkpoints["nima"]), device="cpu")
    assert summary.scored == 7
    kinds = {Path(f.path).name: f.kind for f in summary.failed}
    assert kinds["empty.jpg"] == "empty" and set(kinds) == {"empty.jpg", "noise.jpg", "half.jpg"}
    assert all(f.reason and "\n" not in f.reason for f in summary.failed)
    # Failures are remembered: the next run neither retries nor forgets them.
    again = score([str(photos)], store=store, weights=str(tiny_checkpoints["nima"]), device="cpu")
    assert {Path(f.path).name for f in again.failed} == set(kinds) and again.cached == 7


def test_a_failure_whose_file_is_gone_is_forgotten_by_the_next_scan_of_its_folder(photos: Path, tmp_path: Path) -> None:
    (photos / "a.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    (photos / "b.jpg").write_bytes(b"\xff\xd8 not a jpeg either")
    (photos / "sub" / "c.jpg").write_bytes(b"")
    store = Store(tmp_path / "a.db")
    assert len(score([str(photos)], store=store, model="nima").failed) == 3
    (photos / "a.jpg").unlink()  # the photographer deleted it, as `failures` suggested
    (photos / "b.jpg").rename(photos / "b2.jpg")
    (photos / "sub" / "c.jpg").unlink()
    # A scan that does not look into sub/ (--no-recursive) keeps what it did not look at.
    again = score([str(photos)], store=store, model="nima", recursive=False)
    assert [Path(f.path).name for f in again.failed] == ["b2.jpg"]
    assert sorted(Path(f["path"]).name for f in store.failures()) == ["b2.jpg", "c.jpg"]  # before: a, b, b2, c
    # Nor does a root that cannot be read (a drive that is not mounted) lose its records.
    score([str(photos / "sub" / "gone")], store=store, model="nima")
    assert sorted(Path(f["path"]).name for f in store.failures()) == ["b2.jpg", "c.jpg"]
    score([str(photos)], store=store, model="nima")
    assert [Path(f["path"]).name for f in store.failures()] == ["b2.jpg"]
    listed = runner.invoke(app, ["failures", "--db", str(store.path), "--json"])
    assert [Path(f["path"]).name for f in json.loads(listed.stdout)["failures"]] == ["b2.jpg"]
    assert len(store.photos(None)) == 7  # the photos' own rows are all still there


def test_rank_filters(photos: Path, tmp_path: Path, tiny_checkpoints) -> None:
    store = Store(tmp_path / "a.db")
    score([str(photos)], store=store, weights=str(tiny_checkpoints["nima"]), device="cpu")
    everything = rank(store)
    means = [row["mean"] for row in everything.rows]
    assert means == sorted(means, reverse=True) and len(means) == 7
    alpha = rank(store, filters=_filters(camera="alpha"))
    assert len(alpha.rows) == 3 and all(row["camera"] == "Alpha 1" for row in alpha.rows)
    assert len(rank(store, filters=_filters(since="2024-05-03")).rows) == 3  # seeds 2, 3, 4 -> days 3, 4, 5
    assert len(rank(store, filters=_filters(until="2024-05-01")).rows) == 2  # seeds 0 and 5
    threshold = means[2]
    assert len(rank(store, filters=_filters(min_score=threshold)).rows) == 3
    assert [r["path"] for r in rank(store, [str(photos / "sub")]).rows] == [str(photos / "sub" / "deep.PNG")]
    assert len(rank(store, top=2).rows) == 2


def _filters(**kwargs):
    from aesthete.select import Filters

    return Filters(**kwargs)


def test_cli_score_rank_show_cull(photos: Path, tmp_path: Path, tiny_checkpoints) -> None:
    db = str(tmp_path / "cli.db")
    result = runner.invoke(app, ["score", str(photos), "--weights", str(tiny_checkpoints["nima"]), "--db", db,
                                 "--device", "cpu", "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["scored"] == 7 and summary["exit_code"] == 0
    ranked = runner.invoke(app, ["rank", "--db", db, "--json", "--top", "3"])
    photos_json = json.loads(ranked.stdout)["photos"]
    assert len(photos_json) == 3 and photos_json[0]["mean"] >= photos_json[-1]["mean"]
    paths = runner.invoke(app, ["rank", "--db", db, "--paths"]).stdout.split()
    assert len(paths) == 7 and all(Path(p).exists() for p in paths)
    csv_out = runner.invoke(app, ["rank", "--db", db, "--csv", "--by", "sharpness"]).stdout.splitlines()
    assert csv_out[0].startswith("path,score,output,mean") and len(csv_out) == 8
    jpeg = next(p for p in paths if p.endswith(".jpg"))
    show = runner.invoke(app, ["show", jpeg, "--db", db])
    assert show.exit_code == 0 and "mean" in show.stdout and "█" in show.stdout and "TestMake" in show.stdout
    culled = runner.invoke(app, ["cull", "--top", "2", "--db", db, "--paths"])
    assert culled.stdout.split() == paths[:2]


def test_cli_errors_are_one_line(tmp_path: Path, photos: Path, tiny_checkpoints) -> None:
    db = str(tmp_path / "cli.db")
    unknown = runner.invoke(app, ["score", str(photos), "--model", "no-such-model", "--db", db])
    assert unknown.exit_code == 2 and "unknown" in unknown.output and "Traceback" not in unknown.output
    missing = runner.invoke(app, ["score", str(tmp_path / "nope"), "--db", db])
    assert missing.exit_code == 2 and "no such file" in missing.output
    mismatch = runner.invoke(app, ["score", str(photos), "--model", "hla-gcn", "--weights",
                                   str(tiny_checkpoints["nima"]), "--db", db])  # fmt: skip
    assert mismatch.exit_code == 2 and "a nima checkpoint, not hla-gcn" in mismatch.output
    empty = tmp_path / "empty"
    empty.mkdir()
    assert runner.invoke(app, ["score", str(empty), "--db", db]).exit_code == 3
    no_weights = runner.invoke(app, ["score", str(photos), "--db", db, "--model", "nima"])
    assert no_weights.exit_code == 4 and "aesthete weights add" in no_weights.output
    not_ours = tmp_path / "other.db"
    with sqlite3.connect(not_ours) as conn:
        conn.execute("CREATE TABLE customers (id INTEGER)")
    refused = runner.invoke(app, ["rank", "--db", str(not_ours)])
    assert refused.exit_code == 2 and "not an aesthete database" in refused.output
    assert db_rows(not_ours, "SELECT name FROM sqlite_master") == [("customers",)]


def test_cuda_requested_without_cuda_is_a_clear_error(photos: Path, tmp_path: Path, tiny_checkpoints) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    result = runner.invoke(app, ["score", str(photos), "--weights", str(tiny_checkpoints["nima"]),
                                 "--device", "cuda", "--db", str(tmp_path / "x.db")])  # fmt: skip
    assert result.exit_code == 2 and "CUDA" in result.output and "Traceback" not in result.output


def test_real_subprocess_and_no_torch_on_light_paths(photos: Path, tmp_path: Path, tiny_checkpoints) -> None:
    """The installed console script works, and --help, rank, cull, groups, failures, weights list and a rescan
    with nothing new import neither torch nor numpy nor Pillow: they read the database, and each of those
    costs more to import than the whole rescan of a small library (a rescan imported numpy and Pillow until
    the planner was split from the pipeline: aesthete.scoring / aesthete.pipeline)."""
    env = {**os.environ, "AESTHETE_DB": str(tmp_path / "sub.db")}
    script = shutil.which("aesthete", path=str(Path(sys.executable).parent))
    assert script, "the aesthete console script is not installed"
    run = subprocess.run([script, "score", str(photos), "--weights", str(tiny_checkpoints["nima"]), "--device", "cpu"],
                         env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "scored" in run.stdout and "7" in run.stdout
    probe = (
        "import sys\nfrom typer.testing import CliRunner\nfrom aesthete.cli import app\n"
        "r = CliRunner()\n"
        "rescan = ['score', sys.argv[1], '--weights', sys.argv[2], '--json']\n"
        "for args in (['--help'], ['rank'], ['cull', '--top', '3'], ['groups'], ['failures'], ['weights', 'list'],\n"
        "             rescan):\n"
        "    res = r.invoke(app, args)\n"
        "    assert res.exit_code == 0, (args, res.output)\n"
        "    print(args[0], *sorted(m for m in ('torch', 'numpy', 'PIL') if m in sys.modules))\n"
        "assert '\"cached\": 7' in res.output, res.output\n"
    )
    check = subprocess.run([sys.executable, "-c", probe, str(photos), str(tiny_checkpoints["nima"])], env=env,
                           capture_output=True, text=True, timeout=300)  # fmt: skip
    assert check.returncode == 0, check.stderr
    assert check.stdout.split() == ["--help", "rank", "cull", "groups", "failures", "weights", "score"]


STRIPS = {  # model -> (small config, a strip it cannot take, the reason recorded)
    # MP_ada keeps the shorter side and cuts patches along the longer one: thousands of patches in one batch
    # (a memory blow-up that ended the run with a traceback).
    "mp-ada": (
        {"backbone": "resnet18", "input_size": 64, "patch_size": 32},
        (3000, 4),
        "3000x4 would make 3000 patches of 32x32 for the model (3.1 MP; at most 2.5 MP)",
    ),
    # SAF caps the longer side: the strip's shorter side went to 1 px, and VGG16's max-pools raised mid-run.
    "saf": (
        {"backbone": "vgg16", "input_size": 64, "max_long_side": 128},
        (2000, 10),
        "2000x10 would make a 128x1 input for the model (its shorter side under 32 px)",
    ),
}


@pytest.mark.parametrize("arch", sorted(STRIPS))
def test_a_strip_an_aspect_keeping_model_cannot_take_is_recorded_and_the_rest_scored(arch: str, tmp_path: Path) -> None:
    """A long strip is refused with a one-line reason; a panorama of ordinary length still scores."""
    import torch

    from aesthete.checkpoint import save_checkpoint
    from aesthete.models import get_model

    config, strip, reason = STRIPS[arch]
    torch.manual_seed(0)
    checkpoint = save_checkpoint(get_model(arch, **config), tmp_path / f"{arch}-tiny.safetensors")
    photos = tmp_path / "photos"
    write_photo(photos / "photo.jpg", 1)
    write_photo(photos / "panorama.jpg", 2, size=(360, 100))  # SAF: 128x36, MP_ada: 230x64 in 8x2 patches
    Image.new("RGB", strip, (90, 120, 150)).save(photos / "strip.png")
    store = Store(tmp_path / "a.db")
    summary = score([str(photos)], store=store, weights=str(checkpoint), device="cpu", workers=1)
    assert summary.scored == 2
    assert [(Path(f.path).name, f.kind, f.reason) for f in summary.failed] == [("strip.png", "too-elongated", reason)]
    assert [(Path(f["path"]).name, f["kind"]) for f in store.failures()] == [("strip.png", "too-elongated")]


def test_a_photo_the_model_raises_on_costs_that_photo_not_the_run(
    tmp_path: Path, tiny_checkpoints: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever the model raises on (out of memory, a shape it cannot take): its batch is run again photo by
    photo, the photo at fault is recorded in one line, every other photo is scored, and the next run tries
    it again (the fault may have been the machine's)."""
    from aesthete.engine import ModelRunner

    launch = ModelRunner.launch

    def fails_on_black(self: ModelRunner, pixels: Any, aspect: Any) -> Any:
        if any(int(one.max()) == 0 for one in pixels):
            raise RuntimeError("boom: out of memory\nsecond line of a long message")
        return launch(self, pixels, aspect)

    monkeypatch.setattr(ModelRunner, "launch", fails_on_black)
    photos = tmp_path / "photos"
    for i in range(5):
        write_photo(photos / f"p{i}.jpg", i)
    Image.new("RGB", (96, 64)).save(photos / "black.png")
    store = Store(tmp_path / "a.db")
    summary = score([str(photos)], store=store, weights=str(tiny_checkpoints["nima"]), device="cpu", workers=1)
    assert summary.scored == 5
    assert [(Path(f.path).name, f.kind, f.reason) for f in summary.failed] == [
        ("black.png", "model-error", "RuntimeError: boom: out of memory")
    ]
    assert [(Path(f["path"]).name, f["kind"]) for f in store.failures()] == [("black.png", "model-error")]
    monkeypatch.setattr(ModelRunner, "launch", launch)  # the fault is gone: the next run scores it
    again = score([str(photos)], store=store, weights=str(tiny_checkpoints["nima"]), device="cpu", workers=1)
    assert (again.scored, again.cached, again.failed) == (1, 5, [])
    assert store.failures() == []


def test_panoramas_go_to_the_model_in_smaller_batches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch holds at most ``batch_size`` 16:9 photos' worth of input: equal panoramas, each six times
    that, go one at a time, while ordinary photos still fill a batch. (Eight 12:1 panoramas in one TOPIQ
    batch took 8 GB on the CPU; on CUDA, 64 of them would.)"""
    import torch

    from aesthete.checkpoint import save_checkpoint
    from aesthete.engine import ModelRunner
    from aesthete.models import get_model

    torch.manual_seed(0)
    checkpoint = save_checkpoint(get_model("mp-ada", **STRIPS["mp-ada"][0]), tmp_path / "mp-ada-tiny.safetensors")
    launch, batches = ModelRunner.launch, []

    def recording(self: ModelRunner, pixels: Any, aspect: Any) -> Any:
        batches.append((len(pixels), tuple(pixels.shape[1:])))
        return launch(self, pixels, aspect)

    monkeypatch.setattr(ModelRunner, "launch", recording)
    photos = tmp_path / "photos"
    for i in range(3):
        write_photo(photos / f"photo{i}.jpg", i)  # 3:2: 96x64, 3x2 patches of 32
        write_photo(photos / f"panorama{i}.jpg", 10 + i, size=(1200, 100))  # 12:1: 768x64, 24x2 patches
    store = Store(tmp_path / "a.db")
    summary = score([str(photos)], store=store, weights=str(checkpoint), device="cpu", workers=1, batch_size=4)
    assert summary.scored == 6 and not summary.failed
    assert sorted(batches) == [(1, (48, 32, 32, 3))] * 3 + [(3, (6, 32, 32, 3))]
