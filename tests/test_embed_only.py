"""Embed-only base models: score with ImageNet backbone weights (a freshly initialised ResNet-18 saved as
torchvision saves its classifiers, registered as a ``kind = "backbone"`` entry and pulled from a file://
URL; nothing is downloaded), which stores embeddings and signals and no aesthetic score; rate by XMP,
learn a personal head on those embeddings, and use it with rank/show/cull/score --weights; the head
is listed by ``weights list`` and labelled by its name, not its digest."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from aesthete import embed_only, learning, personal, weights
from aesthete.cli import app
from aesthete.store import Store
from tests import ratinglib

runner = CliRunner()
PHOTOS = 48
RATED = 36  # the rest are held out: never rated, never fitted


def cli(*args: object) -> object:
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """A project registry with one ImageNet backbone entry (pulled), its own XDG folders, a generated
    library scored embed-only with it. Module-scoped: scoring through a ResNet-18 is the slow part."""
    import torch
    import torchvision

    root = tmp_path_factory.mktemp("embed")
    torch.manual_seed(0)
    pth = root / "tiny-r18-00000000.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), pth)
    digest = hashlib.sha256(pth.read_bytes()).hexdigest()
    registry = root / "weights.toml"
    registry.write_text(
        f'[weights.tiny-r18]\nkind = "backbone"\nbackbone = "resnet18"\ndataset = "imagenet-1k"\n'
        f'url = "{pth.as_uri()}"\nsha256 = "{digest}"\nlicense = "BSD-3-Clause"\n',
        encoding="utf-8",
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(weights, "project_registry_path", lambda: registry)
        for name in ("DATA", "CACHE", "CONFIG"):
            mp.setenv(f"AESTHETE_{name}_DIR", str(root / name.lower()))
        weights.pull("tiny-r18")
        photos = ratinglib.make_library(root / "Photos", PHOTOS)
        db = root / "aesthete.db"
        result = cli("score", root / "Photos", "--weights", "tiny-r18", "--db", db, "--device", "cpu",
                     "--precision", "fp32", "--workers", "1", "--json")  # fmt: skip
        yield {"root": root, "photos": photos, "db": db, "digest": digest, "score": result}


@pytest.fixture
def env(world: dict, monkeypatch: pytest.MonkeyPatch) -> dict:
    """``world`` with its XDG folders (conftest gives every test fresh ones)."""
    for name in ("DATA", "CACHE", "CONFIG"):
        monkeypatch.setenv(f"AESTHETE_{name}_DIR", str(world["root"] / name.lower()))
    return world


def test_score_with_backbone_weights_stores_embeddings_and_no_score(env: dict) -> None:
    result = env["score"]
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["embed_only"] and summary["scored"] == PHOTOS and summary["notice"] is None
    assert (summary["model"], summary["weights"]) == ("resnet18-imagenet", "tiny-r18")
    store = Store(env["db"])
    key = learning._base_with_embeddings(store, None)
    assert key.model == "resnet18-imagenet" and key.weights_id == env["digest"][:16]
    assert key.preprocess == embed_only.POLICY.key
    hashes, vectors = store.embeddings(key)
    assert sorted(hashes) == sorted(p.content_hash for p in env["photos"])
    assert vectors.shape == (PHOTOS, 512) and np.isfinite(vectors).all()  # ResNet-18's pooled features
    assert store.conn.execute("SELECT count(*) FROM scores").fetchone()[0] == 0  # no aesthetic score
    assert store.conn.execute("SELECT count(*) FROM images").fetchone()[0] == PHOTOS  # the signals, as always
    store.close()
    # A second run finds every photo done (it has its embedding), without a score row to say so.
    again = cli("score", env["root"] / "Photos", "--weights", "tiny-r18", "--db", env["db"], "--json")
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["cached"] == PHOTOS, again.output
    # Reading commands say why there is no aesthetic score, and rank by technical quality.
    ranked = cli("rank", "--weights", "tiny-r18", "--db", env["db"], "--json")
    assert ranked.exit_code == 0, ranked.output
    assert "store embeddings only, no aesthetic score" in ranked.stderr
    assert len(json.loads(ranked.stdout)["photos"]) == PHOTOS


def test_score_help_says_what_backbone_weights_do() -> None:
    text = " ".join(cli("score", "--help").output.split())
    assert "stores embeddings for `aesthete learn`; no aesthetic score" in text


def test_learn_on_backbone_embeddings_then_use_the_head_everywhere(env: dict) -> None:
    root, photos, db = env["root"], env["photos"], env["db"]
    ratinglib.write_sidecars(photos[:RATED])
    try:
        learned = cli("learn", root / "Photos", "--name", "mine", "--db", db, "--json")
        assert learned.exit_code == 0, learned.output
        data = json.loads(learned.stdout)
        assert data["base"]["model"] == "resnet18-imagenet" and data["used"] == RATED and data["scored"] == PHOTOS
        rows = {row["model"]: row for row in data["cross_validation"]["table"]}
        assert set(rows) == {"personal"}  # the base stored no scores: nothing to compare
        assert rows["personal"]["srcc"] > 0.6, rows  # the rule (blur, exposure) is learnable
        head = personal.load_head(learning.head_path("mine"))
        assert (head.base_model, head.base_weights) == ("resnet18-imagenet", "tiny-r18")

        ranked = json.loads(cli("rank", "--weights", "mine", "--db", db, "--json").stdout)
        assert ranked["model"] == "personal"
        by_path = {row["path"]: row["score"] for row in ranked["photos"]}
        held = photos[RATED:]
        truth = np.array([max(p.rating, 0) for p in held], dtype=float)
        assert personal.srcc(truth, np.array([by_path[str(p.path)] for p in held])) > 0.6

        culled = cli("cull", "--weights", "mine", "--top", "5", "--db", db, "--paths")
        assert culled.exit_code == 0 and 1 <= len(culled.stdout.split()) <= 5, culled.output

        # score --weights mine: the base trunk embeds the new photo, the head scores every photo.
        extra = ratinglib.make_library(root / "Photos" / "new", 1, seed=9)[0]
        scored = cli("score", root / "Photos", "--weights", "mine", "--db", db, "--device", "cpu", "--json")
        assert scored.exit_code == 0, scored.output
        summary = json.loads(scored.stdout)
        assert summary["scored"] == 1 and summary["personal"] == PHOTOS + 1 and not summary["embed_only"]
        store = Store(db)
        assert extra.content_hash in store.scored_hashes(learning.scores_key("mine"))
        store.close()
    finally:
        for p in photos[:RATED]:
            Path(str(p.path) + ".xmp").unlink(missing_ok=True)


def test_show_labels_a_personal_head_by_its_name(env: dict) -> None:
    _learn(env, "show-me")
    digest = learning.personal_key(learning.head_path("show-me"), personal.load_head(learning.head_path("show-me")))
    shown = cli("show", env["photos"][0].path, "--weights", "show-me", "--db", env["db"])
    assert shown.exit_code == 0, shown.output
    assert "personal weights show-me: score" in shown.output and digest.weights_id not in shown.output
    data = json.loads(cli("show", env["photos"][0].path, "--weights", "show-me", "--db", env["db"],
                          "--json").stdout)  # fmt: skip
    first = data["photo"]["scores"][0]
    assert data["weights"] == "show-me" and (first["model"], first["weights"]) == ("personal", "show-me")


def test_weights_list_shows_personal_heads(env: dict) -> None:
    _learn(env, "listed")
    rows = json.loads(cli("weights", "list", "--json").stdout)["weights"]
    row = next(r for r in rows if r["name"] == "listed")
    assert row["kind"] == "personal" and Path(row["path"]) == learning.head_path("listed")
    assert (row["base_model"], row["base_weights"], row["ratings"]) == ("resnet18-imagenet", "tiny-r18", RATED)
    assert 0 < row["cv_srcc"] <= 1
    table = runner.invoke(app, ["weights", "list"], terminal_width=80).stdout
    line = next(line for line in table.splitlines() if line.startswith("listed "))
    assert "resnet18-imagenet" in line and "tiny-r18" in line and f"{row['cv_srcc']:.3f}" in line
    assert str(learning.head_path("listed")) in table
    assert max(len(line) for line in table.splitlines() if "/" not in line) <= 80


def _learn(world: dict, name: str) -> None:
    photos = world["photos"]
    ratinglib.write_sidecars(photos[:RATED])
    try:
        result = cli("learn", world["root"] / "Photos", "--name", name, "--db", world["db"])
        assert result.exit_code == 0, result.output
    finally:
        for p in photos[:RATED]:
            Path(str(p.path) + ".xmp").unlink(missing_ok=True)


def test_backbone_weights_not_pulled_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    registry = tmp_path / "weights.toml"
    registry.write_text(
        '[weights.r18]\nkind = "backbone"\nbackbone = "resnet18"\nurl = "https://example.org/r18-0123abcd.pth"\n'
        f'sha256 = "{"0" * 64}"\n',
        encoding="utf-8",
    )
    monkeypatch.setattr(weights, "project_registry_path", lambda: registry)
    (tmp_path / "Photos").mkdir()
    result = cli("score", tmp_path / "Photos", "--weights", "r18", "--db", tmp_path / "a.db")
    assert result.exit_code == 2 and "run `aesthete weights pull r18`" in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1
    wrong = cli("score", tmp_path / "Photos", "--weights", "r18", "--model", "nima", "--db", tmp_path / "a.db")
    assert wrong.exit_code == 2 and len(wrong.output.strip().splitlines()) == 1, wrong.output
