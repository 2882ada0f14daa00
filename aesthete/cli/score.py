"""``aesthete score``: scan folders, score new photos, cache everything, print a summary."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.cells import cell_len
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from aesthete import interrupts
from aesthete.cli.common import (
    DbOption,
    Exit,
    JsonOption,
    display_path,
    err,
    fail,
    library_errors,
    opened_store,
    out,
    print_json,
    print_unpadded,
    reachable,
    shorten_path,
)
from aesthete.formats import FORMAT_NAMES


@library_errors()
def score_command(
    paths: Annotated[
        list[Path], typer.Argument(metavar="PATHS", help="Folders or photos to score.", show_default=False)
    ],
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            "-m",
            metavar="NAME",
            help="Architecture (see `aesthete models`).",
            show_default="the best model whose weights you have",
        ),
    ] = None,
    weights: Annotated[
        str | None,
        typer.Option(
            "--weights",
            "-w",
            metavar="NAME|PATH",
            help="Registered weights NAME or a checkpoint PATH. An ImageNet backbone NAME (kind backbone in "
            "`aesthete weights list`, e.g. resnet50-imagenet1k-v1) stores embeddings for `aesthete learn`; "
            "no aesthetic score.",
        ),
    ] = None,
    device: Annotated[str, typer.Option(metavar="DEVICE", help="auto, cpu, cuda, cuda:N or mps.")] = "auto",
    precision: Annotated[
        str, typer.Option(metavar="PRECISION", help="auto, fp32, bf16 or fp16 (auto: bf16 where native).")
    ] = "auto",
    compile: Annotated[
        str,
        typer.Option(
            "--compile",
            metavar="WHEN",
            help="auto, on or off: run the model through torch.compile (auto: on CPU when enough photos "
            "need the model to repay the compilation).",
        ),
    ] = "auto",
    decode: Annotated[
        str,
        typer.Option(
            "--decode",
            metavar="WHO",
            help="auto, workers or device: who decodes the JPEGs that need no shrinking while decoding "
            "(auto: the workers; device: the model's device, nvJPEG on a GPU, and no faces are looked for "
            "in them).",
        ),
    ] = "auto",
    batch_size: Annotated[
        int | None, typer.Option(min=1, metavar="N", help="Photos per model batch.", show_default="64 on CUDA, else 8")
    ] = None,
    workers: Annotated[
        int | None, typer.Option(min=1, metavar="N", help="Decode processes.", show_default="one per core")
    ] = None,
    recursive: Annotated[bool, typer.Option("--recursive/--no-recursive", help="Descend into subfolders.")] = True,
    rescore: Annotated[bool, typer.Option(help="Decode and score again even if cached.")] = False,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Scan PATHS, score every new or changed photo and cache the results.

    Unchanged photos are skipped without being opened; moved or renamed ones are recognised by content.
    Exit codes: 0 all scored, 1 some failed, 2 usage error, 3 nothing usable, 4 no weights (technical
    signals only), 130 interrupted.
    """
    from aesthete.scoring import score

    for path in paths:
        if not reachable(path):
            fail(f"{path}: no such file or folder")
    # Ctrl-C stops the run; pressing it again while the last rows are saved must not break that stop.
    interrupts.install(once=True)
    with opened_store(db, create=True) as store, _progress(quiet=as_json) as progress:
        task = progress.add_task("scoring", total=None, rate=None)
        rate = _Rate()

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total, rate=rate.after(done))

        def phase(what: str) -> None:  # "reading" when there are no weights: nothing is scored
            progress.update(task, description=what)
            rate.first = None  # the rate counts from here: not across the model's load

        summary = score(
            [str(p) for p in paths], store=store, model=model, weights=weights, device=device,
            precision=precision, batch_size=batch_size, workers=workers, recursive=recursive, rescore=rescore,
            progress=advance, compile=compile, phase=phase, decode=decode,
        )  # fmt: skip
        database = str(store.path)
    code = _exit_code(summary)
    if as_json:
        print_json({**summary.to_dict(), "database": database, "exit_code": int(code)})
    else:
        _print_summary(summary, database)
    raise typer.Exit(int(code))


def _exit_code(summary) -> Exit:  # noqa: ANN001 - ScoreSummary, imported lazily
    if summary.interrupted:
        return Exit.INTERRUPTED
    usable = summary.scored + summary.analysed + summary.cached + summary.faces_filled + summary.remeasured
    if summary.found == 0 or usable == 0:
        return Exit.NOTHING_USABLE
    if summary.notice:
        return Exit.NO_WEIGHTS
    return Exit.SOME_FAILED if summary.failed else Exit.OK


def _time(summary) -> str:  # noqa: ANN001
    """The run's time, with a rate only when photos were read: a rescan of cached photos says so instead."""
    if summary.scored + summary.analysed:
        return f"{summary.seconds:.1f} s ({summary.throughput:.1f} photos/s)"
    # Failures recorded before are not read again; Ctrl-C before the first batch left every new photo to do.
    return f"{summary.seconds:.1f} s" + ("" if summary.read or summary.interrupted else " (nothing new)")


def _progress(*, quiet: bool) -> Progress:
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        _RateColumn(),
        TimeElapsedColumn(),
        _EtaColumn(),
        console=err,
        disable=quiet or not err.is_terminal,  # a log file gets the summary, not a bar's leftovers
        transient=True,
    )


# The first photos arrive in a burst (what the decode workers finished while the model loaded), so a
# rate taken then is absurd: none is shown before this many photos and seconds since the first one.
SETTLED_PHOTOS, SETTLED_S = 5, 3.0


