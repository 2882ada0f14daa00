"""``aesthete weights``: list, pull, add, verify and remove checkpoints. Thin: ``aesthete.weights`` does
the work.

Exit codes: 0 done (``remove`` of weights not downloaded too: there was nothing to remove); 1 a file
failed its sha256 check or is not usable (``verify``, or a refused ``pull``), or a non-commercial
licence was declined at the prompt (nothing downloaded or converted); 2 bad input (unknown name, not a
usable checkpoint, unusable registry, download failure, a non-commercial licence not accepted where
there is no terminal to ask, weights being pulled or removed by another aesthete, a file that cannot be
written or deleted); 130 Ctrl-C during ``pull`` (nothing under the final name; the next pull resumes) or
``add`` (nothing added: no copy left in the cache, the registry as it was).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Column, Table

from aesthete import weights
from aesthete.cli.common import Exit, JsonOption, err, fail, library_errors, out, print_json, print_unpadded

app = typer.Typer(
    help="Registered weights: list them, download (pull), register your own checkpoints (add), verify "
    "files, remove them (remove).",
    no_args_is_help=True,
    rich_markup_mode=None,  # plain Click help, like the main command (see aesthete/cli/__init__.py)
)


@app.command("list", short_help="List the weights: licence, size, source, AVA SRCC.")
def list_command(as_json: JsonOption = False) -> None:
    """List the project's weights and your own: licence, download size, the publisher's AVA SRCC, and
    whether each file is downloaded and verified. Sources follow the table, each URL on one line. Then
    your personal heads (`aesthete learn`): base model and weights, ratings used, cross-validated SRCC."""
    from aesthete.learning import list_heads

    with library_errors():
        entries = weights.list_weights()
        srcc = {entry.name: weights.ava_srcc(entry, entries) for entry in entries}
        heads = list_heads()
    if as_json:
        rows = [{**entry.to_dict(), "ava_srcc": srcc[entry.name]} for entry in entries]
        print_json({"weights": rows + heads})
        return
    # Sized for an 80-column terminal: the long free text (sources, URLs) goes below the table, where a
    # URL is printed whole on its own line rather than folded across cells.
    table = _listing(
        Column("name", overflow="fold"),
        Column("model", overflow="fold"),
        Column("licence", overflow="fold"),
        Column("size", justify="right", no_wrap=True),
        Column("AVA\nSRCC", justify="right", no_wrap=True),
        Column("here", no_wrap=True),
    )
    for entry in entries:
        network = entry.arch or f"({entry.backbone})"
        value = srcc[entry.name]
        table.add_row(
            escape(entry.name),
            escape(network),
            escape(entry.license or "-"),
            weights.human_size(entry.size) if entry.origin == "project" else "local",
            f"{value:.3f}" if value is not None else "-",
            "[green]yes[/]" if entry.available else "no",
        )
    print_unpadded(out, table)
    out.print("(model): a training backbone.  AVA SRCC: the publisher's own AVA test figure.")
    out.print("size -: not published.  here: downloaded and verified.  Sources:", highlight=False)
    for entry in entries:
        where = entry.url if entry.origin == "project" else str(entry.path)
        needs = f" (needs {entry.requires})" if entry.requires else ""
        out.print(f"{escape(entry.name)}{needs}: {where}", soft_wrap=True, highlight=False, markup=False)
    if heads:
        _print_heads(heads)


def _listing(*columns: Column) -> Table:
    """A borderless table, as `weights list` draws its two: narrow enough for 80 columns."""
    return Table(*columns, box=None, padding=(0, 1), pad_edge=False)


def _print_heads(heads: list[dict]) -> None:
    """Personal heads (kind personal): a table of their own, since none of the columns above fits them."""
    table = _listing(
        Column("personal", overflow="fold"),
        Column("base model", overflow="fold"),
        Column("base weights", overflow="fold"),
        Column("ratings", justify="right", no_wrap=True),
        Column("CV\nSRCC", justify="right", no_wrap=True),
    )
    for head in heads:
        srcc = head.get("cv_srcc")
        ratings = head.get("ratings")
        table.add_row(
            escape(head["name"]),
            escape(head.get("base_model") or ("unreadable" if "error" in head else "-")),
            escape(head.get("base_weights") or "-"),
            str(ratings) if ratings is not None else "-",
            f"{srcc:.3f}" if srcc is not None else "-",
        )
    out.print()
    print_unpadded(out, table)
    out.print("personal: your heads (`aesthete learn`).  CV SRCC: cross-validated.  Files:")
    for head in heads:
        problem = f" ({head['error']})" if "error" in head else ""
        out.print(f"{head['name']}: {head['path']}{problem}", soft_wrap=True, highlight=False, markup=False)


AcceptLicense = Annotated[
    bool,
    typer.Option("--accept-license", help="Accept a non-commercial licence without being asked."),
]


def _accepted(entry_name: str, accept_license: bool, *, declined: str) -> bool:
    """Whether the entry's licence is accepted: by flag, needless (permissive), or at an interactive yes.
    A no at the prompt ends the command here: ``licence not accepted; <declined>``, exit code 1; so does
    the end of input (Ctrl-D), and Ctrl-C, with exit code 130."""
    with library_errors():
        entry = next((e for e in weights.list_weights() if e.name == entry_name), None)
    if accept_license or entry is None or not entry.noncommercial:
        return accept_license
    if not sys.stdin.isatty():
        return False  # no one to ask: the library refuses with the one-line way out
    err.print(escape(weights.license_notice(entry)), soft_wrap=True, highlight=False)  # one line, uncoloured
    _ask("This licence forbids commercial use. Accept it?", declined=f"licence not accepted; {declined}")
    return True


def _ask(question: str, *, declined: str) -> None:
    """Ask a yes/no question on the terminal (no is the default). A no ends the command here with the line
    ``declined`` and exit code 1; so does the end of input (Ctrl-D), and Ctrl-C, with exit code 130."""
    code = Exit.SOME_FAILED
    try:
        yes = typer.confirm(question, default=False, err=True)
    except typer.Abort as abort:  # Click turns Ctrl-D and Ctrl-C at a prompt into Abort ("Aborted!")
        err.print()  # the prompt's line is left open
        yes, code = False, Exit.INTERRUPTED if isinstance(abort.__context__, KeyboardInterrupt) else code
    if not yes:
        err.print(declined, highlight=False)
        raise typer.Exit(int(code))


@app.command("add", short_help="Register a checkpoint of your own.")
def add_command(
    files: Annotated[
        list[Path],
        typer.Argument(
            metavar="FILES",
            help="An aesthete checkpoint (.safetensors); with --like, the publisher's file(s) "
            "(for laion-aesthetic-v2: the head .pth and, unless pulled, ViT-L-14.pt).",
        ),
    ],
    name: Annotated[
        str, typer.Option("--name", "-n", metavar="NAME", help="The name to use it by: `score --weights NAME`.")
    ],
    like: Annotated[
        str | None,
        typer.Option(
            "--like",
            metavar="NAME",
            help="Convert a publisher-format file the way this listed checkpoint is converted.",
        ),
    ] = None,
    other_weights: Annotated[
        bool,
        typer.Option("--other-weights", help="With --like: accept a file that is not the published one (same format)."),
    ] = False,
    accept_license: AcceptLicense = False,
    as_json: JsonOption = False,
) -> None:
    """Register a local checkpoint in your registry; it is copied into the cache, so the original can go."""
    accepted = like is not None and _accepted(like, accept_license, declined="nothing was converted")
    try:
        with library_errors():
            if like is None:
                if len(files) != 1:
                    raise weights.WeightsError("give one checkpoint file (several files only with --like)")
                entry = weights.add(files[0], name=name)
            else:
                entry = weights.add_like(
                    list(files), name=name, like=like, accept_license=accepted, other_weights=other_weights
                )
    except KeyboardInterrupt:  # the library has put back what it had written (see weights._install)
        err.print(
            f"interrupted: {escape(name)} was not added (no copy kept in the cache, the registry unchanged)",
            highlight=False,
            soft_wrap=True,  # one line, however narrow the terminal
        )
        raise typer.Exit(int(Exit.INTERRUPTED)) from None
    if as_json:
        print_json(entry.to_dict())
    else:
        out.print(f"added {escape(entry.name)}: {entry.arch}, sha256 {(entry.sha256 or '')[:16]}, at {entry.path}")


@app.command("pull", short_help="Download registered weights, checking their hash.")
def pull_command(
    name: Annotated[str, typer.Argument(metavar="NAME", help="A name from `aesthete weights list`.")],
    accept_license: AcceptLicense = False,
) -> None:
    """Download registered weights into the cache, checking their sha256; prints the file's path.

    A publisher's file (pyiqa, LAION) is converted into an aesthete checkpoint on this machine. A
    non-commercial licence is shown and must be accepted (--accept-license, or yes when asked); refusing
    downloads nothing. An interrupted download (a cut, Ctrl-C) resumes where it stopped when run again.
    While one pull of NAME runs, another is refused.
    """
    accepted = _accepted(name, accept_license, declined="nothing was downloaded")
    try:
        with library_errors(), _progress(name) as progress:
            path = weights.pull(name, progress=progress, accept_license=accepted)
    except KeyboardInterrupt:
        err.print(
            f"interrupted: {escape(name)} is not installed; run `aesthete weights pull {escape(name)}` again "
            "(a partial download is resumed)",
            highlight=False,
            soft_wrap=True,  # one line, however narrow the terminal
        )
        raise typer.Exit(int(Exit.INTERRUPTED)) from None
    out.print(str(path), highlight=False, markup=False)


@contextmanager
def _progress(name: str) -> Iterator[Callable[[int, int | None], None]]:
    """A byte-level progress bar on stderr (stdout carries only the result), shown once bytes flow."""
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=err,
        disable=not err.is_terminal,  # a log gets the result line, not a bar's leftovers (an empty line)
    )
    tasks: list[TaskID] = []

    def update(done: int, total: int | None) -> None:
        if not tasks:
            progress.start()
            tasks.append(progress.add_task(escape(name), total=total))
        progress.update(tasks[0], completed=done, total=total)

    try:
        yield update
    finally:
        progress.stop()


@app.command("verify", short_help="Rehash downloaded and added weights.")
def verify_command(
    name: Annotated[
        str | None, typer.Argument(metavar="NAME", help="One name; default: every downloaded or added file.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Rehash downloaded and added weights; exit code 1 if any file is missing or changed."""
    with library_errors():
        results = weights.verify(name)
    if as_json:
        print_json({"verified": [{"name": entry, "ok": ok, "reason": reason} for entry, ok, reason in results]})
    elif not results:
        err.print("nothing to verify: no weights are downloaded or added")
    else:
        for entry, ok, reason in results:
            status = "[green]ok[/]    " if ok else "[red]FAILED[/]"
            out.print(f"{status} {escape(entry)}: {escape(reason)}")
    if not all(ok for _, ok, _ in results):
        raise typer.Exit(int(Exit.SOME_FAILED))


