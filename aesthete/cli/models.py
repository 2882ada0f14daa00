"""``aesthete models``: every architecture with its size, input policy and weights."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from aesthete.cli.common import (
    Cells,
    JsonOption,
    fitted_table,
    library_errors,
    out,
    print_json,
    print_notes,
    print_unpadded,
)


@library_errors()
def models_command(
    as_json: JsonOption = False,
    count: Annotated[bool, typer.Option("--count/--no-count", help="Show parameter counts.")] = True,
) -> None:
    """List the models that score photos, with parameter counts, input policy and available weights."""
    from aesthete.model_info import model_rows
    from aesthete.weights import list_weights

    available: dict[str, list[str]] = {}
    pullable: list[str] = []  # "NAME (model)": registered with a download address, not here yet
    for entry in list_weights():
        if entry.kind == "aesthetic":
            if entry.available:
                available.setdefault(entry.arch, []).append(entry.name)
            elif entry.url:
                pullable.append(f"{entry.name} ({entry.arch})")
    rows = [{**row, "weights": available.get(row["name"], [])} for row in model_rows()]
    if not count:
        rows = [{**row, "parameters": None, "variants": {}} for row in rows]
    if as_json:
        print_json({"models": rows})
        return
    # Fitted to the terminal: the model names, as `score --model` takes them, are never cut. A model's
    # weights wrap after their commas (the column is as wide as the longest name and its comma, where the
    # terminal has room for that), so a long list takes lines, not the room of the other columns. Where even
    # a word a line does not fit (40 columns), parameter counts, backbone and bins go, in that order.
    longest = max(len(name) for row in rows for name in row["weights"] or ["none"])
    columns = [Cells("model", [row["name"] for row in rows])]
    if count:
        columns.append(Cells("params", [_parameters(row) for row in rows], drop=1, wrap=True))
    columns += [
        Cells("backbone", [row["backbone"] or "-" for row in rows], drop=2),
        Cells("bins", [str(row["bins"]) if row["bins"] else "one score" for row in rows], drop=3, wrap=True),
        Cells("input", [row["input"] for row in rows], wrap=True),
        Cells("weights", [", ".join(row["weights"]) or "none" for row in rows], wrap=True, min_width=longest + 1),
    ]
    print_unpadded(out, fitted_table(columns))
    if any(not row["weights"] for row in rows):
        to_pull = f"`aesthete weights pull NAME` gets {', '.join(pullable)}; " if pullable else ""
        print_notes([f"weights none: {to_pull}`aesthete weights add FILE` registers a checkpoint; "
                     "`aesthete train MODEL` trains one"])  # fmt: skip


def _parameters(row: dict[str, Any]) -> str:
    """The default variant's parameter count first, the other variants' after it."""
    text = f"{row['parameters'] / 1e6:.1f}M"
    others = [f"{v} {n / 1e6:.1f}M" for v, n in row["variants"].items() if v != row["variant"]]
    return f"{text} ({row['variant']}; {', '.join(others)})" if others else text
