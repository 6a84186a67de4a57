"""Named crash points of the deletion protocol, for crash-injection tests.

:func:`fault_point` is called after every durable step of a deletion (``pending``, ``state``,
``checkpoint``, ``trained``, ``committed``, ``done``). It does nothing unless a test installed :data:`HOOK`
(in-process) or set ``UNLEARNKIT_EXACT_KILL_AT=STAGE[:N]``, which kills the process with ``SIGKILL`` the
``N``-th time (default 1st) ``STAGE`` is reached — a real crash: no ``finally`` block, no flush.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable

ENV = "UNLEARNKIT_EXACT_KILL_AT"
STAGES = ("pending", "state", "checkpoint", "trained", "committed", "done")

#: in-process hook ``fn(stage)``; tests install one that raises to simulate a crash
HOOK: Callable[[str], None] | None = None
_counts: dict[str, int] = {}


def fault_point(stage: str) -> None:
    if HOOK is not None:
        HOOK(stage)
    spec = os.environ.get(ENV)
    if not spec:
        return
    name, _, nth = spec.partition(":")
    if name != stage:
        return
    _counts[stage] = _counts.get(stage, 0) + 1
    if _counts[stage] == int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
