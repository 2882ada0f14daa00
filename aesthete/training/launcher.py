"""Multi-process training through PyTorch's own launcher.

``aesthete train --gpus N`` (or ``--nproc N`` on CPU, or ``--nodes M`` on several machines) puts the
resolved recipe and run options, as JSON, in the environment variable ``AESTHETE_TRAIN_JOB`` and
re-executes itself as

    python -m aesthete.training.torchrun --nproc-per-node N [--standalone | --nnodes M --node-rank R
        --master-addr A --master-port P] -m aesthete.training.launcher

(``aesthete.training.torchrun`` is ``torch.distributed.run`` with a quiet Ctrl-C), so rendezvous,
environment (RANK, WORLD_SIZE, LOCAL_RANK, ...), failure handling and the tear-down of every process are
torchrun's, and each process runs the same :func:`aesthete.training.trainer.run`.

The job goes in the environment, which torchrun hands to every rank, not in a file: a job file in /tmp
outlived a ``kill -9`` of ``aesthete train`` (field test), and one in the run folder would make a failed
start leave that folder behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

SIGINT_GRACE_S = 10  # how long torchrun has to stop on a Ctrl-C it got itself, before it is sent one
PARENT_ENV = "AESTHETE_TRAIN_PID"  # tells torchrun which process to stop with (aesthete.training.torchrun)
JOB_ENV = "AESTHETE_TRAIN_JOB"  # the job, for every rank
LIBRARY_ERROR = 2  # a rank's exit status after it reported an AestheteError in one line
ERROR_FILE_ENV = "TORCHELASTIC_ERROR_FILE"  # where torchrun reads why a rank failed


def job_text(recipe: dict[str, Any], options: Any) -> str:
    """The value of :data:`JOB_ENV` for ``recipe`` and ``options`` (RunOptions)."""
    fields = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(options).items()}
    return json.dumps({"recipe": recipe, "options": fields})


def launch_command(
    *,
    nproc: int,
    nodes: int = 1,
    node_rank: int = 0,
    master_addr: str = "127.0.0.1",
    master_port: int = 29500,
) -> list[str]:
    """The torchrun command line for ``nproc`` processes on this machine (of ``nodes``)."""
    command = [sys.executable, "-m", "aesthete.training.torchrun", f"--nproc-per-node={nproc}"]
    if nodes > 1:
        command += [
            f"--nnodes={nodes}",
            f"--node-rank={node_rank}",
            f"--master-addr={master_addr}",
            f"--master-port={master_port}",
        ]
    else:
        command.append("--standalone")
    return [*command, "-m", "aesthete.training.launcher"]


def launch(recipe: dict[str, Any], options: Any, **topology: Any) -> int:
    """Run the job under torchrun and wait; returns its exit status.

    On Ctrl-C, torchrun is waited for, not killed: a terminal's Ctrl-C reaches it and every rank (one
    process group), and torchrun stops the ranks. Where the interrupt reached this process alone, torchrun
    is sent one after ``SIGINT_GRACE_S``. KeyboardInterrupt is then raised again, once no rank is left."""
    environment = {**os.environ, PARENT_ENV: str(os.getpid()), JOB_ENV: job_text(recipe, options)}
    with subprocess.Popen(launch_command(**topology), env=environment) as torchrun:
        try:
            return torchrun.wait()
        except KeyboardInterrupt:
            try:
                torchrun.wait(timeout=SIGINT_GRACE_S)
            except subprocess.TimeoutExpired:
                torchrun.send_signal(signal.SIGINT)
                torchrun.wait()
            raise


def main() -> None:
    """One training process (started by torchrun)."""
    if JOB_ENV not in os.environ:  # run by hand: there is no job to run
        from aesthete.cli.common import Exit

        print(
            "error: aesthete.training.launcher is an internal entry point, started by `aesthete train --nproc N` "
            "or `--gpus N`; run that instead",
            file=sys.stderr,
        )
        sys.exit(Exit.USAGE)
    from aesthete import interrupts
    from aesthete.errors import AestheteError
    from aesthete.training.trainer import RunOptions, run

    job = json.loads(os.environ[JOB_ENV])
    fields = job["options"]
    options = RunOptions(**{**fields, "data_root": Path(fields["data_root"]), "output": Path(fields["output"])})
    # This process is a command of its own: it renders its progress as `aesthete train` does (only
    # rank 0's reaches the callbacks).
    from aesthete.cli.train import ConsoleReport

    interrupts.install()
    try:
        with ConsoleReport() as report:
            if options.progress:
                run(job["recipe"], options, say=report.say, progress=report.progress)
            else:
                run(job["recipe"], options)
    except AestheteError as exc:
        report_error(f"error: {exc}")
        sys.exit(LIBRARY_ERROR)
    except KeyboardInterrupt:  # every rank gets the Ctrl-C; `aesthete train` says once what was saved
        sys.exit(130)
    except Exception:
        # A rank whose Ctrl-C was dropped (see aesthete.interrupts) goes on to its next all-reduce, which
        # fails as the ranks that stopped have left: that error is part of the same stop.
        if interrupts.pressed():
            sys.exit(130)
        raise


def report_error(line: str) -> None:
    """Say why this rank stops: to torchrun, which prints it once for all the ranks that stop for the
    same reason (each printed its own copy: field test), or on stderr without one."""
    error_file = os.environ.get(ERROR_FILE_ENV)
    if error_file:
        # The format of torchrun's own error files (torch.distributed.elastic.multiprocessing.errors).
        report = json.dumps({"message": line, "timestamp": int(time.time())})
        try:
            Path(error_file).write_text(report, encoding="utf-8")
            return
        except OSError:
            pass  # then say it here
    print(line, file=sys.stderr)


if __name__ == "__main__":
    main()
