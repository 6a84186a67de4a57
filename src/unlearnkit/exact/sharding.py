"""Shards, slices and the keys that name every checkpoint by the exact data it has seen.

A :class:`ShardPlan` splits the ids of a training set into ``S`` disjoint shards and each shard into ``R``
disjoint slices (SISA, Bourtoule et al., S&P 2021). A checkpoint trained on slices ``π(1), …, π(i)`` of a
shard (in that order) is named by :func:`chain_keys`: a SHA-256 chain over the sorted ids of each slice, so
the key *is* a hash of the exact index history. Deleting an id changes the key of every checkpoint whose
history contained it, and only those.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ConfigError, ForgetSpecError

GENESIS = "0" * 64


def slice_digest(ids: Iterable[int]) -> str:
    """SHA-256 of the sorted ids of one slice (order-free: a slice is a set)."""
    text = ",".join(str(int(i)) for i in sorted(int(i) for i in ids))
    return hashlib.sha256(text.encode()).hexdigest()


def root_key(payload: dict[str, Any]) -> str:
    """The key of an untrained model: a hash of everything besides data that determines training."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def chain_keys(root: str, history: Sequence[Iterable[int]]) -> list[str]:
    """Keys of the checkpoints after each step of ``history`` (a list of slices, in training order).

    ``key_i = sha256(key_{i-1} | digest(slice_i))`` with ``key_0 = root``.
    """
    keys: list[str] = []
    prev = root
    for ids in history:
        prev = hashlib.sha256(f"{prev}|{slice_digest(ids)}".encode()).hexdigest()
        keys.append(prev)
    return keys


@dataclass
class ShardPlan:
    """``shards[s][r]`` is the sorted list of ids in slice ``r`` of shard ``s``."""

    shards: list[list[list[int]]]

    @property
    def num_shards(self) -> int:
        return len(self.shards)

    @property
    def num_slices(self) -> int:
        return len(self.shards[0]) if self.shards else 0

    def shard_ids(self, shard: int) -> list[int]:
        return [i for sl in self.shards[shard] for i in sl]

    def all_ids(self) -> set[int]:
        return {i for shard in self.shards for sl in shard for i in sl}

    def locate(self, ids: Iterable[int]) -> dict[int, tuple[int, int]]:
        """``{id: (shard, slice)}`` for the ids present in the plan (absent ids are left out)."""
        wanted = {int(i) for i in ids}
        where: dict[int, tuple[int, int]] = {}
        for s, shard in enumerate(self.shards):
            for r, sl in enumerate(shard):
                for i in sl:
                    if i in wanted:
                        where[i] = (s, r)
        return where

    def without(self, ids: Iterable[int]) -> ShardPlan:
        """A new plan with ``ids`` removed from their slices (shard and slice boundaries are kept)."""
        drop = {int(i) for i in ids}
        return ShardPlan([[[i for i in sl if i not in drop] for sl in shard] for shard in self.shards])

    def to_dict(self) -> dict[str, Any]:
        return {"shards": self.shards}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ShardPlan:
        return cls([[[int(i) for i in sl] for sl in shard] for shard in d["shards"]])


def make_plan(
    ids: Sequence[int] | np.ndarray,
    shards: int,
    slices: int,
    *,
    seed: int = 0,
    prior: Sequence[float] | np.ndarray | None = None,
) -> ShardPlan:
    """Split ``ids`` into ``shards`` disjoint shards of ``slices`` disjoint slices each.

    Uniform by default (a seeded permutation cut into equal parts). With ``prior`` (one non-negative
    request likelihood per id), SISA's distribution-aware sharding: ids are ordered by decreasing
    likelihood and cut into contiguous shards, so the ids most likely to be deleted share few shards, and
    within each shard the likeliest ids go to the last slices, where a deletion retrains the least.
    """
    arr = np.asarray(ids, dtype=np.int64).reshape(-1)
    if shards < 1 or slices < 1:
        raise ConfigError(f"shards and slices must be >= 1, got shards={shards}, slices={slices}")
    if len(np.unique(arr)) != len(arr):
        raise ForgetSpecError("training ids must be unique; list each example once")
    if len(arr) < shards * slices:
        raise ConfigError(
            f"{len(arr)} examples cannot fill {shards} shards x {slices} slices; use fewer shards or slices"
        )
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(arr))
    if prior is None:
        parts = np.array_split(arr[order], shards)
        return ShardPlan([[sorted(sl.tolist()) for sl in np.array_split(p, slices)] for p in parts])
    p = np.asarray(prior, dtype=np.float64).reshape(-1)
    if len(p) != len(arr):
        raise ConfigError(f"prior has {len(p)} values for {len(arr)} ids; give one request likelihood per id")
    if not np.all(np.isfinite(p)) or np.any(p < 0):
        raise ConfigError("prior values must be finite and non-negative (request likelihoods)")
    # stable sort of a random permutation: ties are broken at random, larger likelihood first
    by_likelihood = order[np.argsort(-p[order], kind="stable")]
    plan = []
    for part in np.array_split(by_likelihood, shards):
        ascending = part[::-1]  # least likely first, so the likeliest ids land in the last slices
        plan.append([sorted(arr[sl].tolist()) for sl in np.array_split(ascending, slices)])
    return ShardPlan(plan)
