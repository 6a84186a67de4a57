"""Proof of exactness from the checkpoint keys, not from trust in the code that trained them.

For every constituent used for prediction, :func:`audit` checks that

1. the checkpoint's recorded index history hashes (SHA-256 chain from its root) to the key it is stored
   under, and that key is the one the current shard plan — which has no deleted id — derives;
2. no deleted id occurs anywhere in that history;
3. for S3T, every parameter group trained after the surviving prefix (positions ``depth…R-1`` of the slice
   order) is bit-for-bit equal to its untrained initial value: inference never uses a group trained on a
   deleted slice;
4. every shard that still holds ids has a usable constituent (none is silently left out of the ensemble);
5. the weights file of every constituent in use is the one the ledger committed (:mod:`.weights`);
6. ``exact.json`` agrees with the ledger: its digest is the one the ledger's last entry implies, its deleted
   ids are the ledger's, and no deletion request is left open;
7. no stored checkpoint, in use or not, was trained on a deleted id, and no purge is pending;
8. every stored checkpoint folder can vouch for that: it has a ``meta.json`` whose history hashes to the key
   it is stored under, and it is not a key a purge removed (put back from a copy).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from .chains import key_seed
from .s3t import group_state_names
from .sharded import ShardedModel
from .weights import check_weights


@dataclass
class ConstituentCheck:
    shard: int
    order: int
    depth: int
    key: str | None
    history_hash_ok: bool = False
    matches_plan: bool = False
    deleted_in_history: list[int] = field(default_factory=list)
    inactive_groups_at_init: bool | None = None
    problem: str = ""
    #: why the weights file is not the one the ledger committed ("" when it is, or not yet bound)
    weights_problem: str = ""

    @property
    def ok(self) -> bool:
        return (
            self.key is not None
            and self.history_hash_ok
            and self.matches_plan
            and not self.deleted_in_history
            and self.inactive_groups_at_init is not False
            and not self.weights_problem
        )


@dataclass
class ExactnessReport:
    deleted: int
    constituents: list[ConstituentCheck]
    plan_clean: bool
    missing_shards: list[int] = field(default_factory=list)
    ledger_problem: str = ""
    #: stored checkpoints (in use or not) trained on a deleted id, or a purge left pending ("" when none)
    purge_problem: str = ""

    @property
    def ok(self) -> bool:
        used = [c for c in self.constituents if c.key is not None]
        return (
            self.plan_clean
            and bool(used)
            and all(c.ok for c in used)
            and not self.missing_shards
            and not self.ledger_problem
            and not self.purge_problem
        )

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, **asdict(self)}


def audit(model: ShardedModel) -> ExactnessReport:
    """Check, from the keys and stored histories, that every constituent in use excludes the deleted ids."""
    deleted = model.deleted
    checks = []
    for sel in model.selection():
        c = ConstituentCheck(sel.shard, sel.order, sel.depth, sel.key)
        if sel.key is None:
            c.problem = "no usable constituent (left out of the ensemble)"
            checks.append(c)
            continue
        c.history_hash_ok, why = model.store.check(sel.key)
        expected = model.chain(sel.shard, sel.order)[sel.depth - 1] if sel.depth else model.state["roots"][sel.shard]
        c.matches_plan = sel.key == expected
        seen = {i for sl in model.store.history(sel.key) for i in sl}
        c.deleted_in_history = sorted(seen & deleted)
        if model.scheme.name == "s3t":
            c.inactive_groups_at_init = _inactive_at_init(model, sel.shard, sel.depth, sel.key)
        if not c.ok:
            c.problem = why if not c.history_hash_ok else "constituent fails the exactness checks"
        checks.append(c)
    weights = check_weights(model)
    for c in checks:
        c.weights_problem = weights.problems.get(c.shard, "")
        if c.weights_problem and c.history_hash_ok:
            c.problem = c.weights_problem
    missing = [c.shard for c in checks if c.key is None and model.plan.shard_ids(c.shard)]
    status, message = model._reconcile()
    return ExactnessReport(
        len(deleted),
        checks,
        not (model.plan.all_ids() & deleted),
        missing,
        "" if status == "ok" else message,
        _purge_problem(model),
    )


def _purge_problem(model: ShardedModel) -> str:
    """What the store still holds of deleted data: checkpoints trained on a deleted id, a pending purge."""
    stale = model.stale_checkpoints()
    if stale:
        shown = ", ".join(f"{k[:12]}… (ids {ids[:3]})" for k, ids in list(stale.items())[:3])
        return (
            f"{len(stale)} stored checkpoint(s) were trained on deleted ids: {shown}; "
            "run `unlearnkit resume --model DIR` to purge them"
        )
    if model.ledger.open_purges():
        return "a purge of deleted data is pending in the ledger; run `unlearnkit resume --model DIR`"
    odd = model.unverifiable_checkpoints()
    if odd:
        shown = "; ".join(f"{k[:12]}…: {why}" for k, why in list(odd.items())[:3])
        return (
            f"{len(odd)} stored checkpoint folder(s) cannot be shown free of deleted ids: {shown}; "
            "remove those folders from the store, then run `unlearnkit resume --model DIR`"
        )
    return ""


def _inactive_at_init(model: ShardedModel, shard: int, depth: int, key: str) -> bool:
    root = model.state["roots"][shard]
    used = model.scheme.build(model.spec, key_seed(root))
    init = model.scheme.build(model.spec, key_seed(root))
    model.store.get(key, used)
    model.store.get(root, init)
    groups = model.scheme.group_names(used, model.plan.num_slices)  # type: ignore[attr-defined]
    a, b = used.state_dict(), init.state_dict()
    for pos in range(depth, len(groups)):
        for name in group_state_names(used, groups[pos]):
            if not torch.equal(a[name], b[name]):
                return False
    return True
