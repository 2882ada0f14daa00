"""Nothing lost, nothing broken: the hostile corpus, hung and crashing decoders, Ctrl-C and kill -9 in the
middle of a run, and several ``score`` processes on one database, all through real processes."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import corpus
import imagegen as g
import pytest

from aesthete import pixel_slots, scoring
from aesthete.fingerprint import content_hash
from aesthete.scoring import score
from aesthete.select import cull, rank
from aesthete.store import Store

ROOT = Path(__file__).resolve().parents[1]
LISTED = {"zero bytes", "a JPEG cut in half", "random bytes named .jpg", "a PNG named .jpg", "a JPEG named .png",
          "a CMYK JPEG", "a YCCK JPEG", "a 16-bit RGB PNG", "a 16-bit grey TIFF", "a grayscale JPEG",
          "a palette PNG with transparency", "an RGBA PNG", "an animated WebP", "a 1 x 1 image", "a 20000 x 10 strip",
          "garbage in the EXIF block", "EXIF orientation 9 (outside 1..8)", "an invalid ICC profile", "a symlink loop",
          "a dangling symlink", "a folder named x.jpg", "a file name that is not valid UTF-8"}  # fmt: skip


def aesthete(*args: object) -> list[str]:
    """The command line of this checkout's aesthete (not the installed console script)."""
    return [sys.executable, "-m", "aesthete", *map(str, args)]


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def originals(folder: Path) -> dict[str, tuple[bytes, int]]:
    """(bytes, mtime) of every regular file under ``folder``, symlinks not followed."""
    out = {}
    for dirpath, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(dirpath, name)
            info = os.lstat(path)
            if stat.S_ISREG(info.st_mode):
                with open(path, "rb") as handle:
                    out[path] = (handle.read(), info.st_mtime_ns)
    return out


def write_photos(folder: Path, count: int, start: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(start, start + count):
        (folder / f"p{i:03}.jpg").write_bytes(g.encode(g.scene(i, (96, 64)), "JPEG", quality=85))
    return folder


def count(db: Path, sql: str = "SELECT count(*) FROM scores") -> int:
    """Read a live database without taking part in its writes (0 until it exists)."""
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10) as conn:
            return conn.execute(sql).fetchone()[0]
    except sqlite3.Error:
        return 0


def check_database(db: Path) -> None:
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        for table, key in [("files", "path"), ("images", "content_hash"),
                           ("scores", "content_hash, model, weights_id, preprocess")]:  # fmt: skip
            total = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            distinct = conn.execute(f"SELECT count(*) FROM (SELECT DISTINCT {key} FROM {table})").fetchone()[0]
            assert total == distinct, f"duplicate rows in {table}"


# ------------------------------------------------------------------------------------------ the corpus


def test_corpus_holds_every_listed_kind(tmp_path: Path) -> None:
    kinds = corpus.kinds()
    assert len(kinds) >= 25 and {k.name for k in kinds} >= LISTED
    assert {k.outcome.split(":")[0] for k in kinds} == {"scored", "failed", "skipped", "ignored"}
    expected = corpus.write_corpus(tmp_path / "c")
    assert all(os.path.lexists(tmp_path / "c" / rel) for rel in expected)


def outcomes(summary: scoring.ScoreSummary, store: Store, folder: Path) -> dict[str, str]:
    """relative path -> what the run did with it, in the corpus's vocabulary."""
    seen = {os.path.relpath(row["real_path"], folder): "scored" for row in store.photos(None)}
    seen |= {os.path.relpath(f.path, folder): f"failed:{f.kind}" for f in summary.failed}
    seen |= {os.path.relpath(f.path, folder): "skipped" for f in summary.discovery_errors}
    return seen


