"""``python -m torch.distributed.run``, PyTorch's own launcher, except on Ctrl-C.

torchrun stops its ranks on a Ctrl-C and then raises the signal as a ``SignalException`` with a
traceback. Here it exits with the shell's status for the signal instead (130 for SIGINT), and
``aesthete train`` says in one line what the run folder keeps.
"""

from __future__ import annotations

import sys

from torch.distributed.elastic.multiprocessing.api import SignalException
from torch.distributed.run import main

if __name__ == "__main__":
    try:
        main()
    except SignalException as exc:
        sys.exit(128 + int(exc.sigval))
