"""A sequence of unlearning requests: each request names a group of people whose QA is to be forgotten.

The generated benchmark becomes a continual one by drawing ``n_requests × per_request`` forget people (a seeded
permutation of the benchmark's people) and cutting them into consecutive groups. The union of the groups is an
ordinary :class:`~unlearnkit.lm.data.LMSplit`, so the original and the retain-only model (trained without any of
the requested people) are those of ``lm-bench`` and share its cache.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import ConfigError, DataError
from ..data import LMSplit, make_benchmark
from ..formats import normalise_qa, read_records

SPLIT_NAME = "continual"


@dataclass
class RequestSequence:
    """``requests[k]`` holds the forget QA of request ``k``; ``split`` the union of all of them (forget), the
    retain QA (retain), neighbour, world and training texts."""

    split: LMSplit
    requests: list[list[dict[str, Any]]]
    names: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.requests or any(not r for r in self.requests):
            raise DataError("every unlearning request needs at least one forget question")
        if not self.names:
            self.names = [f"R{i + 1}" for i in range(len(self.requests))]

    def request_split(self, k: int, with_retain: bool = True) -> LMSplit:
        """Request ``k`` as an :class:`LMSplit` (its forget QA; the retain QA, which methods run without retain
        data ignore)."""
        s = self.split
        return LMSplit(f"{s.name}-{self.names[k]}", list(self.requests[k]), list(s.retain) if with_retain else s.retain)


def benchmark_requests(
    n_requests: int = 4,
    per_request: int = 5,
    *,
    n_people: int = 60,
    n_holdout: int = 10,
    n_readers: int = 0,
    seed: int = 0,
) -> RequestSequence:
    """``n_requests`` requests of ``per_request`` generated people each, drawn from a benchmark of ``n_people``."""
    need = n_requests * per_request
    if n_requests < 1 or per_request < 1:
        raise ConfigError("n_requests and per_request must be >= 1")
    if need >= n_people:
        raise ConfigError(f"{n_requests} requests × {per_request} people need more than {need} people; raise n_people")
    bench = make_benchmark(n_people, n_holdout, seed, n_readers)
    order = [bench.people[i].name for i in np.random.default_rng(seed + 11).permutation(n_people)[:need]]
    bench.forget_people[SPLIT_NAME] = order
    split = bench.split(SPLIT_NAME)
    groups = [order[k * per_request : (k + 1) * per_request] for k in range(n_requests)]
    requests = [[r for r in split.forget if r["person"] in set(g)] for g in groups]
    return RequestSequence(split, requests)


def read_qa(path: str | Path, where: str) -> list[dict[str, Any]]:
    return normalise_qa(read_records(path), where)


def file_requests(
    paths: Sequence[str | Path],
    retain: str | Path,
    *,
    neighbour: str | Path | None = None,
    world: str | Path | None = None,
) -> RequestSequence:
    """Requests from QA files (one per request, any format :func:`unlearnkit.lm.formats.read_qa` reads) and the
    retain QA used for evaluation (never for O3's training)."""
    if not paths:
        raise ConfigError("give at least one request file")
    requests = [read_qa(p, f"request {i + 1}") for i, p in enumerate(paths)]
    forget = [r for req in requests for r in req]
    split = LMSplit(
        SPLIT_NAME,
        forget,
        read_qa(retain, "retain"),
        neighbour=read_qa(neighbour, "neighbour") if neighbour else [],
        world=read_qa(world, "world") if world else [],
    )
    return RequestSequence(split, requests, [Path(p).stem for p in paths])
