"""The default model: with no --model/--weights, ``score`` uses the best model whose weights the user has
(by the publisher's AVA SRCC in the registry); with none, the notice names the one command that gets the
recommended checkpoint. And `weights list` at 80 columns."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aesthete import weights
from aesthete.cli import app
from aesthete.scoring import choose_model, first_run_notice
from tests.test_scoring import write_photo

runner = CliRunner()
PROJECT_TOML = Path(__file__).resolve().parent.parent / "weights.toml"


def entry_toml(name: str, checkpoint: Path, arch: str, srcc: float | None, licence: str = "MIT") -> str:
    digest = hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    metrics = f"metrics = {{ srcc = {srcc} }}\n" if srcc is not None else ""
    return (
        f'[weights.{name}]\nkind = "aesthetic"\narch = "{arch}"\nbins = 10\ndataset = "ava"\n'
        f'url = "{checkpoint.as_uri()}"\nsha256 = "{digest}"\nlicense = "{licence}"\n{metrics}\n'
    )


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_checkpoints: dict[str, Path]) -> Path:
    path = tmp_path / "weights.toml"
    path.write_text(
        entry_toml("worse", tiny_checkpoints["nima"], "nima", 0.60)
        + entry_toml("better", tiny_checkpoints["hla-gcn"], "hla-gcn", 0.70, "CC-BY-NC-4.0"),
        encoding="utf-8",
    )
    monkeypatch.setattr(weights, "project_registry_path", lambda: path)
    return path


def test_nothing_downloaded_gives_the_first_run_notice(registry: Path) -> None:
    choice = choose_model(None, None)
    assert choice.checkpoint is None and choice.key is None
    # The recommended checkpoint is the best SRCC; the permissive choice is named beside it.
    assert "`aesthete weights pull better`" in choice.notice and "CC-BY-NC-4.0, non-commercial" in choice.notice
    assert "publisher's AVA SRCC 0.700" in choice.notice and "permissive choice is worse (licence MIT" in choice.notice


def test_the_best_srcc_present_wins_and_the_rest_wait(registry: Path) -> None:
    weights.pull("worse")
    choice = choose_model(None, None)
    assert (choice.model, choice.weights_name) == ("nima", "worse")
    weights.pull("better", accept_license=True)
    choice = choose_model(None, None)
    assert (choice.model, choice.weights_name) == ("hla-gcn", "better")
    # --model still picks that architecture's weights, whatever ranks best overall.
    assert choose_model("nima", None).weights_name == "worse"


def test_an_entry_added_like_a_published_one_ranks_by_that_ones_srcc(
    registry: Path, tiny_checkpoints: dict[str, Path]
) -> None:
    # A user's own checkpoint (no SRCC recorded) ranks after those with a recorded SRCC.
    weights.add(tiny_checkpoints["nima"], name="my-own")
    assert choose_model(None, None).weights_name == "my-own"  # the only one present
    weights.pull("better", accept_license=True)
    assert choose_model(None, None).weights_name == "better"
    entries = weights.list_weights()
    assert weights.ava_srcc(next(e for e in entries if e.name == "my-own"), entries) is None


def test_the_real_registry_recommends_topiq_and_names_laion_as_the_permissive_choice(tmp_path: Path) -> None:
    notice = first_run_notice()
    assert "`aesthete weights pull topiq-iaa-r50-ava`" in notice
    assert "CC-BY-NC-SA-4.0" in notice and "download size not published" in notice and "0.736" in notice
    assert "laion-aesthetic-v2" in notice and "Apache-2.0" in notice and "CLIP (MIT)" in notice
    photos = tmp_path / "photos"
    write_photo(photos / "a.jpg", 1)
    result = runner.invoke(app, ["score", str(photos), "--db", str(tmp_path / "a.db")])
    assert result.exit_code == 4  # technical signals only
    assert "aesthete weights pull topiq-iaa-r50-ava" in result.output.replace("\n", " ")


def test_score_without_options_uses_the_best_weights_present(registry: Path, tmp_path: Path) -> None:
    weights.pull("worse")
    photos = tmp_path / "photos"
    write_photo(photos / "a.jpg", 1)
    result = runner.invoke(app, ["score", str(photos), "--db", str(tmp_path / "a.db"), "--device", "cpu", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["model"], summary["weights"], summary["scored"], summary["notice"]) == ("nima", "worse", 1, None)


def test_weights_list_fits_80_columns_and_keeps_urls_whole() -> None:
    result = runner.invoke(app, ["weights", "list"], terminal_width=80)
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    urls = [line for line in lines if "://" in line]
    table = [line for line in lines if "://" not in line]
    assert max(len(line) for line in table) <= 80
    topiq = next(line for line in table if line.startswith("topiq-iaa-r50-ava"))
    assert "CC-BY-NC-SA-4.0" in topiq and "0.736" in topiq and topiq.rstrip().endswith("no")
    laion = next(line for line in table if line.startswith("laion-aesthetic-v2"))
    assert "Apache-2.0" in laion and "3.7 MB" in laion
    project = weights.list_weights()
    for entry in project:  # every URL printed once, whole, on one line
        assert sum(entry.url in line for line in urls) == 1
    rows = json.loads(runner.invoke(app, ["weights", "list", "--json"]).stdout)["weights"]
    assert next(r for r in rows if r["name"] == "nima-vgg16-ava")["ava_srcc"] == 0.657
