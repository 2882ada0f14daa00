"""The ``aesthete`` command. Thin: each command parses options and calls the library.

Nothing here imports torch at module level, so ``--help``, ``rank``, ``show`` and a rescan with
nothing new start instantly.
"""

from __future__ import annotations

import typer

from aesthete.cli import browse, cull, models, score, train, weights

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
app.command("failures")(browse.failures_command)
app.command("models")(models.models_command)
app.add_typer(weights.app, name="weights")
train.register(app)  # train, eval


def main() -> None:
    app()