def test_every_corpus_file_is_scored_or_recorded_and_nothing_is_touched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Signals only, in-process, with the files that vanish or change between discovery and decoding."""
    folder = tmp_path / "card"
    expected = corpus.write_corpus(folder)
    real_discover = scoring.discover

    def discover_then_race(*args: object, **kwargs: object) -> list:
        found = list(real_discover(*args, **kwargs))
        corpus.race(folder)
        monkeypatch.setattr(scoring, "discover", real_discover)  # once
        return found

    monkeypatch.setattr(scoring, "discover", discover_then_race)
    store = Store(tmp_path / "a.db")
    summary = score([str(folder)], store=store, workers=2)
    got = outcomes(summary, store, folder)
    want = {rel: outcome for rel, outcome in expected.items() if outcome != "ignored"}
    assert got == want
    assert summary.found == sum(o.startswith(("scored", "failed")) for o in want.values())
    assert all(f.reason and "\n" not in f.reason and len(f.reason) < 250 for f in summary.failed)
    # What was read is what is recorded: the rewritten file's row describes its new content.
    changed = store.photo_by_path(str(folder / corpus.CHANGES))
    assert changed["content_hash"] == content_hash((folder / corpus.CHANGES).read_bytes())
    # A second run opens nothing: every photo is cached, every failure remembered.
    before = originals(folder)
    again = score([str(folder)], store=store, workers=2)
    assert again.analysed == 0 and again.cached == summary.analysed
    assert outcomes(again, store, folder) == {rel: o for rel, o in got.items() if rel != corpus.VANISHES}
    assert originals(folder) == before


@pytest.mark.slow
def test_cli_on_the_corpus_with_a_model(tmp_path: Path, tiny_checkpoints: dict[str, Path]) -> None:
    folder = tmp_path / "card"
    expected = corpus.write_corpus(folder)
    expected[corpus.VANISHES] = "scored"  # no race here: it stays a good photo
    before = originals(folder)
    db = tmp_path / "a.db"
    run = subprocess.run(aesthete("score", folder, "--weights", tiny_checkpoints["nima"], "--device", "cpu",
                                  "--workers", 2, "--db", db, "--json"),
                         env=env(), capture_output=True, text=True, timeout=300)  # fmt: skip
    assert run.returncode == 1, run.stderr  # some failed, the rest scored
    assert "Traceback" not in run.stderr and "Traceback" not in run.stdout
    summary = json.loads(run.stdout)
    failed = {os.path.relpath(f["path"], folder): f"failed:{f['kind']}" for f in summary["failed"]}
    assert failed == {rel: o for rel, o in expected.items() if o.startswith("failed")}
    assert summary["scored"] == sum(o == "scored" for o in expected.values())
    listed = subprocess.run(aesthete("failures", "--db", db, "--json"), env=env(), capture_output=True, text=True)
    rows = json.loads(listed.stdout)["failures"]
    assert {(r["path"], r["kind"], r["reason"]) for r in rows} == {
        (f["path"], f["kind"], f["reason"]) for f in summary["failed"]
    }
    assert all(r["reason"] and "\n" not in r["reason"] for r in rows)
    ranked = subprocess.run(aesthete("rank", "--db", db, "--json"), env=env(), capture_output=True, text=True)
    assert len(json.loads(ranked.stdout)["photos"]) == summary["scored"]
    assert originals(folder) == before


# ------------------------------------------------------------------------------ hung and dying decoders

# Runs the CLI with a decoder that hangs on files ending in HANG and kills its own process on CRASH.
INJECT = """
import os, signal, sys, time
import aesthete.pipeline, aesthete.decode_worker
real = aesthete.decode_worker.decode
delay = float(os.environ.get("TEST_DECODE_DELAY", "0"))
def decode(data, **kwargs):
    time.sleep(delay)
    if data.endswith(b"HANG"):
        time.sleep(3600)
    if data.endswith(b"CRASH"):
        os.kill(os.getpid(), signal.SIGKILL)
    decoded = real(data, **kwargs)
    if data.endswith(b"NOPICKLE"):  # a result the worker cannot send back
        decoded.notes = [*decoded.notes, lambda: None]
    return decoded
