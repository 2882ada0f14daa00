"""``aesthete train`` and ``aesthete eval``: reproduce a paper's AVA/AADB run, and measure any checkpoint.

Thin on purpose: options become a resolved recipe and run options, the library does the work
(:mod:`aesthete.training`). Nothing here imports torch at module level, so ``--help`` starts instantly;
``--dry-run`` imports it to build the model on the meta device, as a run does before it reads any data.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.markup import escape
from rich.table import Table

from aesthete import interrupts
from aesthete.cli.common import Exit, JsonOption, err, fail, library_errors, out, print_json, print_unpadded

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

DATASETS = ("ava", "aadb")  # the names of aesthete.training.datasets.DATASETS (imported lazily)
SPLITS = ("train", "val", "test")


def train_command(
    model_or_recipe: Annotated[
        str | None,
        typer.Argument(
            metavar="MODEL_OR_RECIPE",
            help="A model (hla-gcn), a recipe name (hla-gcn-r101-ava) or a recipe .toml file.",
        ),
    ] = None,
    dataset: Annotated[
        str | None, typer.Option(metavar="DATASET", help="ava or aadb: picks the model's recipe.")
    ] = None,
    data_root: Annotated[
        Path | None, typer.Option(metavar="DIR", help="The dataset folder (AVA.txt and images/, or AADB's release).")
    ] = None,
    recipe: Annotated[
        Path | None, typer.Option(metavar="FILE", help="A recipe TOML file (instead of one from train/).")
    ] = None,
    gpus: Annotated[int, typer.Option(min=0, metavar="N", help="GPUs on this machine: one NCCL process each.")] = 0,
    nproc: Annotated[
        int, typer.Option(min=0, metavar="N", help="CPU processes on gloo (distributed training without GPUs).")
    ] = 0,
    nodes: Annotated[
        int, typer.Option(min=1, metavar="N", help="Machines taking part (run the same command on each).")
    ] = 1,
    node_rank: Annotated[int, typer.Option(min=0, metavar="N", help="This machine's index, 0..nodes-1.")] = 0,
    master_addr: Annotated[str, typer.Option(metavar="HOST", help="Address of the node-rank-0 machine.")] = "127.0.0.1",
    master_port: Annotated[int, typer.Option(metavar="PORT", help="Free port on the node-rank-0 machine.")] = 29500,
    epochs: Annotated[int | None, typer.Option(min=1, metavar="N", help="Override train.epochs.")] = None,
    batch_size: Annotated[
        int | None, typer.Option(min=1, metavar="N", help="Override the global batch (train.batch_size).")
    ] = None,
    lr: Annotated[float | None, typer.Option(min=0.0, metavar="RATE", help="Override optim.lr.")] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set", metavar="KEY=VALUE", help="Override any recipe value, KEY=VALUE (TOML literal); repeatable."
        ),
    ] = None,
    no_pretrained: Annotated[
        bool, typer.Option("--no-pretrained", help="Start the backbone from random weights, not ImageNet.")
    ] = False,
    resume: Annotated[bool, typer.Option(help="Continue the run saved in --output.")] = False,
    limit: Annotated[
        int | None, typer.Option(min=1, metavar="N", help="At most N images per split (a smoke run).")
    ] = None,
    output: Annotated[Path | None, typer.Option(metavar="DIR", help="Run folder.", show_default="runs/RECIPE")] = None,
    dry_run: Annotated[bool, typer.Option(help="Print the resolved recipe and exit.")] = False,
    device: Annotated[str, typer.Option(metavar="DEVICE", help="auto, cpu, cuda or mps (one process).")] = "auto",
    workers: Annotated[
        int | None, typer.Option(min=0, metavar="N", help="Data-loading processes per training process.")
    ] = None,
) -> None:
    """Train MODEL_OR_RECIPE with its paper's recipe; print its metrics beside the paper's.

    Writes RUN/state.pt every epoch (for --resume), RUN/metrics.json, and at the end RUN/model.safetensors,
    a self-describing checkpoint for `aesthete weights add`.
    """
    from aesthete.training.options import RunOptions
    from aesthete.training.preflight import check_model, choose_recipe
    from aesthete.training.recipes import differences, load_recipe, parse_override, resolve, to_toml

    with library_errors():
        named = [("train.epochs", epochs), ("train.batch_size", batch_size), ("optim.lr", lr)]
        overrides = [parse_override(text) for text in set_ or []]
        overrides += [(key, value) for key, value in named if value is not None]
        if no_pretrained:
            overrides.append(("train.pretrained", False))
        path, resolved = choose_recipe(model_or_recipe, recipe, dataset, overrides)
        check_model(resolved)
    if dry_run:
        out.print(f"# recipe {resolved['name']} from {path}", highlight=False, markup=False)
        out.print(to_toml(resolved), highlight=False, markup=False, end="")
        return

    from aesthete.training import preflight

    with library_errors():
        root = preflight.check_data_root(data_root)
        preflight.check_init(resolved, resume=resume)
        preflight.check_teacher(resolved)
        processes, device = preflight.plan_processes(
            gpus=gpus, nproc=nproc, nodes=nodes, node_rank=node_rank, device=device
        )
        options = RunOptions(
            data_root=root.resolve(),
            output=(output or Path("runs") / resolved["name"]).resolve(),
            device=device,
            resume=resume,
            limit=limit,
            workers=workers,
        )
        if processes > 1 or nodes > 1:  # the trainer checks too, but a failing worker ends in torchrun's report
            preflight.check_launch(
                options.output, options.data_root, resolved["dataset"], resume=resume, node_rank=node_rank
            )
    topology = {"nproc": processes, "nodes": nodes, "node_rank": node_rank, "master_addr": master_addr,
                "master_port": master_port}  # fmt: skip
    interrupts.install()
    try:
        summary = _train(resolved, options, topology)
    except KeyboardInterrupt:
        _say_interrupted(options.output, node_rank)
    if summary is None:  # another machine's rank 0 wrote the metrics
        return
    images = (summary.get("test") or {}).get("images")
    changed = differences(resolve(load_recipe(path), []), resolved)  # what the overrides really changed
    caption = _unlike_the_paper([*changed, *([f"--limit {limit}"] if summary.get("cut_by_limit") else [])])
    if summary.get("comparison"):
        print_unpadded(out, comparison_table(summary["comparison"], title=f"{resolved['name']}: test split",
                                   images=images, caption=caption))  # fmt: skip
    else:  # a stage that scores no photo (PEAR's prior) has only its loss: no empty table
        loss = summary["test"]["loss"]
        out.print(f"{resolved['name']}: test loss {loss:.4f} on {images} images (no paper metrics: a model that "
                  "scores no photo)", highlight=False, markup=False)  # fmt: skip
    err.print(f"run saved in {options.output}", highlight=False, markup=False)


def _train(resolved: dict[str, Any], options: Any, topology: dict[str, Any]) -> dict[str, Any] | None:
    """Run the training in this process, or under torchrun for several processes or machines
    (``topology``: :func:`aesthete.training.launcher.launch`'s); its summary, or None where another
    machine's rank 0 holds it."""
    if topology["nproc"] > 1 or topology["nodes"] > 1:
        from aesthete.training.launcher import LIBRARY_ERROR, launch
        from aesthete.training.options import METRICS_FILE

        code = launch(resolved, options, **topology)
        if code == LIBRARY_ERROR:  # the ranks said why in one line each
            raise typer.Exit(code)
        if code != 0:
            fail(f"training processes exited with status {code}", code=code)
        metrics_path = options.output / METRICS_FILE
        return json.loads(metrics_path.read_text(encoding="utf-8")) if metrics_path.is_file() else None
    from aesthete.training.trainer import run

    with ConsoleReport() as report, library_errors():
        return run(resolved, options, say=report.say, progress=report.progress)


def _say_interrupted(output: Path, node_rank: int) -> NoReturn:
    """After Ctrl-C: what the run folder keeps and how to go on (exit 130)."""
    from aesthete.training.options import STATE_FILE

    state = output / STATE_FILE
    if node_rank != 0:  # rank 0 writes the checkpoints, on its own machine
        err.print("[yellow]interrupted:[/] the node-rank-0 machine keeps the run's checkpoints; run the same "
                  "commands with --resume to continue", highlight=False, soft_wrap=True)  # fmt: skip
    elif state.is_file():
        err.print(f"[yellow]interrupted:[/] {escape(str(state))} keeps the run up to its last checkpoint; "
                  "run the same command with --resume to continue", highlight=False, soft_wrap=True)  # fmt: skip
    else:
        err.print(
            "[yellow]interrupted:[/] before the first checkpoint; nothing was saved", highlight=False, soft_wrap=True
        )
    raise typer.Exit(Exit.INTERRUPTED)


def eval_command(
    checkpoint: Annotated[
        str,
        typer.Argument(
            metavar="CHECKPOINT", help="Registered weights NAME (as `score --weights`) or a checkpoint PATH."
        ),
    ],
    dataset: Annotated[str, typer.Option(metavar="DATASET", help="ava or aadb.")],
    data_root: Annotated[Path, typer.Option(metavar="DIR", help="The dataset folder.")],
    split: Annotated[str, typer.Option(metavar="SPLIT", help="train, val or test.")] = "test",
    batch_size: Annotated[int | None, typer.Option(min=1, metavar="N", help="Photos per forward.")] = None,
    device: Annotated[str, typer.Option(metavar="DEVICE", help="auto, cpu, cuda, cuda:N or mps.")] = "auto",
    workers: Annotated[int | None, typer.Option(min=0, metavar="N", help="Data-loading processes.")] = None,
    limit: Annotated[int | None, typer.Option(min=1, metavar="N", help="At most N images (a smoke run).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Measure CHECKPOINT on a dataset split with the papers' metrics, beside the paper's numbers."""
    if dataset not in DATASETS:
        fail(f"--dataset must be one of {', '.join(DATASETS)}")
    if split not in SPLITS:
        fail(f"--split must be one of {', '.join(SPLITS)}")
    from aesthete.training.evaluation import evaluate_checkpoint
    from aesthete.weights import resolve_weights

    with library_errors():
        resolved = resolve_weights(checkpoint)  # a registered name, like `score --weights`, or a file
        report = evaluate_checkpoint(
            resolved.path, dataset, data_root, split=split, device=device, batch_size=batch_size,
            workers=workers, limit=limit, say=None if as_json else ConsoleReport().say,
        )  # fmt: skip
    if as_json:
        from aesthete.training.metrics import json_ready

        print_json(json_ready(report))
    else:
        limited = [f"--limit {limit}"] if report["cut_by_limit"] else []
        crossed = [f"trained on {report['trained_on']}"] if report["trained_on"] not in (None, dataset) else []
        caption = _unlike_the_paper([*crossed, *(report["recipe_changes"] or []), *limited])
        print_unpadded(out, comparison_table(report["comparison"], title=f"{resolved.name} on {dataset} {split}",
                                   images=report["metrics"].get("images"), caption=caption))  # fmt: skip


def register(app: typer.Typer) -> None:
    """Add ``train`` and ``eval`` to the main CLI."""
    app.command("train", short_help="Train a model with its paper's recipe.")(train_command)
    app.command("eval", short_help="Measure a checkpoint with the papers' metrics.")(eval_command)


def comparison_table(
    rows: list[dict[str, Any]], *, title: str, images: int | None = None, caption: str | None = None
) -> Table:
    """Our metrics beside the paper's; the title says on how many images ours were measured (the
    papers' AVA test set has 19,930), the caption how this run differs from the paper's setting."""
    if images is not None:
        title = f"{title}, {images:,} image{'s' if images != 1 else ''}"
    table = Table(title=title, caption=caption)
    table.add_column("metric")
    table.add_column("ours", justify="right")
    table.add_column("paper", justify="right")
    table.add_column("better", justify="center")
    for row in rows:
        table.add_row(
            row["metric"], _cell(row["metric"], row["ours"]), _cell(row["metric"], row["paper"]), row["better"]
        )
    return table


def _unlike_the_paper(changes: list[str]) -> str | None:
    """The caption of a run whose recipe was changed from the paper's (or whose data --limit cut)."""
    return f"not the paper's setting: {', '.join(changes)}" if changes else None


def _cell(metric: str, value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 100:.2f}%" if metric == "accuracy" else f"{value:.4f}"


class ConsoleReport:
    """Training's news on stderr: each line as it comes, and on a terminal a transient Rich bar per
    epoch (a log file gets the epoch lines, not bars). The library reports through :meth:`say` and
    :meth:`progress` callbacks; this is the only place that knows about Rich."""

    def __init__(self) -> None:
        self._bar: Progress | None = None
        self._task: str | None = None
        self._id: TaskID | None = None

    def __enter__(self) -> ConsoleReport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def say(self, line: str) -> None:
        err.print(line, highlight=False, markup=False, soft_wrap=True)

    def progress(self, task: str, done: int, total: int, info: str | None) -> None:
        if not err.is_terminal:
            return
        if task != self._task:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.close()
            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[info]}"),
                TimeRemainingColumn(),
                console=err,
                transient=True,
            )
            self._bar.start()
            self._task, self._id = task, self._bar.add_task(task, total=total, info="")
        assert self._bar is not None and self._id is not None
        fields = {} if info is None else {"info": info}
        self._bar.update(self._id, completed=done, total=total, **fields)
        if done >= total:
            self.close()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
        self._bar, self._task, self._id = None, None, None
