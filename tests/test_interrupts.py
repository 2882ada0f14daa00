"""A Ctrl-C that Python drops (raised where no exception can propagate, as in a fork's callback) is
raised again at the next step of `score` and of training, and never reaches the terminal as "Exception
ignored"."""

from __future__ import annotations

import contextlib
import io
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import imagegen as g
import pytest
import torch

from aesthete import interrupts
from aesthete.scoring import score
from aesthete.store import Store


class _Swallower:
    """Receives SIGINT in ``__del__``, where Python prints an exception and drops it: the situation of
    ``logging``'s ``os.fork`` callback when Ctrl-C lands during a fork."""

    def __del__(self) -> None:
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(1000):  # the handler runs at one of these loop checks, still inside __del__
            pass


def press_where_it_is_lost() -> None:
    _Swallower()


@pytest.fixture
def installed(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[type]]:
    """``interrupts.install()`` for one test; yields the exception types that reached the unraisable hook."""
    reached: list[type] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda info: reached.append(info.exc_type))
    previous = signal.getsignal(signal.SIGINT)
    try:
        yield reached
    finally:
        signal.signal(signal.SIGINT, previous)
        interrupts.clear()


def test_a_lost_press_is_raised_once_at_the_next_check_and_not_printed(installed: list[type]) -> None:
    interrupts.install()
    press_where_it_is_lost()  # no exception here: Python dropped it
    with pytest.raises(KeyboardInterrupt):
        interrupts.raise_if_pressed()
    interrupts.raise_if_pressed()  # once only
    assert installed == []  # not shown as "Exception ignored"


def test_once_ignores_the_second_press(installed: list[type]) -> None:
    interrupts.install(once=True)
    with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(1000):
            pass
    assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN


@pytest.mark.skipif(not hasattr(signal, "pthread_sigmask"), reason="signal masks are POSIX")
def test_a_press_while_children_start_comes_after_the_block_though_another_thread_takes_it(
    installed: list[type],
) -> None:
    """Before: with SIGINT blocked in the main thread, the kernel gave the press to another thread (torch
    and Rich run some) and Python raised it in the main thread all the same, inside the block: a loader
    worker forked just before outlived `aesthete train` (CI's Ctrl-C test timed out waiting for it)."""
    interrupts.install()
    handler = signal.getsignal(signal.SIGINT)
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)  # SIGINT not blocked there: the kernel delivers it there
    other.start()
    finished: list[bool] = []
    try:
        with pytest.raises(KeyboardInterrupt), interrupts.held_while_starting_children():
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(100_000):  # Python runs signal handlers at these checks
                pass
            time.sleep(0.05)
            finished.append(True)
    finally:
        stop.set()
        other.join()
    assert finished == [True]
    assert signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, set())  # unblocked again
    assert signal.getsignal(signal.SIGINT) is handler
    interrupts.clear()


def test_score_stops_at_a_lost_press_and_a_later_run_is_not_stopped(installed: list[type], tmp_path: Path) -> None:
    folder = tmp_path / "p"
    folder.mkdir()
    for i in range(6):
        (folder / f"p{i}.jpg").write_bytes(g.encode(g.scene(i, (96, 64)), "JPEG", quality=85))
    store = Store(tmp_path / "a.db")
    interrupts.install()
    press_where_it_is_lost()
    first = score([str(folder)], store=store, workers=1)
    assert first.interrupted and first.analysed < 6
    again = score([str(folder)], store=store, workers=1)
    assert not again.interrupted and first.analysed + again.analysed == 6
    store.close()


def test_a_press_as_the_decode_workers_start_stops_them_and_frees_their_slots(
    installed: list[type], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_checkpoints: dict[str, Path]
) -> None:
    """A press held back while the pool started is raised as its start ends, before ``score`` holds the
    pool to close. Before: its workers were left to the garbage collector and its shared block (the model
    inputs' slots) stayed in /dev/shm until a later run removed it."""
    from aesthete import pixel_slots, scoring

    folder = tmp_path / "p"
    folder.mkdir()
    for i in range(3):
        (folder / f"p{i}.jpg").write_bytes(g.encode(g.scene(i, (96, 64)), "JPEG", quality=85))

    @contextlib.contextmanager
    def pressed_while_starting() -> Iterator[None]:
        yield
        raise KeyboardInterrupt  # as held_while_starting_children raises a press it held back

    monkeypatch.setattr(scoring.interrupts, "held_while_starting_children", pressed_while_starting)
    interrupts.install()
    store = Store(tmp_path / "a.db")
    summary = score([str(folder)], store=store, weights=str(tiny_checkpoints["nima"]), device="cpu", workers=2)
    store.close()
    assert summary.interrupted and summary.scored == 0
    assert not list(pixel_slots.block_folder().glob(f"{pixel_slots.NAME_PREFIX}{os.getpid()}-*"))
    assert not [child for child in multiprocessing.active_children() if child.is_alive()]


def test_training_stops_at_a_lost_press(installed: list[type], tmp_path: Path) -> None:
    from test_training_run import tiny_recipe

    from aesthete.training.synthetic import generate
    from aesthete.training.trainer import RunOptions, run

    data = generate(tmp_path / "ava", n=24, seed=1, test_fraction=0.25)
    steps: list[int] = []

    def press_at_step_2(step: int) -> None:
        steps.append(step)
        if step == 2:
            press_where_it_is_lost()

    interrupts.install()
    options = RunOptions(data, tmp_path / "run", device="cpu", workers=0, progress=False)
    with pytest.raises(KeyboardInterrupt):
        run(tiny_recipe("train.epochs=3", "train.batch_size=2"), options, on_step=press_at_step_2)
    assert steps == [1, 2]