@app.command("remove", short_help="Remove weights: a download, your own, a personal head.")
def remove_command(
    name: Annotated[
        str, typer.Argument(metavar="NAME", help="A name from `aesthete weights list` (a personal head too).")
    ],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Delete your own weights or a head without asking.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Remove weights by name and free the disk they take.

    A published checkpoint (weights.toml): its downloaded file (and any partial download) is deleted;
    it stays listed, and `aesthete weights pull NAME` gets it again. Weights you added (`weights add`):
    unregistered, and the copy aesthete made in its cache deleted; the file you added from is never
    touched. A personal head (`aesthete learn`): its file is deleted.

    Scores made with the weights stay in the database: the same file pulled or added again finds them
    without scoring again. Deleting weights you added or a personal head cannot be undone (aesthete's
    copy may be the only one): it is asked for first, or needs --yes where there is no terminal.
    """
    if not yes:
        with library_errors():
            _confirm_removal(weights.remove(name, dry_run=True))
    with library_errors():
        removal = weights.remove(name)
    if as_json:
        print_json(removal.to_dict())
    elif removal.kind == "download" and not removal.deleted:
        err.print(f"nothing to remove: {escape(name)} is not downloaded", highlight=False, soft_wrap=True)
    else:
        what = {"download": "download", "registered": "unregistered", "personal": "personal head"}[removal.kind]
        out.print(f"removed {escape(name)} ({what}): {weights.human_size(removal.freed)} freed", highlight=False)
        for path in removal.deleted:
            out.print(f"deleted {path}", soft_wrap=True, highlight=False, markup=False)
        if removal.kept:
            out.print(f"kept {removal.kept} (not a copy aesthete made)", soft_wrap=True, highlight=False, markup=False)
        if removal.kind == "download":
            out.print(f"`aesthete weights pull {escape(name)}` gets it again", highlight=False)
    for head in removal.heads:
        err.print(
            f"note: personal head {escape(head)} was learned on {escape(name)}: "
            f"`score --weights {escape(head)}` needs {escape(name)} back",
            highlight=False,
            soft_wrap=True,
        )


def _confirm_removal(plan: weights.Removal) -> None:
    """Ask before deleting what cannot be pulled again: a copy of weights the user added (``add`` says the
    original may go) or a personal head. Without a terminal, that needs --yes (one line, exit code 2)."""
    if plan.kind == "download" or not plan.deleted:
        return  # a download comes back with `weights pull`; nothing else is deleted
    what = "a personal head" if plan.kind == "personal" else "aesthete's copy of weights you added"
    files = ", ".join(plan.deleted)
    if not sys.stdin.isatty():
        fail(f"removing {escape(plan.name)} deletes {escape(files)} ({what}), which cannot be undone: "
             "confirm with --yes")  # fmt: skip
    err.print(
        f"This deletes {escape(files)} ({what}, {weights.human_size(plan.freed)}); it cannot be undone.",
        highlight=False,
        soft_wrap=True,
    )
    _ask(f"Remove {plan.name}?", declined="nothing was removed")
