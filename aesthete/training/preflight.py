"""The checks ``aesthete train`` makes before it starts a process: which recipe the arguments name,
whether its model builds, whether the processes asked for can run here, and whether the run folder and
data root are what the run needs. Each raises a library error with a one-line message, so a mistake is
reported before any data is read, and before torchrun starts N processes that would each fail in its
own report.

Torch-free except :func:`check_model` (``--dry-run`` too), :func:`check_teacher` and :func:`check_gpus`,
which import torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aesthete.errors import OptionError
from aesthete.training.datasets import dataset_names, get_dataset
from aesthete.training.options import METRICS_FILE, MODEL_FILE, STATE_FILE, TrainingError
from aesthete.training.recipes import RecipeError, find_recipe, load_recipe, resolve


def recipe_path(model_or_recipe: str | None, recipe: Path | None, dataset: str | None) -> Path:
    """The recipe file the arguments name: ``--recipe FILE``, a recipe name, or a model and dataset."""
    if recipe is not None:
        return find_recipe(str(recipe))
    if not model_or_recipe:
        raise RecipeError("name a model or recipe (e.g. `aesthete train hla-gcn --dataset ava`), or pass --recipe FILE")
    if dataset is not None and dataset not in dataset_names():
        raise RecipeError(f"--dataset must be one of {', '.join(dataset_names())}")
    return find_recipe(model_or_recipe, dataset)


def choose_recipe(
    model_or_recipe: str | None,
    recipe: Path | None,
    dataset: str | None,
    overrides: list[tuple[str, Any]],
) -> tuple[Path, dict[str, Any]]:
    """(recipe file, resolved recipe) for the arguments; a recipe that contradicts them is an error."""
    path = recipe_path(model_or_recipe, recipe, dataset)
    raw = load_recipe(path)
    if model_or_recipe and recipe and model_or_recipe not in (raw.get("model"), raw.get("name")):
        raise RecipeError(f"--recipe {recipe} trains {raw.get('model')}, not {model_or_recipe}")
    if dataset and raw.get("dataset") != dataset:
        raise RecipeError(f"recipe {raw['name']} is for {raw.get('dataset')}, not {dataset}")
    return path, resolve(raw, overrides)


def check_model(recipe: dict[str, Any]) -> None:
    """Build the recipe's model on PyTorch's meta device (shapes only: no memory, no weights, milliseconds
    once torch is imported), so that whatever its builder refuses -- an unknown backbone, ``model_config``
    key or choice -- is a one-line :class:`RecipeError`, and check that ``teacher`` names a torchvision
    classifier. The builders hold the rules; nothing here repeats them."""
    import torch
    import torchvision

    from aesthete.models import get_model

    try:
        with torch.device("meta"):
            get_model(recipe["model"], **recipe["model_config"])
    except OptionError as exc:  # get_model's refusals name the model: "nima has no option 'backbon'"
        raise RecipeError(f"model_config: {exc}") from None
    except (TypeError, ValueError) as exc:  # a builder failing on a value of the wrong kind
        raise RecipeError(f"model_config does not build {recipe['model']}: {exc}") from None
    teacher = recipe["teacher"]
    if teacher and teacher not in torchvision.models.list_models(module=torchvision.models):
        raise RecipeError(f"teacher {teacher!r} is not a torchvision ImageNet classifier (e.g. resnet101)")


def check_init(recipe: dict[str, Any], *, resume: bool) -> None:
    """A staged recipe's ``init`` -- the previous stage's checkpoint -- exists, before any data is read or
    process started (a resumed run has its weights in its state and does not read it again)."""
    init = recipe["init"]
    if init and not resume and not Path(init).is_file():
        raise TrainingError(
            f"init {init} does not exist: train the stage that writes it first (docs/training.md), "
            "or point --set init=PATH at its model.safetensors"
        )


def check_teacher(recipe: dict[str, Any]) -> None:
    """A distilling recipe's teacher has its ImageNet weights -- fetched now where torchvision can, as
    the run would -- before any data is read (APM's teacher is built after the data plan)."""
    if recipe["teacher"]:
        from aesthete.models.backbones import teacher_state_dict

        teacher_state_dict(recipe["teacher"])


def plan_processes(*, gpus: int, nproc: int, nodes: int, node_rank: int, device: str) -> tuple[int, str]:
    """(processes on this machine, device) for ``--gpus`` / ``--nproc`` / ``--nodes`` / ``--device``."""
    if gpus and nproc:
        raise TrainingError("use --gpus for GPU processes or --nproc for CPU processes, not both")
    if nodes > 1 and node_rank >= nodes:
        raise TrainingError(f"--node-rank must be below --nodes ({nodes})")
    if gpus:
        check_gpus(gpus)
        return gpus, "cuda"
    if nproc:
        return nproc, "cpu"
    return 1, device


def check_gpus(count: int) -> None:
    import torch

    available = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if available < count:
        raise TrainingError(f"--gpus {count} asked for, but {available} CUDA device(s) are visible")


def check_data_root(data_root: Path | None) -> Path:
    if data_root is None:
        raise TrainingError("--data-root is required (the folder holding the dataset)")
    if not data_root.is_dir():
        raise TrainingError(f"--data-root {data_root} is not a folder")
    return data_root


def check_run_folder(output: Path, *, resume: bool) -> None:
    """``output`` can take this run: a new or empty folder, any folder whose files the run leaves alone,
    or with ``resume`` a run's own folder. Never a file, and never a folder whose files a new run would
    overwrite: another run's, or a ``model.safetensors`` / ``metrics.json`` that no run left there (a run
    writes its state first, so its own folder always holds one)."""
    state = output / STATE_FILE
    if output.exists() and not output.is_dir():  # mkdir's "File exists" would not say which is wrong
        raise TrainingError(f"--output {output} is a file, not a folder")
    if resume:
        if not state.is_file():
            raise TrainingError(f"--resume: no training state at {state}")
        return
    if state.exists():
        raise TrainingError(f"{output} already holds a run; pass --resume to continue it or choose --output")
    taken = [name for name in (MODEL_FILE, METRICS_FILE) if (output / name).exists()]
    if taken:
        raise TrainingError(
            f"--output {output} holds {' and '.join(taken)} but no training run, which a run would "
            "overwrite; choose another --output"
        )


def check_launch(output: Path, data_root: Path, dataset: str, *, resume: bool, node_rank: int) -> None:
    """What a multi-process run checks before torchrun starts: the run folder (on the machine that
    writes it) and that the dataset's label files exist (reading them is rank 0's job, in the workers).
    The trainer checks the run folder again; this only makes a mistake one line instead of N reports."""
    if node_rank == 0:
        check_run_folder(output, resume=resume)
    get_dataset(dataset).locate(data_root)
