"""Fuzzing: mutated JPEG, PNG and TIFF files are decoded or recorded as failed, never a crash or a hang.

A few hundred cases here (``AESTHETE_FUZZ_CASES`` for more); thousands by hand with ``python tests/fuzz.py
--cases N``."""

from __future__ import annotations

import os
from pathlib import Path

import fuzz

from aesthete.scoring import score
from aesthete.store import Store

CASES = int(os.environ.get("AESTHETE_FUZZ_CASES", "600"))


def test_mutants_through_the_worker_decode_or_fail_with_a_reason() -> None:
    outcomes = fuzz.run_cases(CASES, seed=0)
    assert sum(outcomes.values()) == CASES
    # The mutations reach both sides: many mutants still decode, many fail in several distinct ways.
    assert outcomes["ok"] > CASES // 5 and len(outcomes) >= 4


def test_mutants_through_score_are_each_scored_or_recorded(tmp_path: Path) -> None:
    folder = tmp_path / "mutants"
    folder.mkdir()
    for name, data in fuzz.mutants(60, seed=1):
        (folder / name).write_bytes(data)
    store = Store(tmp_path / "a.db")
    summary = score([str(folder)], store=store, workers=2)
    assert summary.found == 60 and summary.analysed + summary.cached + len(summary.failed) == 60
    assert summary.analysed > 0 and summary.failed
    recorded = {Path(row["path"]).name for row in store.failures()}
    assert recorded == {Path(f.path).name for f in summary.failed}
    assert all(f.reason and "\n" not in f.reason for f in summary.failed)