def test_a_rank_that_fails_after_a_lost_press_stops_as_interrupted(
    installed: list[type], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its peers stopped, so its next all-reduce fails: exit 130 without a traceback, like them. Without
    a press, the same error is an error."""
    from aesthete.training import launcher, trainer

    def collective_broken(*args: object, after_a_press: bool, **kwargs: object) -> None:
        if after_a_press:
            press_where_it_is_lost()
        raise RuntimeError("Connection closed by peer")

    options = trainer.RunOptions(tmp_path, tmp_path / "run", device="cpu", workers=0, progress=False)
    monkeypatch.setenv(launcher.JOB_ENV, launcher.job_text({}, options))
    monkeypatch.setattr(trainer, "run", partial(collective_broken, after_a_press=True))
    with pytest.raises(SystemExit) as stop:
        launcher.main()
    assert stop.value.code == 130
    interrupts.clear()
    monkeypatch.setattr(trainer, "run", partial(collective_broken, after_a_press=False))
    with pytest.raises(RuntimeError, match="closed by peer"):
        launcher.main()


class _WorkerSetup(torch.utils.data.Dataset):
    """Reports, from inside a loader's worker, what it does with Ctrl-C and with the tracebacks of its
    threads: 1 if SIGINT is ignored, + 2 if a connection error prints nothing, + 4 if another error does."""

    def __len__(self) -> int:
        return 1

    def __getitem__(self, key: int) -> dict[str, object]:
        flags = int(signal.getsignal(signal.SIGINT) is signal.SIG_IGN)
        for bit, error, must_print in ((2, ConnectionResetError(104, "reset"), False), (4, ValueError("x"), True)):
            printed = io.StringIO()
            with contextlib.redirect_stderr(printed):
                sys.excepthook(type(error), error, None)
            flags += bit * ((type(error).__name__ in printed.getvalue()) == must_print)
        return {"index": flags, "images": torch.zeros(3, 2, 2, dtype=torch.uint8), "aspect": 1.0,
                "dist": torch.zeros(10)}  # fmt: skip


def test_the_training_loaders_workers_leave_ctrl_c_to_the_main_process() -> None:
    """One that died of it, or met the stopped main process while handing a batch over, printed a
    traceback after the interrupted notice."""
    from aesthete.training.data import loader

    batch = next(iter(loader(_WorkerSetup(), [[0]], workers=1, pin_memory=False)))
    assert batch["index"].tolist() == [7]


def test_an_interrupted_command_stops_its_child_processes_as_it_leaves(monkeypatch: pytest.MonkeyPatch) -> None:
    """After Ctrl-C ``main`` leaves through ``os._exit`` (the interpreter's teardown of torch is slow),
    which skips multiprocessing's exit handler: a training DataLoader's workers, when the SIGINT reached
    `aesthete train` alone, then ran on until their next check of their parent, up to 5 s later."""
    import multiprocessing
    import time

    from aesthete import cli
    from aesthete.cli.common import Exit

    child = multiprocessing.get_context("fork").Process(target=time.sleep, args=(60,), daemon=True)
    child.start()
    left: list[int] = []

    def interrupted() -> None:
        raise SystemExit(Exit.INTERRUPTED)

    monkeypatch.setattr(cli, "app", interrupted)
    monkeypatch.setattr(os, "_exit", left.append)
    try:
        with pytest.raises(SystemExit):  # what follows os._exit, here a stand-in that returns
            cli.main()
        assert left == [Exit.INTERRUPTED]
        assert not child.is_alive(), "the child process outlived the interrupted command"
    finally:
        if child.is_alive():
            child.kill()
        child.join()


def _ended_by_ctrl_c(code: str) -> subprocess.CompletedProcess[str]:
    """``code`` run in a fresh Python, which must end as a Ctrl-C does in aesthete: exit 130, no traceback."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 130 and "Traceback" not in done.stderr, done.stderr
    return done


def test_ctrl_c_while_the_commands_load_exits_130_without_a_traceback() -> None:
    """Ctrl-C in the second `aesthete` takes to import its commands printed a KeyboardInterrupt traceback
    from whichever import it landed in (field test: `timeout -s INT 0.7 aesthete groups`)."""
    code = (
        "import os, signal, sys\n"
        "class Press:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'aesthete.cli.browse':\n"
        "            os.kill(os.getpid(), signal.SIGINT)\n"
        "sys.meta_path.insert(0, Press())\n"
        "from aesthete.cli import main\n"
        "print('loaded')\n"
    )
    done = _ended_by_ctrl_c(code)
    assert "loaded" not in done.stdout


def test_ctrl_c_while_typer_builds_the_commands_exits_130_without_a_traceback() -> None:
    """Once imported, `aesthete` spends a moment in Typer building its Click commands, before Click's own
    Ctrl-C handling starts: a press there was a KeyboardInterrupt traceback too (field test)."""
    code = (
        "import os, signal, sys\n"
        "import typer.main\n"
        "build = typer.main.get_command\n"
        "def pressed(app):\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"
        "    return build(app)\n"
        "typer.main.get_command = pressed\n"
        "from aesthete.cli import main\n"
        "sys.argv = ['aesthete', 'models']\n"
        "main()\n"
    )
    done = _ended_by_ctrl_c(code)
    assert "interrupted" in done.stderr and "apm" not in done.stdout
