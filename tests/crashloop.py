"""kill -9 ``aesthete score`` at random moments, again and again, then let it finish; check the database
after every kill. By hand (it takes minutes)::

    python tests/crashloop.py --kills 20 [--photos 200] [--seed 0]

Each kill lands anywhere: a quarter during start-up, discovery or model loading, the rest at a random
moment after the run's first commit (decoding, a batch, a commit). After
each one: ``PRAGMA integrity_check`` is ok, no table has a duplicate key, and no saved score is lost. The
last run must score exactly the photos no earlier run saved (nothing is scored twice) and exit 0.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import imagegen as g

ROOT = Path(__file__).resolve().parents[1]


def check(db: Path) -> int:
    """Integrity and uniqueness; returns the number of saved scores."""
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok", "integrity_check failed"
        for table, key in [("files", "path"), ("scores", "content_hash, model, weights_id, preprocess")]:
            total = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            distinct = conn.execute(f"SELECT count(*) FROM (SELECT DISTINCT {key} FROM {table})").fetchone()[0]
            assert total == distinct, f"duplicate rows in {table}"
        return conn.execute("SELECT count(*) FROM scores").fetchone()[0]


def _scores(db: Path) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            return conn.execute("SELECT count(*) FROM scores").fetchone()[0]
    except sqlite3.Error:
        return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--photos", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="aesthete-crashloop-"))
    folder = work / "photos"
    folder.mkdir()
    for i in range(args.photos):
        (folder / f"p{i:04}.jpg").write_bytes(g.encode(g.scene(i, (480, 320)), "JPEG", quality=85))
    import torch

    from aesthete.checkpoint import save_checkpoint
    from aesthete.models import get_model

    torch.manual_seed(0)
    weights = save_checkpoint(get_model("nima", backbone="resnet18", input_size=64), work / "nima.safetensors")
    db = work / "a.db"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "aesthete", "score", str(folder), "--weights", str(weights), "--device", "cpu",
           "--batch-size", "4", "--db", str(db), "--json"]  # fmt: skip
    saved, kills, runs = 0, 0, 0
    while kills < args.kills:
        runs += 1
        run = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)  # fmt: skip
        started = time.monotonic()
        if rng.random() < 0.25:  # during start-up, discovery or model loading
            time.sleep(rng.uniform(0.1, 3.0))
        else:  # in the thick of it: a random moment after this run's first commit
            while run.poll() is None and _scores(db) <= saved:
                time.sleep(0.01)
            time.sleep(rng.uniform(0.0, 1.5))
        delay = time.monotonic() - started
        if run.poll() is not None:
            print(f"run {runs}: finished before the kill at {delay:.1f} s; starting again from scratch")
            db.unlink()
            for suffix in ("-wal", "-shm"):
                Path(f"{db}{suffix}").unlink(missing_ok=True)
            saved = 0
            continue
        os.killpg(run.pid, signal.SIGKILL)
        run.wait()
        kills += 1
        now = check(db) if db.exists() else 0
        assert now >= saved, f"kill {kills}: scores went from {saved} to {now}"
        print(f"kill {kills} at {delay:.1f} s: integrity ok, no duplicates, {now} of {args.photos} scores saved")
        saved = now
    last = subprocess.run(cmd, env=env, capture_output=True, text=True)
    summary = json.loads(last.stdout)
    final = check(db)
    print(f"last run: exit {last.returncode}, scored {summary['scored']}, cached {summary['cached']}; {final} scores")
    ok = last.returncode == 0 and summary["scored"] == args.photos - saved and final == args.photos
    print(f"{kills} kills survived" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
