"""Training recipes: one TOML file per paper run in ``train/``, resolved against defaults and overrides.

A recipe is data, never code. Every key has a default here, so a recipe states what its paper says
and comments on what the paper does not; unknown keys are errors (a typo in ``--set`` must not silently
train something else). Two tables are free-form: ``model_config`` (the model builder's keyword
arguments, checked by the builder itself) and ``paper`` (what the paper reports, for comparison).

Torch-free: ``--dry-run`` and the recipe tests resolve recipes without importing torch.
"""

from __future__ import annotations

import copy
import json
import os
import sys
from pathlib import Path
from typing import Any

from aesthete.errors import AestheteError
from aesthete.training.datasets import DATASETS
from aesthete.wording import did_you_mean

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

FREE_FORM = ("model_config", "paper")

DEFAULTS: dict[str, Any] = {
    "name": "",
    "description": "",
    "model": "",
    "dataset": "",
    "default": False,  # the recipe `aesthete train MODEL --dataset D` picks when several match
    "init": "",  # a checkpoint to start from (an earlier training stage); loaded non-strictly
    "init_module": "",  # load `init` into this submodule only (e.g. PEAR's "prior"); "" = the whole model
    "teacher": "",  # a torchvision ImageNet classifier whose softmax becomes batch["teacher_probs"] (APM)
    "model_config": {},
    "data": {
        "val_size": 2000,
        "split_seed": 0,
        "test_list": "auto",
        "min_ratings": 2,
    },
    "augment": {
        "hflip": True,
        "scale": 1.0,  # warp inputs: warp to size * scale, then a random crop back to size
        "patches": 1,  # patch inputs: random crops per photo at training
        "bucket_step": 32,  # variable-size inputs: longer side cropped to a multiple of this
    },
    "optim": {
        "name": "sgd",
        "lr": 0.01,
        "momentum": 0.9,
        "nesterov": False,
        "weight_decay": 0.0,
        "betas": [0.9, 0.999],
    },
    "schedule": {
        "kind": "constant",  # constant | step (every step_size units) | multistep (at milestones)
        "unit": "epoch",  # epoch | iteration
        "milestones": [],
        "step_size": 0,
        "gamma": 0.1,
    },
    "train": {
        "epochs": 1,
        "batch_size": 32,  # the global batch, kept whatever the number of processes
        "micro_batch": 0,  # largest per-process forward; 0 = the whole per-process share
        "eval_batch_size": 0,  # 0 = batch_size
        "workers": 8,  # data-loading processes per training process
        "amp": "bf16",  # bf16 | fp16 | none; CUDA only
        "pretrained": True,  # ImageNet backbone weights (torchvision's)
        "freeze_bn": False,  # BatchNorm uses its running statistics and does not update them
        "sync_bn": False,  # SyncBatchNorm across GPUs
        "seed": 0,
        "checkpoint_every": 0,  # steps between mid-epoch checkpoints; 0 = once per epoch
        "find_unused_parameters": False,
    },
    "eval": {
        "threshold": 5.0,  # binary label threshold on the mean score
        "rule": ">=",  # ">=" (mu >= t is high) or ">" (mu > t is high)
    },
    "paper": {},
}

_CHOICES = {
    ("optim", "name"): ("sgd", "adam", "adamw"),
    ("schedule", "kind"): ("constant", "step", "multistep"),
    ("schedule", "unit"): ("epoch", "iteration"),
    ("train", "amp"): ("bf16", "fp16", "none"),
    ("eval", "rule"): (">=", ">"),
}
# The smallest value each counting key takes: a count below it means nothing, and would otherwise fail in
# the middle of reading the data or building the optimiser (a negative data.val_size as a NumPy traceback).
_MINIMUM = {
    ("train", "epochs"): 1,
    ("train", "batch_size"): 1,
    ("augment", "patches"): 1,
    ("augment", "bucket_step"): 1,
    ("data", "min_ratings"): 1,  # 0 would keep photos without a vote, which have no distribution
    ("data", "val_size"): 0,
    ("train", "micro_batch"): 0,
    ("train", "eval_batch_size"): 0,
    ("train", "workers"): 0,
    ("train", "checkpoint_every"): 0,
    ("optim", "momentum"): 0,
    ("optim", "weight_decay"): 0,
}


