"""Weights bound to the evidence: the checkpoint files in use must be the ones the ledger committed.

A checkpoint's key proves which ids it *claims* to have seen (its recorded history hashes to its name), but
not that the weights file beside that history is the one trained on it: copying pre-deletion weights over
the checkpoint in use leaves every key, history and ledger hash intact. Each ``committed`` ledger entry
therefore records, per shard, the key in use (``keys_after``), the SHA-256 of its weights file
(``weights_after``) and the hash of the whole model (``model_after``, the value a deletion certificate
signs). :func:`check_weights` re-hashes every weights file in use and compares it with

1. the digest the ledger last bound for that key (``weights_after``), naming the shard that differs;
2. ``model_after`` of the latest binding, when the keys in use are still the ones it recorded (for entries
   written before per-shard digests existed every shard is named, otherwise only those that differ).

Training outside a deletion (S3T's background retraining of deactivated groups, ``resume``, a fresh
``exact-train``) binds its checkpoints with a ``bound`` ledger entry carrying the same fields when it
finishes (:meth:`~.sharded.ShardedModel.bind`). A constituent in use whose key is not the one the latest
binding recorded for its shard fails too: no ledger record explains it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .ledger import record_type
from .sharded import ShardedModel


@dataclass
class WeightsCheck:
    """Per shard, what is wrong with its weights (empty when they are the committed ones)."""

    problems: dict[int, str] = field(default_factory=dict)
    #: shards whose checkpoint in use no committed entry names (trained after the last commit)
    unbound: list[int] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


#: the repair every weights problem suggests
RESTORE = "restore that checkpoint folder (store/KEY) from a backup of the model folder"


def committed_records(model: ShardedModel) -> list[tuple[int, dict[str, Any]]]:
    """``(seq, record)`` of every committed deletion in the ledger, in order."""
    return [
        (int(e["seq"]), e["record"])
        for e in model.ledger.entries()
        if record_type(e.get("record", {})) == "committed" and "keys_after" in e.get("record", {})
    ]


def check_weights(model: ShardedModel) -> WeightsCheck:
    """Re-hash the weights file of every constituent in use and compare it with what the ledger bound."""
    records = model.bindings()
    bound: dict[str, tuple[str, int]] = {}
    for seq, rec in records:
        for key, digest in zip(rec.get("keys_after") or [], rec.get("weights_after") or [], strict=False):
            if key is not None and digest is not None:
                bound[key] = (digest, seq)
    sels = model.selection()
    digests = model.weights_digests(sels)
    out = WeightsCheck()
    last_seq, last = records[-1] if records else (None, {})
    last_keys = last.get("keys_after")
    for sel, digest in zip(sels, digests, strict=True):
        if sel.key is None:
            continue
        if last_keys is not None and sel.shard < len(last_keys) and last_keys[sel.shard] != sel.key:
            expected = str(last_keys[sel.shard])[:16]
            out.problems[sel.shard] = (
                f"checkpoint {sel.key[:16]} in use is not {expected}, the one ledger entry {last_seq} bound, and "
                f"no ledger record explains the change (a checkpoint was removed or put in); {RESTORE}"
            )
        elif sel.key not in bound:
            out.unbound.append(sel.shard)
        elif bound[sel.key][0] != digest:
            out.problems[sel.shard] = (
                f"weights of checkpoint {sel.key[:16]} differ from the digest bound in ledger entry "
                f"{bound[sel.key][1]} (the file was replaced after it was bound); {RESTORE}"
            )
    if records and [s.key for s in sels] == last_keys and model.model_hash(sels, digests) != last.get("model_after"):
        per_shard = last.get("weights_after")
        for sel, digest in zip(sels, digests, strict=True):
            if sel.key is None or sel.shard in out.problems:
                continue
            if per_shard is None or per_shard[sel.shard] != digest:  # without per-shard digests: every shard
                out.problems[sel.shard] = (
                    f"the weights in use do not hash to model_after bound in ledger entry {last_seq} "
                    f"(a checkpoint file was replaced); {RESTORE}"
                )
    return out


def certificate_model_problems(certificate: str | Path, model_dir: str | Path) -> list[str]:
    """What ties certificate file ``certificate`` to the weights of model folder ``model_dir`` badly, read-only:
    every weights file in use must be the committed one (:func:`check_weights`), and while the constituents
    in use are still the ones the certificate's request committed, they must hash to its ``model_after``.
    Empty when everything matches. The signature is checked separately (:func:`~.certificates.verify_certificate`).
    A ``model_dir`` that is no exact-unlearning model folder raises :class:`CheckpointError` (a wrong input,
    not a verdict on the certificate).
    """
    model = ShardedModel.open(model_dir, recover=False)
    try:
        body = json.loads(Path(certificate).read_text(encoding="utf-8"))["certificate"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return [f"cannot compare {certificate} with {model_dir}: {exc}"]
    check = check_weights(model)
    problems = [f"shard {s}: {why}" for s, why in sorted(check.problems.items())]
    rec = next((r for _, r in committed_records(model) if r.get("request_id") == body.get("request_id")), None)
    if rec is None:
        return [*problems, f"request {body.get('request_id')!r} has no committed entry in {model_dir}'s ledger"]
    sels = model.selection()
    if [s.key for s in sels] == rec.get("keys_after") and model.model_hash(sels) != body.get("model_after"):
        problems.append(
            "the constituents in use do not hash to the certificate's model_after "
            f"({str(body.get('model_after'))[:16]}): a checkpoint file was replaced"
        )
    return problems
