"""The ``aesthete`` command. Thin: each command parses options and calls the library.

Nothing here imports torch at module level, so ``--help``, ``rank``, ``show`` and a rescan with
nothing new start instantly.
"""

from __future__ import annotations

import os
import sys

import typer

from aesthete.cli import browse, cull, learn, models, score, train, weights
from aesthete.cli.common import Exit

app = typer.Typer(
    name="aesthete",
    help="Score, rank and cull photos with deep image-aesthetics models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command("score")(score.score_command)
app.command("rank")(browse.rank_command)
app.command("show")(browse.show_command)
app.command("cull")(cull.cull_command)
app.command("groups")(cull.groups_command)
app.command("report")(cull.report_command)
app.command("learn")(learn.learn_command)
app.command("failures")(browse.failures_command)
app.command("models")(models.models_command)
app.add_typer(weights.app, name="weights")
train.register(app)  # train, eval


def main() -> None:
    try:
        app()
    except SystemExit as exc:
        if exc.code == Exit.INTERRUPTED:
            # Everything is saved and closed by now; the interpreter's teardown of torch would hold the
            # terminal for another second or more after Ctrl-C, so leave at once.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(Exit.INTERRUPTED)
        raise
