"""The ``aesthete`` command. Thin: each command parses options and calls the library.

Nothing here imports torch at module level, so ``--help``, ``rank``, ``show`` and a rescan with
nothing new start instantly.
"""

from __future__ import annotations

import errno
import os
import signal
import sys
import threading
from typing import TYPE_CHECKING, Annotated, Any, NoReturn


def _interrupted_while_loading(signum: int, frame: object) -> None:
    os.write(2, b"interrupted: stopped before the end\n")
    os._exit(130)


# Ctrl-C in the second the commands take to import ends as it does once they run (one line, exit 130),
# not in a KeyboardInterrupt traceback from whichever import it lands in (field test). Python's handler
# is put back once they are loaded, below. Only Python's own: an ignored SIGINT (a background job) stays so.
if (
    threading.current_thread() is threading.main_thread()
    and signal.getsignal(signal.SIGINT) is signal.default_int_handler
):
    signal.signal(signal.SIGINT, _interrupted_while_loading)

import typer  # noqa: E402
from typer.core import TyperArgument, TyperGroup  # noqa: E402

from aesthete.cli import browse, cull, learn, models, score, train, weights  # noqa: E402
from aesthete.cli.common import Exit, err  # noqa: E402

if TYPE_CHECKING:
    import click


def _epilog() -> str:
    """Where the scores live, so nobody has to guess which file `--db` would replace."""
    from aesthete.paths import default_db_path

    return f"Database: {default_db_path(create=False)} (change it with --db or AESTHETE_DB)."


def _no_type(ctx: object) -> None:
    return None


_UNBROKEN_HYPHEN = "\u2011"  # a hyphen that Python's textwrap, which Click wraps help with, never breaks at


class _Formatter(TyperGroup.context_class.formatter_class):  # Click's, or the one Typer ships
    """Help wrapped at spaces only: Click's wrapping broke lines at hyphens, so at 80 columns `cull --help`
    ended a line in "[default: no-" and the flag's name went on below (textwrap's break_on_hyphens)."""

    def write_text(self, text: str) -> None:
        start = len(self.buffer)
        super().write_text(text.replace("-", _UNBROKEN_HYPHEN))
        self._plain_hyphens(start)

    def write_dl(self, rows: Any, col_max: int = 30, col_spacing: int = 2) -> None:
        start = len(self.buffer)
        super().write_dl([(term, text.replace("-", _UNBROKEN_HYPHEN)) for term, text in rows], col_max, col_spacing)
        self._plain_hyphens(start)

    def _plain_hyphens(self, start: int) -> None:
        """What was written from ``start`` on, with the hyphens the user copies (plain ones) back in place."""
        self.buffer[start:] = [part.replace(_UNBROKEN_HYPHEN, "-") for part in self.buffer[start:]]


class _Context(TyperGroup.context_class):
    formatter_class = _Formatter


class _Group(TyperGroup):
    """aesthete's command group: Typer 0.2x writes an argument's Python type after its metavar (`PATHS
    <list[Path]>`); the metavar (PATHS, PHOTO, NAME) already says what to give, as Click's own help does.
    (Options name theirs with ``metavar``.) Hidden on this app's arguments only, not on every Typer app
    of the process."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        groups: list[click.Command] = [self]
        while groups:
            command = groups.pop()
            groups += getattr(command, "commands", {}).values()
            command.context_class = _Context
            for param in command.params:
                if isinstance(param, TyperArgument):
                    param.display_type_rich = _no_type  # type: ignore[method-assign]


# Click's plain help (rich_markup_mode=None) reflows docstring paragraphs to the terminal's width and
# never cuts a flag's name; Rich's panels truncated them at 80 columns and showed `<bool>` on flags.
app = typer.Typer(
    name="aesthete",
    help="Score, rank and cull photos with deep image-aesthetics models.",
    epilog=_epilog(),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
    cls=_Group,
)


def package_version() -> str:
    """The installed distribution's version (a source checkout run without installing has none)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("aesthete-photo")
    except PackageNotFoundError:
        return "unknown (not installed)"


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"aesthete {package_version()}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_show_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Score, rank and cull photos with deep image-aesthetics models."""


# Each short_help is what `aesthete --help` lists: Click would cut a longer first sentence with "...".
app.command("score", short_help="Score new or changed photos and cache the results.")(score.score_command)
app.command("rank", short_help="List cached photos, best first, with filters.")(browse.rank_command)
app.command("show", short_help="One photo's scores, EXIF line and signals.")(browse.show_command)
app.command("cull", short_help="Pick the best photos; export, rate or move them.")(cull.cull_command)
app.command("groups", short_help="Bursts and near-duplicates, best frame first.")(cull.groups_command)
app.command("report", short_help="An HTML contact sheet, in score order.")(cull.report_command)
app.command("learn", short_help="Learn your taste from your ratings.")(learn.learn_command)
app.command("failures", short_help="Files that could not be read, and why.")(browse.failures_command)
app.command("models", short_help="The models that score photos, and their weights.")(models.models_command)
app.add_typer(weights.app, name="weights", short_help="List, download, register and remove weights.")
train.register(app)  # train, eval
if signal.getsignal(signal.SIGINT) is _interrupted_while_loading:  # loaded: Ctrl-C is Python's again
    signal.signal(signal.SIGINT, signal.default_int_handler)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:  # Ctrl-C while Typer builds the commands, before Click's handling (field test)
        err.print("[yellow]interrupted:[/] stopped before the end", highlight=False)
        _leave_interrupted()
    except SystemExit as exc:
        if exc.code == Exit.INTERRUPTED:
            if _unhandled_interrupt(exc):  # `score` and `train` say what they keep; the others said nothing
                err.print("[yellow]interrupted:[/] stopped before the end", highlight=False)
            _leave_interrupted()
        if _reader_went_away(exc):
            # `aesthete rank | head -1`: Click and Rich stop quietly on a broken pipe, with status 1, which
            # is also "some photos could not be read". Exit as `git log | head` does in a shell.
            os.dup2(os.open(os.devnull, os.O_WRONLY), 1)  # what is still buffered for it goes nowhere, silently
            raise SystemExit(Exit.BROKEN_PIPE) from None
        raise


def _leave_interrupted() -> NoReturn:
    """Exit 130 at once: everything is saved and closed by now; the interpreter's teardown of torch would
    hold the terminal for another second or more after Ctrl-C."""
    sys.stdout.flush()
    sys.stderr.flush()
    _stop_children()
    os._exit(Exit.INTERRUPTED)


def _unhandled_interrupt(stop: SystemExit) -> bool:
    """Whether ``stop`` is Typer's own ending of a command that let Ctrl-C's KeyboardInterrupt through
    (``raise Exit(130) from`` it), not a command's ``Exit(130)`` after it said what it kept."""
    return isinstance(stop.__context__, Exception) and isinstance(stop.__context__.__cause__, KeyboardInterrupt)


def _reader_went_away(stop: SystemExit) -> bool:
    """Whether ``stop`` ends the command because its output's reader closed the pipe (Click's and
    Rich's handlers raise it while they handle the write's EPIPE)."""
    handled = stop.__context__
    return isinstance(handled, OSError) and handled.errno == errno.EPIPE


def _stop_children() -> None:
    """Stop the child processes still running, as the interpreter's exit would have (``os._exit`` skips
    it): a training DataLoader's workers, when the Ctrl-C reached this process alone, otherwise notice
    their parent is gone only at their next check, up to 5 s later."""
    import multiprocessing

    children = multiprocessing.active_children()
    for child in children:
        child.terminate()
    for child in children:
        child.join(timeout=1)