# How a refusal names the kind of value a key takes (Python's `int` reads "must be a int").
_KINDS = {bool: "true or false", int: "an integer", float: "a number", str: "a string", list: "a list"}


class RecipeError(AestheteError, ValueError):
    """A recipe or override that cannot be used; the message names the key."""


def recipes_dir() -> Path:
    """``$AESTHETE_RECIPES``, else the recipes packaged in an installed wheel (``aesthete/recipes``, copied
    from ``train/`` by setup.py), else the ``train/`` folder of the source tree, else ``./train``."""
    if os.environ.get("AESTHETE_RECIPES"):
        return Path(os.environ["AESTHETE_RECIPES"])
    packaged = Path(__file__).resolve().parents[1] / "recipes"
    if packaged.is_dir():
        return packaged
    source_tree = Path(__file__).resolve().parents[2] / "train"
    return source_tree if source_tree.is_dir() else Path.cwd() / "train"


def list_recipes(directory: Path | None = None) -> dict[str, dict[str, Any]]:
    """Every recipe in ``directory`` by name, as written (unresolved)."""
    directory = directory or recipes_dir()
    return {path.stem: load_recipe(path) for path in sorted(directory.glob("*.toml"))}


def find_recipe(model_or_recipe: str, dataset: str | None = None, directory: Path | None = None) -> Path:
    """A recipe file from a path, a recipe name (``hla-gcn-r50-ava``) or a model name plus dataset."""
    as_path = Path(model_or_recipe)
    if as_path.suffix == ".toml":
        if not as_path.is_file():
            raise RecipeError(f"recipe file {as_path} does not exist")
        return as_path
    directory = directory or recipes_dir()
    named = directory / f"{model_or_recipe}.toml"
    if named.is_file():
        return named
    if dataset is None:  # AVA unless the model is trained on one other dataset only (pear-prior: AADB)
        trained_on = {r.get("dataset") for r in list_recipes(directory).values() if r.get("model") == model_or_recipe}
        dataset = trained_on.pop() if len(trained_on) == 1 else "ava"
    matches = {
        name: recipe
        for name, recipe in list_recipes(directory).items()
        if recipe.get("model") == model_or_recipe and recipe.get("dataset") == dataset
    }
    if len(matches) > 1:
        matches = {name: recipe for name, recipe in matches.items() if recipe.get("default")} or matches
    if len(matches) == 1:
        return directory / f"{next(iter(matches))}.toml"
    if matches:
        raise RecipeError(
            f"several recipes train {model_or_recipe} on {dataset} ({', '.join(sorted(matches))}); name one"
        )
    known = ", ".join(sorted(list_recipes(directory))) or f"none in {directory}"
    raise RecipeError(f"no recipe for model {model_or_recipe!r} on {dataset}; recipes: {known}")