class _Rate:
    """Photos per second since the first photo came back, once enough photos and time have passed."""

    def __init__(self) -> None:
        self.first: tuple[float, int] | None = None

    def after(self, done: int) -> float | None:
        now = time.monotonic()
        if self.first is None:
            self.first = (now, done)
        seconds, photos = now - self.first[0], done - self.first[1]
        return photos / seconds if seconds >= SETTLED_S and photos >= SETTLED_PHOTOS else None


class _RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        rate = task.fields.get("rate")
        return Text(f"{rate:.1f} photos/s" if rate else "", style="progress.data.speed")


class _EtaColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        rate = task.fields.get("rate")
        if not rate or task.total is None:
            return Text("")
        left = max(task.total - task.completed, 0) / rate
        return Text(f"ETA {int(left) // 60}:{int(left) % 60:02d}", style="progress.remaining")


def _print_problem(console: Console, label: str, style: str, path: str, reason: str, kind: str | None = None) -> None:
    """A file that failed or was skipped: ``  label path: kind: reason`` on one line where that fits the width
    (one grep finds it all), else the reason on lines of its own, indented under the path, and the path
    shortened from the middle if ``label path: kind`` would not fit either (the file name whole: one too long
    for a line folds onto the next). The full path is in ``--json`` and ``aesthete failures``."""
    head = Text.assemble("  ", (label, style), " ")
    what = f": {kind}" if kind else ""
    shown = display_path(path)
    line = Text.assemble(head, shown, what, ": ", reason)
    if cell_len(line.plain) <= console.width:
        console.print(line, soft_wrap=True)
        return
    room = max(console.width - cell_len(head.plain), 20)
    body = Text(shorten_path(shown, room - cell_len(what)) + what).wrap(console, room, overflow="fold")
    body.extend(Text(reason).wrap(console, room, overflow="fold"))
    indent = " " * cell_len(head.plain)
    for number, wrapped in enumerate(body):
        wrapped.rstrip()  # (a line broken at a space keeps it)
        console.print(Text.assemble(head if number == 0 else indent, wrapped), soft_wrap=True)


def _print_skipped(summary) -> None:  # noqa: ANN001
    for skipped in summary.discovery_errors[:20]:  # dangling links, loops, unreadable folders: not photos
        _print_problem(err, "skipped", "yellow", skipped.path, skipped.reason)
    if len(summary.discovery_errors) > 20:
        err.print(f"  ... and {len(summary.discovery_errors) - 20} more skipped (`score --json` lists them)")


def _print_summary(summary, database: str) -> None:  # noqa: ANN001
    if summary.found == 0:
        err.print(f"[yellow]no photos found[/] (supported: {FORMAT_NAMES})")
        _print_skipped(summary)  # a folder it could not open may be why (field test: said nothing of it)
        return
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")  # a long database path folds, whole, rather than losing its end
    if summary.model is None:  # nothing asked for and no aesthetic weights present
        model = "none (no aesthetic weights yet)"
    else:
        model = summary.model + (f" ({summary.weights})" if summary.weights else " (no weights)")
    compiled = ", compiled" if summary.compiled else ""
    if summary.device_decoded:
        compiled += f", {summary.device_decoded} decoded there"  # (by the device lane)
    table.add_row("model", model + (f" on {summary.device}, {summary.precision}{compiled}" if summary.device else ""))
    table.add_row("found", str(summary.found))
    table.add_row("embedded" if summary.embed_only else "scored", str(summary.scored))
    if summary.analysed:
        table.add_row("signals only", str(summary.analysed))
    table.add_row("cached", str(summary.cached))
    if summary.faces_filled:
        table.add_row("faces added", f"{summary.faces_filled} (decoded again for their faces, not scored again)")
    if summary.remeasured:
        table.add_row("measured again", f"{summary.remeasured} (signals from an older aesthete; not scored again)")
    if summary.paired:
        table.add_row("RAW with JPEG", f"{summary.paired} (one photo with their JPEG, not decoded)")
    table.add_row("failed", str(len(summary.failed)))
    table.add_row("time", _time(summary))
    table.add_row("database", database)
    print_unpadded(out, table)
    for failure in summary.failed[:20]:
        _print_problem(out, "failed", "red", failure.path, failure.reason, failure.kind)
    if len(summary.failed) > 20:
        out.print(f"  ... and {len(summary.failed) - 20} more (`aesthete failures`)")
    _print_skipped(summary)
    if summary.decode_notice:
        err.print(f"[yellow]note:[/] {escape(summary.decode_notice)}", highlight=False, soft_wrap=True)
    if summary.faces_notice:
        # Escaped: the notice names the install command, whose "[faces]" Rich would take for markup.
        err.print(f"[yellow]note:[/] {escape(summary.faces_notice)}", highlight=False, soft_wrap=True)
    if summary.embed_only:
        err.print(
            f"embeddings only: {summary.weights} are ImageNet weights with no aesthetic score; rate photos and "
            f"run `aesthete learn PATH --weights {summary.weights} --name NAME` to score with your own taste",
            highlight=False,
            soft_wrap=True,
        )
    if summary.notice:
        # soft_wrap: the terminal wraps the notice, so a command in it is never broken by a newline
        err.print(f"[yellow]notice:[/] {escape(summary.notice)}", highlight=False, soft_wrap=True)
    if summary.interrupted:
        err.print("[yellow]interrupted:[/] finished photos are saved; run the same command to continue")
