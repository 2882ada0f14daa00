"""Multi-process training through PyTorch's own launcher.

``aesthete train --gpus N`` (or ``--nproc N`` on CPU, or ``--nodes M`` on several machines) writes the
resolved recipe and run options to a job file and re-executes itself as

    python -m torch.distributed.run --nproc-per-node N [--standalone | --nnodes M --node-rank R
        --master-addr A --master-port P] -m aesthete.training.launcher JOB.json

so rendezvous, environment (RANK, WORLD_SIZE, LOCAL_RANK, ...), failure handling and the tear-down of
every process are torchrun's, and each process runs the same :func:`aesthete.training.trainer.run`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any


def write_job(recipe: dict[str, Any], options: Any) -> Path:
    fields = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(options).items()}
    with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="aesthete-job-", delete=False) as handle:
        json.dump({"recipe": recipe, "options": fields}, handle)
    return Path(handle.name)


def launch_command(
    job: Path,
    *,
    nproc: int,
    nodes: int = 1,
    node_rank: int = 0,
    master_addr: str = "127.0.0.1",
    master_port: int = 29500,
) -> list[str]:
    """The torchrun command line for ``nproc`` processes on this machine (of ``nodes``)."""
    command = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={nproc}"]
    if nodes > 1:
        command += [
            f"--nnodes={nodes}",
            f"--node-rank={node_rank}",
            f"--master-addr={master_addr}",
            f"--master-port={master_port}",
        ]
    else:
        command.append("--standalone")
    return [*command, "-m", "aesthete.training.launcher", str(job)]


def launch(recipe: dict[str, Any], options: Any, **topology: Any) -> int:
    """Run the job under torchrun and wait; returns its exit status."""
    job = write_job(recipe, options)
    try:
        return subprocess.run(launch_command(job, **topology), check=False).returncode
    finally:
        job.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> None:
    """One training process (started by torchrun)."""
    from aesthete.errors import AestheteError
    from aesthete.training.trainer import RunOptions, run

    args = sys.argv[1:] if argv is None else argv
    job = json.loads(Path(args[0]).read_text(encoding="utf-8"))
    fields = job["options"]
    options = RunOptions(**{**fields, "data_root": Path(fields["data_root"]), "output": Path(fields["output"])})
    # This process is a command of its own: it renders its progress as `aesthete train` does (only
    # rank 0's reaches the callbacks).
    from aesthete.cli.train import ConsoleReport

    try:
        with ConsoleReport() as report:
            if options.progress:
                run(job["recipe"], options, say=report.say, progress=report.progress)
            else:
                run(job["recipe"], options)
    except AestheteError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
