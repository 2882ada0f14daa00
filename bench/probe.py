"""The CLI in a fresh interpreter that reports what it imported and its peak memory (rescans, memory runs)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.common import score_json

# Runs the CLI in a fresh interpreter and reports what it imported and its memory. The workers' peaks
# are sampled from /proc (every 50 ms): RUSAGE_CHILDREN cannot tell them, since any child this big
# process forks to run a small program (torch's import does) keeps the parent's size as its peak.
_PROBE = """
import json, os, resource, runpy, sys, threading, time
peaks = {"workers_kib": 0, "tree_kib": 0}
def status(pid):
    with open(f"/proc/{pid}/status") as f:
        return {k: int(v.split()[0]) for k, v in (l.split(":", 1) for l in f) if k in ("VmRSS", "VmHWM")}
def sample():
    me = os.getpid()
    while True:
        try:
            kids = [int(p) for t in os.listdir(f"/proc/{me}/task")
                    for p in open(f"/proc/{me}/task/{t}/children").read().split()]
            tree = status(me)["VmRSS"]
            for kid in kids:
                st = status(kid)
                tree += st["VmRSS"]
                peaks["workers_kib"] = max(peaks["workers_kib"], st["VmHWM"])
            peaks["tree_kib"] = max(peaks["tree_kib"], tree)
        except (OSError, KeyError, ValueError):
            pass
        time.sleep(0.05)
threading.Thread(target=sample, daemon=True).start()
sys.argv = ["aesthete", *sys.argv[2:]]
try:
    runpy.run_module("aesthete", run_name="__main__")
except SystemExit:
    pass
finally:
    with open(os.environ["BENCH_PROBE"], "w") as out:
        json.dump({"torch_imported": "torch" in sys.modules,
                   "pil_jpeg_loaded": "PIL.JpegImagePlugin" in sys.modules,
                   "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, **peaks}, out)
"""


def probed(args: Sequence[str], env: dict[str, str], work: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run ``aesthete ARGS`` in a fresh interpreter that reports what it imported and its peak RSS (its
    own, its largest decode worker's, and that of the whole process tree, sampled)."""
    probe = work / "probe.json"
    done = subprocess.run([sys.executable, "-c", _PROBE, "-", *args], env=dict(env, BENCH_PROBE=str(probe)),
                          capture_output=True, text=True, check=False)  # fmt: skip
    return score_json(done), json.loads(probe.read_text())
