"""``aesthete --help`` start-up, beside a bare interpreter's."""

from __future__ import annotations

import sys
from typing import Any

from bench.common import aesthete_cmd, spread, timed


def startup(env: dict[str, str], runs: int) -> dict[str, Any]:
    timed(aesthete_cmd("--help"), env)  # warm-up: the OS file cache
    help_walls = [timed(aesthete_cmd("--help"), env)[0] for _ in range(runs)]
    bare = [timed([sys.executable, "-c", "pass"], env)[0] for _ in range(runs)]
    return {"help_s": spread(help_walls), "python_s": spread(bare)}
