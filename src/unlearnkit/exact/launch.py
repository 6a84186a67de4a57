"""How many processes the launcher of ``dp-train`` asked for, and starting them when it started fewer.

``accelerate launch --num_processes 2 --cpu script`` (Accelerate's plain launcher, no ``--multi_gpu``)
starts *one* process: it only sets ``MASTER_ADDR``/``MASTER_PORT`` and ``ACCELERATE_USE_CPU`` and never
passes the count on. A run that trusted ``Accelerator().num_processes`` would silently train alone.
:func:`requested_processes` reads the count the launcher was asked for — ``WORLD_SIZE`` when a distributed
launcher (torchrun) set it, otherwise ``--num_processes`` on the command line of the ``accelerate launch``
process that started this one — and :func:`launch_plan` decides: train here, start the processes with
torchrun (``python -m torch.distributed.run --standalone --nproc_per_node N``), or refuse.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..errors import ConfigError

_COUNT_FLAGS = ("--num_processes", "--num-processes")


def accelerate_launch_count(argv: Sequence[str]) -> int | None:
    """``--num_processes`` given to an ``accelerate launch`` command line ``argv`` (``None`` when ``argv`` is
    not one, or does not name a count)."""
    argv = list(argv)
    if "launch" not in argv or not any("accelerate" in Path(a).name for a in argv[: argv.index("launch")]):
        return None
    opts = argv[argv.index("launch") + 1 :]
    for n, arg in enumerate(opts):
        if not arg.startswith("-") or arg in ("-m", "--module"):
            break  # the training script (or module) starts: what follows are its own arguments
        name, eq, value = arg.partition("=")
        if name in _COUNT_FLAGS:
            value = value if eq else (opts[n + 1] if n + 1 < len(opts) else "")
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _parent_argv() -> list[str]:
    try:
        return Path(f"/proc/{os.getppid()}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:  # not Linux, or no permission: nothing to read
        return []


def requested_processes(
    environ: Mapping[str, str] | None = None, parent_argv: Sequence[str] | None = None
) -> int | None:
    """The number of processes the launcher asked for: ``WORLD_SIZE`` when set, else ``--num_processes`` of
    the ``accelerate launch`` that started this process (read only when Accelerate's launcher environment
    ``ACCELERATE_USE_CPU`` is present); ``None`` when no launcher said."""
    env = os.environ if environ is None else environ
    if env.get("WORLD_SIZE"):
        return int(env["WORLD_SIZE"])
    if "ACCELERATE_USE_CPU" not in env:
        return None
    return accelerate_launch_count(_parent_argv() if parent_argv is None else parent_argv)


def launch_plan(started: int, flag: int | None, launcher: int | None, distributed: bool) -> int | None:
    """How many processes to start with torchrun before training (``None``: train in this process).

    ``started``: processes Accelerate sees; ``flag``: ``--processes``; ``launcher``: what
    :func:`requested_processes` read; ``distributed``: whether a distributed launcher already started this
    process (``WORLD_SIZE`` set), in which case nothing is started again. Refuses a count that differs."""
    if flag is not None and flag < 1:
        raise ConfigError(f"--processes must be at least 1, not {flag}")
    if flag is not None and launcher is not None and flag != launcher:
        raise ConfigError(
            f"--processes {flag} disagrees with the launcher's {launcher} processes; give the same count to both"
        )
    want = flag if flag is not None else launcher
    if want is None or want == started:
        return None
    if started == 1 and launcher is not None and launcher > 1 and not distributed:
        return launcher
    raise ConfigError(
        f"dp-train was asked for {want} processes but runs in {started}; launch it with "
        f"`accelerate launch --cpu --num_processes {want} -m unlearnkit.cli dp-train --cpu ...` "
        f"or `accelerate launch --multi_gpu --num_processes {want} ...`"
    )


def relaunch_count(flag: int | None) -> int | None:
    """:func:`launch_plan` for this process: how many processes to start (``None``: train here)."""
    world = os.environ.get("WORLD_SIZE")
    return launch_plan(int(world or 1), flag, requested_processes(), bool(world))


def own_arguments(command: str) -> list[str]:
    """This program's arguments from ``command`` on, to start it again; refuses when it was not started as
    ``unlearnkit COMMAND ...`` (called from Python, there is no command line to repeat)."""
    if command not in sys.argv[1:]:
        raise ConfigError(
            f"the launcher asked for several processes but {command} was not started from the command line; "
            f"run `accelerate launch --multi_gpu --num_processes N -m unlearnkit.cli {command} --cpu ...`"
        )
    return sys.argv[sys.argv.index(command, 1) :]


def run_processes(count: int, argv: Sequence[str]) -> int:
    """Run ``python -m unlearnkit.cli ARGV`` in ``count`` processes with torchrun on this machine (a free rendezvous
    port); returns its exit status."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={count}"]
    cmd += ["-m", "unlearnkit.cli", *argv]
    env = {k: v for k, v in os.environ.items() if k not in ("MASTER_ADDR", "MASTER_PORT")}
    return subprocess.run(cmd, env=env, check=False).returncode
