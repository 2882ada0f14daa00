"""Models that predict one score, not a distribution (LAION's head): through score, the store, rank, show,
cull, XMP stars and the report, with no distribution, spread or p_high made up for them."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from aesthete.cli import app
from aesthete.decode import decode
from aesthete.report import build_report
from aesthete.scoring import score
from aesthete.select import rank
from aesthete.store import Store
from tests.test_scoring import write_photo

runner = CliRunner()
# A small CLIP-shaped tower (the real one is ViT-L/14 at 224 px): same code path, a fraction of the cost.
TINY_VIT = {"width": 32, "layers": 1, "heads": 2, "patch": 8, "image_size": 32, "embed_dim": 16}


@pytest.fixture(scope="module")
def laion_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from aesthete.checkpoint import save_checkpoint
    from aesthete.models import get_model

    torch.manual_seed(3)
    model = get_model("laion-aesthetic", **TINY_VIT)
    with torch.no_grad():  # spread the seeded scores out so that ranks and quintiles differ between photos
        model.layers[-1].weight.mul_(50.0)
        model.layers[-1].bias.fill_(5.0)
    return save_checkpoint(model, tmp_path_factory.mktemp("laion") / "laion-tiny.safetensors")


@pytest.fixture
def shoot(tmp_path: Path) -> Path:
    folder = tmp_path / "shoot"
    for i in range(10):
        write_photo(folder / f"p{i}.jpg", 10 + i, size=(72, 48))
    return folder


def test_scores_are_stored_without_an_invented_distribution(
    shoot: Path, tmp_path: Path, laion_checkpoint: Path
) -> None:
    from aesthete.checkpoint import load_model
    from aesthete.input_policy import InputPolicy

    store = Store(tmp_path / "a.db")
    summary = score([str(shoot)], store=store, weights=str(laion_checkpoint), device="cpu", precision="fp32")
    assert summary.scored == 10 and summary.model == "laion-aesthetic"
    with sqlite3.connect(tmp_path / "a.db") as conn:
        rows = conn.execute("SELECT f.path, s.dist, s.mean, s.std, s.p_high FROM scores s "
                            "JOIN files f ON f.content_hash = s.content_hash ORDER BY f.path").fetchall()  # fmt: skip
    assert len(rows) == 10
    assert all(dist is None and std is None and p_high is None for _, dist, _, std, p_high in rows)
    means = [row[2] for row in rows]
    assert len(set(means)) == 10  # real, distinct scores

    # The stored number is the model's own score on the photo as the input policy prepares it.
    model = load_model(laion_checkpoint)
    policy = InputPolicy.from_dict(model.policy.to_dict())
    pixels = policy.prepare(decode(Path(rows[0][0]).read_bytes(), target=policy.decode_size).image)
    x = torch.from_numpy(np.array(pixels)).permute(2, 0, 1).unsqueeze(0).float() / 255
    x = (x - torch.tensor(policy.mean).view(1, 3, 1, 1)) / torch.tensor(policy.std).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = model(x)["score"].item()
    assert abs(rows[0][2] - expected) < 1e-3

    ranking = rank(store)
    assert ranking.output == "score" and ranking.basis == "aesthetic"
    assert [r["mean"] for r in ranking.rows] == sorted(means, reverse=True)
    store.close()


def test_cli_rank_show_cull_xmp_and_report(shoot: Path, tmp_path: Path, laion_checkpoint: Path) -> None:
    db = str(tmp_path / "cli.db")
    scored = runner.invoke(app, ["score", str(shoot), "--weights", str(laion_checkpoint), "--db", db,
                                 "--device", "cpu", "--json"])  # fmt: skip
    assert scored.exit_code == 0, scored.output

    ranked = json.loads(runner.invoke(app, ["rank", "--db", db, "--json"]).stdout)
    assert ranked["output"] == "score" and ranked["model"] == "laion-aesthetic"
    first = ranked["photos"][0]
    assert first["output"] == "score" and isinstance(first["score"], float)
    assert first["mean"] is None and first["std"] is None and first["p_high"] is None and first["dist"] is None
    scores = [p["score"] for p in ranked["photos"]]
    assert scores == sorted(scores, reverse=True)

    table = runner.invoke(app, ["rank", "--db", db], terminal_width=160).stdout
    assert "laion-aesthetic score" in table and "std" not in table and "mean" not in table
    csv_out = runner.invoke(app, ["rank", "--db", db, "--csv"]).stdout.splitlines()
    assert csv_out[0].startswith("path,score,output,mean,std") and ",score,," in csv_out[1]

    by_std = runner.invoke(app, ["rank", "--db", db, "--by", "std"])
    assert by_std.exit_code == 2 and "predicts one score" in by_std.output and "Traceback" not in by_std.output

    show = runner.invoke(app, ["show", str(shoot / "p0.jpg"), "--db", db])
    assert show.exit_code == 0, show.output
    assert re.search(r"laion-aesthetic weights \S+: score -?\d+\.\d\d", show.stdout)
    assert "█" not in show.stdout and "std" not in show.stdout

    culled = runner.invoke(app, ["cull", "--top", "3", "--db", db, "--xmp", "--stars", "--no-group", "--json"])
    assert culled.exit_code == 0, culled.output
    report = json.loads(culled.stdout)
    assert report["output"] == "score" and [p["path"] for p in report["picks"]] == [
        p["path"] for p in ranked["photos"][:3]
    ]
    # Stars spread over the picks (issue 13): the best of 3 picks gets 5 stars, the middle 3, the last 1.
    ratings = [s["rating"] for s in report["xmp"]["sidecars"]]
    assert ratings == [5, 3, 1]
    best = Path(report["picks"][0]["path"])
    sidecar = best.with_name(best.name + ".xmp").read_text(encoding="utf-8")
    assert 'xmp:Rating="5"' in sidecar

    store = Store(db)
    page, ranking = build_report(store, [str(shoot)])
    store.close()
    assert ranking.output == "score" and "laion-aesthetic score (weights" in page
    assert 'class="dist"' not in page and "score " in page and "spread" not in page


def test_mixed_models_each_keep_their_kind(
    shoot: Path, tmp_path: Path, laion_checkpoint: Path, tiny_checkpoints
) -> None:
    db = tmp_path / "m.db"
    store = Store(db)
    score([str(shoot)], store=store, weights=str(tiny_checkpoints["nima"]), device="cpu")
    score([str(shoot)], store=store, weights=str(laion_checkpoint), device="cpu")
    assert rank(store, model="nima").output == "distribution"
    assert rank(store, model="laion-aesthetic").output == "score"
    assert rank(store, model="nima", by="std").by == "std"
    record = store.photo_by_path(str(shoot / "p1.jpg"))
    store.close()
    kinds = {s["model"]: (s["output"], s["dist"] is None) for s in record["scores"]}
    assert kinds == {"nima": ("distribution", False), "laion-aesthetic": ("score", True)}
