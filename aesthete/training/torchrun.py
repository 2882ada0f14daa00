"""``python -m torch.distributed.run``, PyTorch's own launcher, except where it ends.

- On Ctrl-C torchrun stops its ranks and then raises the signal as a ``SignalException`` with a
  traceback. Here it exits with the shell's status for the signal instead (130 for SIGINT), and
  ``aesthete train`` says in one line what the run folder keeps.
- When a rank fails, torchrun raises ``ChildFailedError``: a traceback of torchrun itself and a report
  of some thirty lines, after the rank's own message. A rank that stopped on a library error left its
  one line in torchrun's error file (``aesthete.training.launcher`` exits 2 for it): this prints the line
  once, however many ranks stopped on it, and exits 2; any other failure gets one line naming the rank
  and how it ended (its traceback, if any, is its own).
- torchrun's own log lines (``W1128 ... Setting OMP_NUM_THREADS``, ``E1128 ... failed (exitcode: 2)``)
  repeat what these lines say, in its words; they are shown only where torch's ``LOGLEVEL`` is set.
- torchrun keeps its ranks' log and error files in a folder it never removes (``/tmp/torchelastic_*``, one
  a run); here they go in one that is removed as this ends.
- ``aesthete train`` starting this may itself be killed outright (``kill -9``): this process then gets a
  SIGINT (Linux), and stops its ranks as on Ctrl-C, instead of training on unseen beside a ``--resume``
  of the same run folder.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import tempfile

from torch.distributed.elastic.multiprocessing.api import SignalException
from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
from torch.distributed.run import main

from aesthete.training.launcher import LIBRARY_ERROR, PARENT_ENV

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def stop_with_parent() -> None:
    """Have the kernel send SIGINT here when the ``aesthete train`` that started this dies (Linux)."""
    parent = os.environ.get(PARENT_ENV)
    if not sys.platform.startswith("linux") or parent is None:
        return
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGINT)
    if os.getppid() != int(parent):  # it died before the request was in place
        sys.exit(128 + signal.SIGINT)


def quiet_torchrun() -> None:
    """Silence torchrun's log lines, unless ``LOGLEVEL`` asks for them (torch's own setting)."""
    if "LOGLEVEL" in os.environ:
        return
    for name in list(logging.Logger.manager.loggerDict):
        if name.startswith("torch.distributed"):
            logging.getLogger(name).setLevel(logging.CRITICAL)


def ended(error: ChildFailedError) -> int:
    """The exit status for a run whose rank failed, after one line on stderr: the library error that
    stopped its ranks, or which rank failed and how."""
    reported = [failure for failure in error.failures.values() if failure.exitcode == LIBRARY_ERROR]
    if reported:
        print(reported[0].message, file=sys.stderr)
        return LIBRARY_ERROR
    rank, failure = error.get_first_failure()
    how = f"was killed by {failure.signal_name()}" if failure.exitcode < 0 else f"exited with status {failure.exitcode}"
    print(f"error: training process of rank {rank} {how}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    stop_with_parent()
    quiet_torchrun()
    # torchrun's ranks' log and error files go in a folder of its own making (/tmp/torchelastic_*), which
    # it never removes: one was left behind by every run. This one goes when torchrun ends, however.
    with tempfile.TemporaryDirectory(prefix="aesthete-torchrun-") as logs:
        sys.argv.insert(1, f"--log-dir={logs}")
        try:
            main()
        except SignalException as exc:
            sys.exit(128 + int(exc.sigval))
        except ChildFailedError as exc:
            sys.exit(ended(exc))