def load_recipe(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise RecipeError(f"{path}: {exc}") from None
    data.setdefault("name", Path(path).stem)
    return data


def parse_override(text: str) -> tuple[str, Any]:
    """``key.sub=value`` -> (``key.sub``, value), the value read as a TOML literal or else a string."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise RecipeError(f"override {text!r} is not KEY=VALUE")
    try:
        value = tomllib.loads(f"value = {raw.strip()}")["value"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return key, value


def resolve(recipe: dict[str, Any], overrides: list[tuple[str, Any]] | None = None) -> dict[str, Any]:
    """Defaults <- recipe <- overrides, checked: every key known, every type and choice valid."""
    resolved = copy.deepcopy(DEFAULTS)
    for key, value in [*_flatten(recipe), *(overrides or [])]:
        _set(resolved, key, value)
    _validate(resolved)
    return resolved


def _flatten(data: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """Nested tables -> dotted keys; the free-form tables stay whole."""
    items = []
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and dotted not in FREE_FORM:
            items.extend(_flatten(value, f"{dotted}."))
        else:
            items.append((dotted, value))
    return items


def _set(resolved: dict[str, Any], dotted: str, value: Any) -> None:
    """Set one dotted key of a resolved recipe, checking it against the defaults."""
    parts = dotted.split(".")
    if parts[0] in FREE_FORM:
        if len(parts) == 1:
            if not isinstance(value, dict):
                raise RecipeError(f"{dotted} is a table; set one of its keys, e.g. {dotted}.backbone=resnet18")
            resolved[dotted] = copy.deepcopy(value)
            return
        node = resolved[parts[0]]
        for part in parts[1:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise RecipeError(f"{dotted}: {part} is a value, not a table")
        node[parts[-1]] = value
        return
    default = _lookup(DEFAULTS, parts)
    if default is _MISSING:
        rest = dotted.partition(".")[2]  # a typo of a free-form table's name keeps its key
        known = [key for key, _ in _flatten(DEFAULTS)] + [f"{table}.{rest}" for table in FREE_FORM if rest]
        raise RecipeError(f"unknown recipe key {dotted!r}{did_you_mean(dotted, known)}")
    if isinstance(default, dict):
        raise RecipeError(f"{dotted} is a table, not a value")
    node = resolved
    for part in parts[:-1]:
        node = node[part]
    node[parts[-1]] = _coerce(dotted, value, default)


_MISSING = object()


def _lookup(tree: dict[str, Any], parts: list[str]) -> Any:
    node: Any = tree
    for part in parts:
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _coerce(key: str, value: Any, default: Any) -> Any:
    """``value`` in ``default``'s type: an int is a valid float and a number a valid string, nothing else."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
    elif isinstance(default, float) and number:
        return float(value)
    elif (isinstance(default, int) and number and isinstance(value, int)) or (
        isinstance(default, list) and isinstance(value, list)
    ):
        return value
    elif isinstance(default, str) and (number or isinstance(value, str)):
        return str(value)
    raise RecipeError(f"{key} must be {_KINDS[type(default)]}, not {value!r}")


def _validate(recipe: dict[str, Any]) -> None:
    if not recipe["model"]:
        raise RecipeError("the recipe names no model")
    if recipe["dataset"] not in DATASETS:
        raise RecipeError(f"dataset must be one of {', '.join(DATASETS)}, not {recipe['dataset']!r}")
    for (table, key), choices in _CHOICES.items():
        if recipe[table][key] not in choices:
            raise RecipeError(f"{table}.{key} must be one of {', '.join(choices)}, not {recipe[table][key]!r}")
    for (table, key), minimum in _MINIMUM.items():
        if recipe[table][key] < minimum:
            raise RecipeError(f"{table}.{key} must be at least {minimum}, not {recipe[table][key]!r}")
    if recipe["optim"]["lr"] <= 0:
        raise RecipeError("optim.lr must be positive")
    schedule = recipe["schedule"]
    if schedule["kind"] == "step" and schedule["step_size"] < 1:
        raise RecipeError("schedule.step_size must be at least 1 for a step schedule")
    if schedule["kind"] == "multistep" and not schedule["milestones"]:
        raise RecipeError("schedule.milestones must list at least one point for a multistep schedule")
    bins = recipe["model_config"].get("bins")
    dataset = DATASETS[recipe["dataset"]]
    if bins is not None and not dataset.fits_bins(bins):
        raise RecipeError(f"model_config.bins = {bins} does not fit {dataset.name} ({dataset.bins} bins)")


def differences(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two resolved recipes."""
    keys = sorted(set(a) | set(b))
    out = []
    for key in keys:
        left, right = a.get(key, _MISSING), b.get(key, _MISSING)
        if isinstance(left, dict) and isinstance(right, dict):
            out.extend(differences(left, right, f"{prefix}{key}."))
        elif left != right:
            out.append(f"{prefix}{key}")
    return out


def to_toml(recipe: dict[str, Any]) -> str:
    """A resolved recipe as TOML (scalars first, then tables, nested tables dotted)."""
    lines: list[str] = []
    _emit(recipe, [], lines)
    return "\n".join(lines).strip() + "\n"


def _emit(table: dict[str, Any], path: list[str], lines: list[str]) -> None:
    scalars = {k: v for k, v in table.items() if not isinstance(v, dict)}
    tables = {k: v for k, v in table.items() if isinstance(v, dict)}
    if path and (scalars or not tables):
        lines.append(f"\n[{'.'.join(_key(p) for p in path)}]")
    lines.extend(f"{_key(k)} = {_literal(v)}" for k, v in scalars.items())
    for key, value in tables.items():
        _emit(value, [*path, key], lines)


def _key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() else json.dumps(key)


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    raise RecipeError(f"cannot write {value!r} as TOML")