aesthete.decode_worker.decode = decode
aesthete.pipeline.FILE_TIMEOUT_S = float(os.environ.get("TEST_FILE_TIMEOUT", "1"))
from aesthete.cli import main
sys.argv[0] = "aesthete"
main()
"""


def test_a_hung_or_crashing_decoder_costs_one_file_not_the_run(tmp_path: Path) -> None:
    folder = write_photos(tmp_path / "p", 16)
    for name, tail in [("p003.jpg", b"HANG"), ("p009.jpg", b"CRASH"), ("p010.jpg", b"HANG")]:
        (folder / name).write_bytes((folder / name).read_bytes() + tail)
    started = time.monotonic()
    run = subprocess.run([sys.executable, "-c", INJECT, "score", str(folder), "--workers", "2", "--json",
                          "--db", str(tmp_path / "a.db")],
                         env=env(), capture_output=True, text=True, timeout=120)  # fmt: skip
    assert time.monotonic() - started < 60
    assert "Traceback" not in run.stderr, run.stderr
    summary = json.loads(run.stdout)
    assert summary["analysed"] == 13 and summary["exit_code"] == 4  # signals only: no weights
    kinds = {Path(f["path"]).name: f["kind"] for f in summary["failed"]}
    assert kinds == {"p003.jpg": "timeout", "p009.jpg": "crashed", "p010.jpg": "timeout"}
    assert count(tmp_path / "a.db", "SELECT count(*) FROM files WHERE status = 'failed'") == 3


def test_a_result_that_cannot_be_sent_back_costs_only_its_file(tmp_path: Path) -> None:
    """The workers take a few files a task: a result the pool cannot send back fails the whole task, so
    its files are sent again one at a time and only the one at fault is recorded."""
    folder = write_photos(tmp_path / "p", 16)
    (folder / "p005.jpg").write_bytes((folder / "p005.jpg").read_bytes() + b"NOPICKLE")
    run = subprocess.run([sys.executable, "-c", INJECT, "score", str(folder), "--workers", "2", "--json",
                          "--db", str(tmp_path / "a.db")],
                         env=env(), capture_output=True, text=True, timeout=120)  # fmt: skip
    assert "Traceback" not in run.stderr, run.stderr
    summary = json.loads(run.stdout)
    assert summary["analysed"] == 15
    assert [(Path(f["path"]).name, f["kind"]) for f in summary["failed"]] == [("p005.jpg", "decode-error")]


def test_a_model_run_whose_pool_is_replaced_gives_each_photo_its_own_input(
    tmp_path: Path, tiny_checkpoints: dict[str, Path]
) -> None:
    """With a model the workers hand inputs back through shared slots (aesthete.pixel_slots), and a hang or
    a crash replaces the pool and frees every slot. The first pool (forked, with the injected faults) meets
    one of them for sure; its replacement is spawned (torch is loaded by then) without them, so the other
    poisoned photo may then decode. Every photo scored must score as in a clean run (the bytes appended
    after the JPEG's end change its hash, not its pixels), and the shared block is gone after the run."""
    clean = write_photos(tmp_path / "clean", 16)
    folder = write_photos(tmp_path / "p", 16)
    for name, tail in [("p003.jpg", b"HANG"), ("p009.jpg", b"CRASH")]:
        (folder / name).write_bytes((folder / name).read_bytes() + tail)
    scores = {}
    for photos, db in [(clean, tmp_path / "clean.db"), (folder, tmp_path / "a.db")]:
        run = subprocess.Popen([sys.executable, "-c", INJECT, "score", str(photos), "--workers", "2", "--json",
                                "--db", str(db), "--weights", str(tiny_checkpoints["nima"]), "--device", "cpu",
                                "--batch-size", "4"],
                               env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
        stdout, stderr = run.communicate(timeout=120)
        assert "Traceback" not in stderr and "leaked" not in stderr, stderr
        # Its shared block is gone (only its own: another run on this machine may hold one meanwhile).
        assert not list(pixel_slots.block_folder().glob(f"aesthete-slots-{run.pid}-*"))
        with sqlite3.connect(db) as conn:
            rows = conn.execute("SELECT f.path, s.dist FROM files f JOIN scores s ON s.content_hash = f.content_hash")
            scores[photos.name] = {Path(path).name: dist for path, dist in rows}
    failed = {Path(f["path"]).name for f in json.loads(stdout)["failed"]}
    assert failed <= {"p003.jpg", "p009.jpg"} and len(scores["p"]) + len(failed) == 16
    assert len(scores["clean"]) == 16 and scores["p"] == {name: scores["clean"][name] for name in scores["p"]}


# ------------------------------------------------------------------------- Ctrl-C, kill -9, snapshots


def start(args: list[str], **extra_env: str) -> subprocess.Popen:
    # A session of its own, so a signal can go to the whole process group as a terminal's Ctrl-C does.
    return subprocess.Popen(args, env={**env(), **extra_env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)  # fmt: skip


def start_score_with_a_hang(tmp_path: Path, *, photos: int, hung: int) -> tuple[Path, Path, subprocess.Popen]:
    """``score`` on ``photos`` photos, two workers, photo ``hung`` hanging in its decode; returns once the
    run is recorded (its workers are forked by then)."""
    folder = write_photos(tmp_path / "p", photos)
    target = folder / f"p{hung:03d}.jpg"
    target.write_bytes(target.read_bytes() + b"HANG")
    db = tmp_path / "a.db"
    run = start([sys.executable, "-c", INJECT, "score", str(folder), "--workers", "2", "--db", str(db)],
                TEST_FILE_TIMEOUT="600")  # fmt: skip
    while run.poll() is None and not count(db, "SELECT count(*) FROM runs"):
        time.sleep(0.02)
    return folder, db, run


def test_ctrl_c_pressed_twice_while_a_decode_hangs_still_stops_at_once(tmp_path: Path) -> None:
    """The decodes in flight are abandoned, not waited for, and a second Ctrl-C does not break the stop."""
    folder, db, run = start_score_with_a_hang(tmp_path, photos=8, hung=2)
    time.sleep(1.5)  # the other photos are decoded by now; their results wait behind the hung one
    os.killpg(run.pid, signal.SIGINT)
    sent = time.monotonic()
    time.sleep(0.05)
    os.killpg(run.pid, signal.SIGINT)
    out, err = run.communicate(timeout=30)
    assert time.monotonic() - sent < 3, "Ctrl-C waited for a hung decode"
    assert run.returncode == 130 and "Traceback" not in err, err
    assert "signals only" in out and "interrupted" in err
    assert count(db, "SELECT count(*) FROM images") == 7  # every photo decoded before Ctrl-C is saved


def _survivors(pgid: int) -> list[int]:
    """The processes of group ``pgid`` still alive 10 s from now (at once if none is), killed so that they
    are not left behind for the next test."""
    deadline = time.monotonic() + 10
    while _live_group(pgid) and time.monotonic() < deadline:
        time.sleep(0.05)
    survivors = _live_group(pgid)
    for pid in survivors:
        os.kill(pid, signal.SIGKILL)
    return survivors


def _live_group(pgid: int) -> list[int]:
    """The live (not zombie) processes of process group ``pgid``, read from /proc."""
    alive = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # ended meanwhile
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":  # after ")": state, ppid, pgrp
            alive.append(int(entry))
    return alive


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads the process table from /proc (Linux)")
def test_kill_9_of_score_leaves_no_decode_worker_behind(tmp_path: Path) -> None:
    """kill -9 of the main process alone (not its group): its workers, one of them stuck in a decode and the
    other waiting on the pool's queue, must end too, and none may keep the database open."""
    folder, db, run = start_score_with_a_hang(tmp_path, photos=12, hung=4)
    time.sleep(1.0)  # the workers are forked and one is stuck in the hanging decode
    workers = [pid for pid in _live_group(run.pid) if pid != run.pid]
    assert run.poll() is None and len(workers) == 2, workers
    os.kill(run.pid, signal.SIGKILL)
    run.wait(timeout=30)  # not communicate(): an orphaned worker would hold the output pipes open
    survivors = _survivors(run.pid)
    assert not survivors, f"decode workers outlived score: {survivors}"


# A process that forks a child watching it with the fallback alone (no PR_SET_PDEATHSIG): macOS's case.
WATCHED = """
import os, sys, time
from aesthete import decode_worker
decode_worker._set_pdeathsig = lambda signum: False
parent = os.getpid()
if os.fork() == 0:
    decode_worker.die_with_parent(parent)
    time.sleep(120)
    os._exit(0)
print("forked", flush=True)
time.sleep(120)
"""


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads the process table from /proc (Linux)")
def test_the_parent_watch_alone_ends_an_orphaned_worker(tmp_path: Path) -> None:
    run = start([sys.executable, "-c", WATCHED])
    assert run.stdout is not None and run.stdout.readline().strip() == "forked"
    child = [pid for pid in _live_group(run.pid) if pid != run.pid]
    assert len(child) == 1
    os.kill(run.pid, signal.SIGKILL)
    run.wait(timeout=30)
    survivors = _survivors(run.pid)
    assert not survivors


@pytest.mark.slow
def test_ctrl_c_and_kill_9_lose_at_most_a_batch_and_nothing_is_scored_twice(
    tmp_path: Path, tiny_checkpoints: dict[str, Path]
) -> None:
    total = 24
    folder = write_photos(tmp_path / "p", total)
    db = tmp_path / "a.db"
    # Each decode paced at 50 ms: a tiny model on a fast machine otherwise saves several batches between two
    # looks, and the run can end before the signal is sent.
    cmd = [sys.executable, "-c", INJECT, "score", str(folder), "--weights", str(tiny_checkpoints["nima"]),
           "--device", "cpu", "--precision", "fp32", "--batch-size", "2", "--workers", "1", "--db", str(db),
           "--json"]  # fmt: skip
    paced = {"TEST_DECODE_DELAY": "0.05", "TEST_FILE_TIMEOUT": "600"}

    # 1. Ctrl-C once a few batches are in; meanwhile, every ranking sees whole batches only.
    run = start(cmd, **paced)
    seen, culled = [], False
    while run.poll() is None and (count(db) < 6 or not culled):
        if count(db) > 0:
            store = Store(db)
            ranking = rank(store)
            seen.append(len(ranking.rows))
            assert ranking.basis == "aesthetic" and not any("have no" in n for n in ranking.notes)
            if not culled:  # cull writes its groups while score writes its rows: neither may fail
                culled = len(cull(store, top=3).rows) == 3
            store.close()
        time.sleep(0.01)
    os.killpg(run.pid, signal.SIGINT)
    sent = time.monotonic()
    out, err = run.communicate(timeout=30)
    assert time.monotonic() - sent < 2, "Ctrl-C took too long"
    assert run.returncode == 130 and "Traceback" not in err, err
    first = json.loads(out)
    assert first["interrupted"] and 0 < first["scored"] < total
    assert count(db) == first["scored"]  # every photo the summary counts is saved
    assert seen == sorted(seen) and culled

    # 2. kill -9 once more batches are in.
    run = start(cmd, **paced)
    while run.poll() is None and count(db) < first["scored"] + 4:
        time.sleep(0.01)
    os.killpg(run.pid, signal.SIGKILL)
    run.communicate(timeout=30)
    check_database(db)
    saved = count(db)
    assert first["scored"] < saved < total

    # 3. The same command finishes the job, scoring only what no run saved, and removes the shared block
    # the killed run left.
    killed = run.pid
    last = subprocess.run(cmd, env=env(), capture_output=True, text=True, timeout=300)
    assert last.returncode == 0, last.stderr
    assert not list(pixel_slots.block_folder().glob(f"aesthete-slots-{killed}-*"))
    third = json.loads(last.stdout)
    assert third["scored"] == total - saved and third["cached"] == saved
    check_database(db)
    assert count(db) == total and count(db, "SELECT count(*) FROM files") == total


class _InterruptAfterBegin:
    """A connection whose ``nth`` BEGIN succeeds and then raises KeyboardInterrupt: where a real Ctrl-C
    can land, on the line after the statement (CI saw it: the run then failed with "cannot start a
    transaction within a transaction" instead of stopping with exit 130)."""

    def __init__(self, conn: sqlite3.Connection, nth: int) -> None:
        self.conn, self.nth, self.begins = conn, nth, 0

    def execute(self, sql: str, *args: object) -> sqlite3.Cursor:
        cursor = self.conn.execute(sql, *args)
        if sql.startswith("BEGIN"):
            self.begins += 1
            if self.begins == self.nth:
                raise KeyboardInterrupt
        return cursor

    def __getattr__(self, name: str) -> object:
        return getattr(self.conn, name)


@pytest.mark.parametrize(("nth", "saved"), [(1, 0), (4, 6)])
def test_ctrl_c_right_after_a_begin_leaves_no_transaction_open_and_saves_what_was_finished(
    tmp_path: Path, tiny_checkpoints: dict[str, Path], nth: int, saved: int
) -> None:
    """The BEGINs of a run of 8 photos in batches of 2: the run's row, then one per batch (the 4th is the
    third batch's). Interrupted there, the write is rolled back, then the batch is saved with the rest of
    what was finished. Through the Python API the store outlives the run: an open transaction left behind
    would hold the write lock."""
    folder, db = write_photos(tmp_path / "p", 8), tmp_path / "a.db"
    store = Store(db)
    store.conn = _InterruptAfterBegin(store.conn, nth)  # type: ignore[assignment]
    options = {"weights": str(tiny_checkpoints["nima"]), "device": "cpu", "precision": "fp32", "batch_size": 2,
               "workers": 1, "decode": "workers"}  # fmt: skip
    summary = score([str(folder)], store=store, **options)
    assert summary.interrupted and summary.scored == saved and not store.conn.in_transaction
    recorded = [("interrupted",)] if nth > 1 else []  # the first BEGIN was the run row's own
    assert store.conn.execute("SELECT status FROM runs").fetchall() == recorded
    assert count(db) == saved
    again = score([str(folder)], store=store, **options)
    assert not again.interrupted and (again.scored, again.cached) == (8 - saved, saved)
    store.close()
    check_database(db)


@pytest.mark.slow
def test_ctrl_c_while_a_write_waits_for_another_writer_stops_cleanly(
    tmp_path: Path, tiny_checkpoints: dict[str, Path]
) -> None:
    """What the CI saw: a Ctrl-C while a batch's write waits on another process's lock (``cull`` saving
    its groups). SQLite waited in one piece then, so Python raised it on the line after BEGIN, once the
    lock was free; the run ended with "cannot start a transaction within a transaction"."""
    folder = write_photos(tmp_path / "p", 24)
    db = tmp_path / "a.db"
    cmd = [sys.executable, "-c", INJECT, "score", str(folder), "--weights", str(tiny_checkpoints["nima"]),
           "--device", "cpu", "--precision", "fp32", "--batch-size", "2", "--workers", "1", "--db", str(db),
           "--json"]  # fmt: skip
    run = start(cmd, TEST_DECODE_DELAY="0.05", TEST_FILE_TIMEOUT="600")
    while run.poll() is None and count(db) < 2:
        time.sleep(0.01)
    other = sqlite3.connect(db, isolation_level=None, timeout=10)
    other.execute("BEGIN IMMEDIATE")
    saved = count(db)
    time.sleep(2)  # a batch takes ~0.1 s: score's next write is waiting on the lock by now
    os.killpg(run.pid, signal.SIGINT)
    time.sleep(0.3)
    other.execute("ROLLBACK")
    other.close()
    out, err = run.communicate(timeout=30)
    assert run.returncode == 130 and "Traceback" not in err, err
    summary = json.loads(out)
    assert summary["interrupted"] and count(db) == summary["scored"] > saved
    check_database(db)


def test_ctrl_c_in_a_terminal_prints_the_summary(tmp_path: Path) -> None:
    """Without --json: the usual table, then the interrupted notice, exit 130 (signals only, many photos)."""
    folder = write_photos(tmp_path / "p", 400)
    db = tmp_path / "a.db"
    run = start(aesthete("score", folder, "--workers", 1, "--db", db))
    while run.poll() is None and count(db, "SELECT count(*) FROM images") < 20:
        time.sleep(0.01)
    os.killpg(run.pid, signal.SIGINT)
    out, err = run.communicate(timeout=30)
    assert run.returncode == 130 and "Traceback" not in err, err
    assert "found" in out and "400" in out and "interrupted" in err


# Small on purpose, as in test_training_run.py: the point is the stop, not the scores.
TINY_TRAINING = ["model_config.backbone=resnet18", "model_config.input_size=64", "data.val_size=8",
                 "train.batch_size=11", "train.pretrained=false", "train.amp=none"]  # fmt: skip


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads the process table from /proc (Linux)")
@pytest.mark.parametrize("processes", [1, 2])
def test_ctrl_c_of_train_stops_every_rank_and_says_how_to_go_on(tmp_path: Path, processes: int) -> None:
    """Before: with --nproc 2 each rank and torchrun printed a traceback, and neither path said what was kept."""
    from aesthete.training.synthetic import generate

    data, output = generate(tmp_path / "ava", n=48, seed=1, test_fraction=0.25), tmp_path / "run"
    several = ["--nproc", 2] if processes > 1 else []
    cmd = aesthete("train", "nima", "--data-root", data, "--output", output, "--epochs", 100, *several,
                   *(f"--set={value}" for value in TINY_TRAINING))  # fmt: skip
    run = start(cmd, COLUMNS="1000")
    while run.poll() is None and not (output / "state.pt").exists():
        time.sleep(0.1)
    assert run.poll() is None, run.communicate()
    os.killpg(run.pid, signal.SIGINT)
    _, err = run.communicate(timeout=60)
    assert run.returncode == 130 and "Traceback" not in err, err
    assert f"interrupted: {output / 'state.pt'} keeps the run up to its last checkpoint" in err, err
    survivors = _survivors(run.pid)
    assert not survivors, f"training processes outlived train: {survivors}"


# A terminal's Ctrl-C as the first child process starts once TEST_READY exists, made certain: the child's
# start is slow (its TEST_START function waits until the Ctrl-C has come, held back meanwhile), then it goes
# on with the signal mask this process forked it with. Before the fix, this process's KeyboardInterrupt was raised in
# the fork callback, where Python drops it, and the child died of its own before it could ignore it.
CTRL_C_AS_A_CHILD_STARTS = """
import importlib, os, signal, sys, time
from pathlib import Path
module, name = os.environ["TEST_START"].rsplit(".", 1)
where = importlib.import_module(module)
ready = Path(os.environ["TEST_READY"])
pressed, forked_with, victim = [], [], []
def before() -> None:  # the child is to start with the Ctrl-C pending, whatever the mask it is forked with
    if ready.exists() and not pressed:
        forked_with.append(signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT}))
def in_parent() -> None:
    if ready.exists() and not pressed:
        pressed.append(True)
        signal.pthread_sigmask(signal.SIG_SETMASK, forked_with[0])
        os.killpg(0, signal.SIGINT)
def in_child() -> None:
    if ready.exists() and not pressed:
        victim.append(True)
os.register_at_fork(before=before, after_in_parent=in_parent, after_in_child=in_child)
start = getattr(where, name)
def slow_start(*args):
    if victim:
        deadline = time.monotonic() + 60
        while signal.SIGINT not in signal.sigpending() and time.monotonic() < deadline:
            time.sleep(0.01)
        signal.pthread_sigmask(signal.SIG_SETMASK, forked_with[0])
        if os.environ.get("TEST_DIES"):  # as if it had started with Ctrl-C open, whatever the fix
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    start(*args)
setattr(where, name, slow_start)
from aesthete.cli import main
sys.argv[0] = "aesthete"
main()
"""


@pytest.mark.slow  # a training run
@pytest.mark.parametrize("dies", [False, True], ids=["held-back", "worker-dies"])
def test_ctrl_c_as_a_training_loader_starts_its_workers_is_the_interrupt(tmp_path: Path, dies: bool) -> None:
    """Field test (--workers 2, Ctrl-C between epochs): "DataLoader worker (pid X) exited unexpectedly"
    (from _queue.Empty), a traceback and exit 1. The loaders now start their workers with Ctrl-C held back
    (held-back), and a worker that dies of the same Ctrl-C all the same is taken as it (worker-dies)."""
    from aesthete.training.synthetic import generate

    data, output = generate(tmp_path / "ava", n=48, seed=1, test_fraction=0.25), tmp_path / "run"
    cmd = [sys.executable, "-c", CTRL_C_AS_A_CHILD_STARTS, "train", "nima", "--data-root", data, "--output", output,
           "--epochs", 100, "--workers", 2, *(f"--set={value}" for value in TINY_TRAINING)]  # fmt: skip
    extra = {"TEST_DIES": "1"} if dies else {}
    run = start(list(map(str, cmd)), COLUMNS="1000", TEST_READY=str(output / "state.pt"),
                TEST_START="aesthete.training.data._leave_ctrl_c_to_the_main_process", **extra)  # fmt: skip
    _, err = run.communicate(timeout=120)
    assert run.returncode == 130 and "Traceback" not in err, err
    assert f"interrupted: {output / 'state.pt'} keeps the run up to its last checkpoint" in err, err
    assert err.count("interrupted") == 1, err
    assert not _survivors(run.pid)


def test_ctrl_c_as_score_starts_its_decode_workers_stops_it_quietly(tmp_path: Path) -> None:
    """Before: the worker printed "Exception in initializer" and its KeyboardInterrupt, then score a
    BrokenProcessPool traceback, exit 1."""
    folder = write_photos(tmp_path / "p", 6)
    db = tmp_path / "a.db"
    cmd = [sys.executable, "-c", CTRL_C_AS_A_CHILD_STARTS, "score", str(folder), "--workers", "2", "--db", str(db)]
    run = start(cmd, TEST_READY=str(folder), TEST_START="aesthete.pipeline.init_worker")
    _, err = run.communicate(timeout=120)
    assert run.returncode == 130 and "Traceback" not in err and "Exception" not in err, err
    assert err.count("interrupted") == 1, err
    assert not _survivors(run.pid)


# ------------------------------------------------------------------------------------------ broken pipe

READERS_THAT_LEAVE = [["rank", "--top", "100"], ["rank", "--json"], ["rank", "--paths"], ["groups"], ["failures"],
                      ["show", "p000.jpg"], ["models"], ["weights", "list"], ["--help"]]  # fmt: skip


def test_a_reader_that_goes_away_ends_each_command_quietly(tmp_path: Path) -> None:
    """`aesthete rank | head -1`: no message and 141, as `git log | head` in a shell. Before: exit 1, which
    also means "some photos could not be read"."""
    folder = write_photos(tmp_path / "p", 4)
    db = tmp_path / "a.db"
    assert subprocess.run(aesthete("score", folder, "--db", db, "--workers", 1), env=env(), capture_output=True,
                          timeout=120).returncode == 4  # fmt: skip
    for args in READERS_THAT_LEAVE:
        command = aesthete(*args)
        if args[0] in ("rank", "groups", "failures", "show"):
            command += ["--db", str(db)]
        run = subprocess.Popen(command, env=env(), cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert run.stdout is not None and run.stderr is not None
        run.stdout.close()  # before the command writes: it meets a closed pipe at its first line
        err = run.stderr.read().decode()
        assert run.wait(timeout=60) == 141, (args, run.returncode, err)
        assert "Traceback" not in err and "Exception" not in err and "Broken pipe" not in err, (args, err)


# ------------------------------------------------------------------------------------------ concurrency


@pytest.mark.parametrize("command", [["cull", "--top", "3"], ["groups"]])
def test_ctrl_c_stops_a_command_waiting_for_another_writer(tmp_path: Path, command: list[str]) -> None:
    """SQLite waits for a lock in slices: inside one long wait Python cannot raise Ctrl-C, and ``cull``
    run beside a busy writer ignored it for the whole busy timeout (a minute)."""
    db = tmp_path / "a.db"
    store = Store(db)
    score([str(write_photos(tmp_path / "p", 6))], store=store, workers=1)
    store.close()
    other = sqlite3.connect(db, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # held until the command has ended
    run = start(aesthete(*command, "--db", db))
    time.sleep(3)  # the command is waiting for the lock by now
    assert run.poll() is None, run.communicate()
    os.killpg(run.pid, signal.SIGINT)
    try:
        out, err = run.communicate(timeout=20)
    finally:
        other.execute("ROLLBACK")  # the command, if still waiting, then ends on its own
    assert run.returncode == 130 and "Traceback" not in err, err
    # One line, as `score` and `train` say theirs (before: nothing at all).
    assert err.splitlines()[-1:] == ["interrupted: stopped before the end"], err


@pytest.mark.slow
@pytest.mark.parametrize("processes", [2, 4])
def test_concurrent_runs_on_overlapping_folders(
    tmp_path: Path, tiny_checkpoints: dict[str, Path], processes: int
) -> None:
    """Two or four ``score`` at once on one new database, over folders that overlap: all finish."""
    a, b = write_photos(tmp_path / "lib" / "a", 12), write_photos(tmp_path / "lib" / "b", 12, start=12)
    db = tmp_path / "shared.db"
    signals_only = [aesthete("score", root, "--workers", 1, "--db", db, "--json") for root in (tmp_path / "lib", a)]
    with_model = [aesthete("score", root, "--weights", tiny_checkpoints["nima"], "--device", "cpu", "--workers", 1,
                           "--db", db, "--json") for root in (tmp_path / "lib", b)]  # fmt: skip
    commands = signals_only if processes == 2 else signals_only + with_model
    runs = [start(cmd) for cmd in commands]
    results = [(run, *run.communicate(timeout=300)) for run in runs]
    for run, out, err in results:
        assert "locked" not in err and "Traceback" not in err and out.startswith("{"), (run.returncode, err)
        summary = json.loads(out)
        assert summary["failed"] == [] and run.returncode == (4 if summary["notice"] else 0)
    check_database(db)
    assert count(db, "SELECT count(*) FROM files") == 24 and count(db, "SELECT count(*) FROM images") == 24
    if processes == 4:
        assert count(db) == 24  # one score row per photo, whichever process scored it
