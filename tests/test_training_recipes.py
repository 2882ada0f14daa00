"""Every paper run has a recipe in ``train/`` that loads and resolves, carries the paper's numbers, and can
be printed (``--dry-run``) and overridden from the command line. Models are built only on the meta device
(``--dry-run`` checks the recipe's model that way): shapes, no weights."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aesthete.cli import app
from aesthete.training.recipes import (
    DEFAULTS,
    RecipeError,
    find_recipe,
    list_recipes,
    parse_override,
    recipes_dir,
    resolve,
)

try:
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]

# The runs issue 4 names, with the paper's numbers as ../shared/spec/models.md (and the papers' tables)
# give them; the recipe must carry exactly these.
PAPER_RUNS = {
    "hla-gcn-r50-ava": {"accuracy": 0.841, "srcc": 0.656, "lcc": 0.678, "mse": 0.264, "emd1": 0.045, "emd2": 0.065},
    "hla-gcn-r101-ava": {"accuracy": 0.846, "srcc": 0.665, "lcc": 0.687, "mse": 0.255, "emd1": 0.043, "emd2": 0.063},
    "hla-gcn-r50-aadb": {"srcc": 0.899, "lcc": 0.904, "mse": 0.098, "emd1": 0.084, "emd2": 0.109},
    "nima-r50-ava": {"accuracy": 0.8195, "srcc": 0.605, "lcc": 0.629, "mse": 0.303, "emd1": 0.047, "emd2": 0.0681},
    "mp-ada-r18-ava": {"accuracy": 0.8303},
    "apm-r101-ava": {"accuracy": 0.803, "srcc": 0.709, "mse": 0.279, "cdloss": 0.0607, "kl": 0.103},
    "saf-vgg16-ava": {},  # the paper's tables were lost in extraction
    "pear-r50-ava": {"accuracy": 0.8052, "srcc": 0.719, "emd2": 0.065},
    "pear-r50-aadb": {"srcc": 0.7281},
    "pear-prior-aadb": {},  # the prior network has no metrics of its own
}


def test_recipes_dir_is_the_source_trees_train_folder() -> None:
    assert recipes_dir() == ROOT / "train"


@pytest.mark.parametrize("name", sorted(PAPER_RUNS))
def test_every_paper_run_has_a_recipe_that_resolves(name: str) -> None:
    recipes = list_recipes()
    assert name in recipes, f"no recipe train/{name}.toml"
    resolved = resolve(recipes[name])
    assert resolved["name"] == name
    model = name.rsplit("-", 2)[0] if name != "pear-prior-aadb" else "pear-prior"
    assert resolved["model"] == model
    assert resolved["dataset"] == name.rsplit("-", 1)[1]
    # The paper's metrics, each within rounding of the spec's figure (the recipes may quote more digits).
    metrics = resolved["paper"].get("metrics", {})
    assert set(metrics) == set(PAPER_RUNS[name])
    for metric, value in PAPER_RUNS[name].items():
        assert metrics[metric] == pytest.approx(value, abs=0.0006), metric
    assert resolved["paper"].get("source"), "a recipe says where its numbers come from"


@pytest.mark.parametrize("path", sorted((ROOT / "train").glob("*.toml")), ids=lambda p: p.stem)
def test_every_hyper_parameter_says_where_it_comes_from(path: Path) -> None:
    """Every value of a recipe's tables carries a comment: a quote of the paper, or why the project chose it
    ("not given: ..."). Only the identity keys at the top (name, model, dataset, ...) and the paper's own
    numbers may go without."""
    uncommented, table = [], ""
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        stripped = line.strip()
        if stripped.startswith("["):
            table = stripped[1:].split("]")[0]
            continue
        if not stripped or stripped.startswith("#") or "=" not in stripped:
            continue
        if table and not table.startswith("paper") and "#" not in stripped:
            uncommented.append(f"line {number}: [{table}] {stripped}")
    assert not uncommented, "\n".join(uncommented)
    text = path.read_text(encoding="utf-8")
    assert "not given" in text or path.stem.startswith("saf"), "a recipe says which values the paper leaves open"


def test_recipes_state_the_papers_training_setups() -> None:
    """Spot checks of the hyper-parameters ../shared/spec/models.md lists."""
    r = {name: resolve(recipe) for name, recipe in list_recipes().items()}
    hla = r["hla-gcn-r50-ava"]
    assert (hla["optim"]["name"], hla["optim"]["lr"], hla["optim"]["momentum"], hla["optim"]["weight_decay"]) == (
        "sgd",
        0.01,
        0.9,
        5e-4,
    )
    assert (hla["schedule"]["milestones"], hla["schedule"]["gamma"], hla["train"]["epochs"]) == ([6], 0.1, 20)
    assert (hla["train"]["batch_size"], hla["augment"]["scale"], hla["augment"]["hflip"]) == (100, 1.05, True)
    assert r["hla-gcn-r101-ava"]["model_config"]["backbone"] == "resnet101"
    assert r["hla-gcn-r50-aadb"]["model_config"]["bins"] == 5
    paper_text = ("hla-gcn-r50-ava", "hla-gcn-r101-ava", "hla-gcn-r50-aadb")
    assert {r[n]["model_config"]["variant"] for n in paper_text} == {"paper"}
    assert r["nima-r50-ava"]["model_config"]["dropout"] == 0.0  # HLA-GCN's released baseline has none
    mp = r["mp-ada-r18-ava"]
    assert (mp["optim"]["nesterov"], mp["optim"]["lr"], mp["optim"]["weight_decay"]) == (True, 1e-3, 1e-4)
    assert (mp["schedule"]["step_size"], mp["schedule"]["gamma"], mp["train"]["epochs"]) == (20, 0.5, 32)
    assert (mp["train"]["batch_size"], mp["model_config"]["backbone"]) == (32, "resnet18")
    apm = r["apm-r101-ava"]
    assert (apm["train"]["batch_size"], apm["optim"]["lr"], apm["optim"]["weight_decay"]) == (128, 1e-3, 5e-4)
    assert apm["model_config"]["global_branch"] is True
    for name in ("pear-r50-ava", "pear-r50-aadb"):
        pear = r[name]
        assert (pear["optim"]["name"], pear["optim"]["lr"], pear["train"]["batch_size"]) == ("adam", 1e-4, 128)
        assert (pear["model_config"]["lam"], pear["model_config"]["beta"]) == (0.1, 0.1)
        assert pear["init_module"] == "prior"
    assert r["saf-vgg16-ava"]["model_config"]["backbone"] == "vgg16"


@pytest.mark.parametrize(
    ("model", "dataset", "expected"),
    [
        ("hla-gcn", "ava", "hla-gcn-r50-ava-official"),
        ("hla-gcn", "aadb", "hla-gcn-r50-aadb-official"),
        ("nima", "ava", "nima-r50-ava"),
        ("mp-ada", "ava", "mp-ada-r18-ava"),
        ("apm", "ava", "apm-r101-ava"),
        ("saf", "ava", "saf-vgg16-ava"),
        ("pear", "ava", "pear-r50-ava"),
        ("pear", "aadb", "pear-r50-aadb"),
        ("pear-prior", "aadb", "pear-prior-aadb"),
        ("hla-gcn-r101-ava", None, "hla-gcn-r101-ava"),
        ("hla-gcn", None, "hla-gcn-r50-ava-official"),  # AVA when the dataset is not named
        ("hla-gcn-r50-ava", None, "hla-gcn-r50-ava"),  # the paper-text recipe by name
        ("pear-prior", None, "pear-prior-aadb"),  # ... unless the model is only ever trained on AADB
    ],
)
def test_a_model_and_dataset_pick_one_recipe(model: str, dataset: str | None, expected: str) -> None:
    assert find_recipe(model, dataset).stem == expected


def test_unknown_model_and_unknown_keys_are_errors() -> None:
    with pytest.raises(RecipeError, match="no recipe for model 'nope'"):
        find_recipe("nope", "ava")
    recipe = list_recipes()["nima-r50-ava"]
    with pytest.raises(RecipeError, match="unknown recipe key 'train.epoch'; did you mean 'train.epochs'"):
        resolve(recipe, [("train.epoch", 3)])
    with pytest.raises(RecipeError, match=r"^unknown recipe key 'train.xyzzy'$"):  # no near miss: no guess
        resolve(recipe, [("train.xyzzy", 3)])
    with pytest.raises(RecipeError, match="train.epochs must be an integer, not 'many'"):
        resolve(recipe, [parse_override("train.epochs=many")])
    with pytest.raises(RecipeError, match="optim.name must be one of"):
        resolve(recipe, [("optim.name", "lbfgs")])
    with pytest.raises(RecipeError, match="does not fit ava"):
        resolve(recipe, [("model_config.bins", 5)])


def test_overrides_are_toml_literals() -> None:
    assert parse_override("optim.lr=3e-4") == ("optim.lr", 3e-4)
    assert parse_override("schedule.milestones=[2, 4]") == ("schedule.milestones", [2, 4])
    assert parse_override("model_config.backbone=resnet18") == ("model_config.backbone", "resnet18")
    assert parse_override("train.freeze_bn=true") == ("train.freeze_bn", True)
    resolved = resolve(list_recipes()["nima-r50-ava"], [("optim.lr", 1)])
    assert resolved["optim"]["lr"] == 1.0 and isinstance(resolved["optim"]["lr"], float)
    with pytest.raises(RecipeError, match="not KEY=VALUE"):
        parse_override("optim.lr")


runner = CliRunner()


def dry_run(*args: str) -> dict:
    result = runner.invoke(app, ["train", *args, "--dry-run"])
    assert result.exit_code == 0, result.output
    first, _, body = result.stdout.partition("\n")
    assert first.startswith("# recipe ")
    return tomllib.loads(body)


def test_dry_run_prints_the_resolved_recipe_as_toml() -> None:
    printed = dry_run("hla-gcn", "--dataset", "ava")
    assert printed == resolve(list_recipes()["hla-gcn-r50-ava-official"])
    assert set(printed) == set(DEFAULTS)


def test_command_line_overrides_reach_the_resolved_recipe() -> None:
    printed = dry_run(
        "hla-gcn-r101-ava", "--epochs", "3", "--batch-size", "8", "--lr", "0.5", "--no-pretrained",
        "--set", "model_config.backbone=resnet18", "--set", "schedule.milestones=[1, 2]",
        "--set", "train.amp=none",
    )  # fmt: skip
    assert printed["train"]["epochs"] == 3
    assert printed["train"]["batch_size"] == 8
    assert printed["optim"]["lr"] == 0.5
    assert printed["train"]["pretrained"] is False
    assert printed["model_config"]["backbone"] == "resnet18"
    assert printed["schedule"]["milestones"] == [1, 2]
    assert printed["train"]["amp"] == "none"
    untouched = resolve(list_recipes()["hla-gcn-r101-ava"])
    assert printed["optim"]["momentum"] == untouched["optim"]["momentum"]


def test_a_recipe_file_can_be_passed(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text('model = "nima"\ndataset = "aadb"\n[model_config]\nbins = 5\n[train]\nepochs = 2\n')
    printed = dry_run("--recipe", str(path))
    assert (printed["name"], printed["model"], printed["dataset"], printed["train"]["epochs"]) == (
        "mine",
        "nima",
        "aadb",
        2,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nima", "--set", "train.bogus=1"], "unknown recipe key 'train.bogus'"),
        (["nima", "--set", "optim.lr"], "is not KEY=VALUE"),
        (["nima", "--set", "train.amp=fp8"], "train.amp must be one of"),
        (["nima", "--set", "train.epochs=1.5"], "train.epochs must be an integer, not 1.5"),
        (["nima", "--set", "train.pretrained=yes"], "train.pretrained must be true or false, not 'yes'"),
        # A near miss of a key names the key meant (field test: "unknown recipe key 'trian.epochs'" alone).
        (["nima", "--set", "trian.epochs=3"], "unknown recipe key 'trian.epochs'; did you mean 'train.epochs'?"),
        (["nima", "--set", "model_confg.backbone=resnet18"], "did you mean 'model_config.backbone'?"),
        (["nima", "--dataset", "imagenet"], "--dataset must be one of"),
        (["nima", "--dataset", "aadb"], "no recipe for model 'nima' on aadb"),
        (["hla-gcn-r50-ava", "--dataset", "aadb"], "is for ava, not aadb"),
        (["--recipe", "missing.toml"], "does not exist"),
        # Values only the model's builder knows are wrong: refused before anything starts, as a run refuses them.
        (["nima", "--set", "model_config.backbone=resnet9"], "model_config: nima: unknown backbone 'resnet9'"),
        (["nima", "--set", "model_config.backbon=resnet18"], "nima has no option 'backbon'; did you mean 'backbone'?"),
        (["nima", "--set", "model_config.resize=squash"], "resize must be 'warp' or 'center_crop'"),
        (["nima", "--set", "model_config.input_size=0"], "input size must be a positive number of pixels"),
        (["hla-gcn", "--set", "model_config.blocks=9"], "blocks must be 1..4"),
        (["apm-r101-ava-semantic", "--set", "teacher=resnet9"], "teacher 'resnet9' is not a torchvision"),
        (["nima", "--set", "data.val_size=-5"], "data.val_size must be at least 0, not -5"),
        (["hla-gcn", "--dataset", "aadb", "--set", "data.min_ratings=0"], "data.min_ratings must be at least 1"),
    ],
)
def test_bad_overrides_are_one_line_errors_with_exit_2(args: list[str], message: str) -> None:
    result = runner.invoke(app, ["train", *args, "--dry-run"])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    assert message in lines[0]
    assert "Traceback" not in result.output


def test_train_needs_a_data_root() -> None:
    result = runner.invoke(app, ["train", "nima"])
    assert result.exit_code == 2
    assert "--data-root is required" in result.output


def test_help_does_not_import_torch() -> None:
    """``train --help`` stays instant: nothing on its path imports torch (``--dry-run`` does, to build the
    model on the meta device)."""
    code = (
        "import sys\nfrom aesthete.cli import app\n"
        "try:\n    app(['train', '--help'])\nexcept SystemExit:\n    pass\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert re.search(r"--dry-run", result.stdout)


def test_a_run_refuses_a_model_it_cannot_build_before_reading_data(tmp_path: Path) -> None:
    """The run checks what ``--dry-run`` checks, before the data root is looked at or --output made."""
    output = tmp_path / "run"
    result = runner.invoke(
        app,
        ["train", "nima", "--data-root", str(tmp_path), "--output", str(output), "--device", "cpu",
         "--set", "model_config.backbone=resnet9"],
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "unknown backbone 'resnet9'" in lines[0], result.output
    assert not output.exists()
