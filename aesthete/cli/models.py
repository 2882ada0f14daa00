"""``aesthete models``: every architecture with its size, input policy and weights."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Column, Table

from aesthete.cli.common import JsonOption, library_errors, out, print_json, print_notes


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
    table = Table("params", "backbone", "bins", "input")
    # The names are what `score --model` and `--weights` take: never wrapped or shortened, whatever the
    # terminal's width.
    name_width = max(len(row["name"]) for row in rows)
    table.columns.insert(0, Column("model", no_wrap=True, min_width=name_width))
    weights_width = max([len("none")] + [len(", ".join(row["weights"])) for row in rows])
    table.columns.append(Column("weights", no_wrap=True, min_width=weights_width))
    for row in rows:
        params = f"{row['parameters'] / 1e6:.1f}M" if row["parameters"] else "-"
        others = [f"{v} {n / 1e6:.1f}M" for v, n in row["variants"].items() if v != row["variant"]]
        if others:  # the default variant's count first, the others after it
            params += f" ({row['variant']}; {', '.join(others)})"
        weights = ", ".join(row["weights"]) or "[yellow]none[/]"
        table.add_row(row["name"], params, row["backbone"] or "-", str(row["bins"]), row["input"], weights)
    out.print(table)
    if any(not row["weights"] for row in rows):
        to_pull = f"`aesthete weights pull NAME` gets {', '.join(pullable)}; " if pullable else ""
        print_notes([f"weights none: {to_pull}`aesthete weights add FILE` registers a checkpoint; "
                     "`aesthete train MODEL` trains one"])  # fmt: skip
