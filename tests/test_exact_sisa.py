"""SISA: deletion retrains only the affected shards from the affected slice, and exactness is proven from
the checkpoint keys; deleted ids are never trained on again; the ledger records every request."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

import unlearnkit as uk
from unlearnkit.exact import SISA, ModelSpec, ShardedModel, audit, chain_keys, run_chain
from unlearnkit.exact.chains import ChainJob

RECIPE = uk.Recipe(epochs=8, lr=0.1, batch_size=32, schedule="cosine")


def spec(digits) -> ModelSpec:
    return ModelSpec("mlp", digits.input_shape, 10, {"hidden": [32]})


@pytest.fixture(scope="session")
def sisa_dir(digits, tmp_path_factory):
    folder = tmp_path_factory.mktemp("exact") / "sisa"
    ShardedModel.fit(
        folder,
        digits.train,
        SISA(shards=3, slices=4),
        model=spec(digits),
        recipe=RECIPE,
        test=digits.test,
        executor="serial",
        progress=False,
    )
    return folder


@pytest.fixture
def sisa(sisa_dir, digits, tmp_path) -> ShardedModel:
    """A private copy of the trained SISA folder (tests delete from it)."""
    shutil.copytree(sisa_dir, tmp_path / "m")
    return ShardedModel.open(tmp_path / "m", data=digits.train, test=digits.test)


def test_sisa_trains_an_accurate_ensemble(sisa, digits):
    assert sisa.accuracy() > 80
    assert all(s.depth == 4 for s in sisa.selection())
    soft = sisa.ensemble("softmax")
    assert uk.evaluate(soft, forget=digits.train.subset([0]), retain=digits.train, test=digits.test, mia=False).ta > 80
    assert audit(sisa).ok


def test_delete_retrains_only_from_the_first_affected_slice(sisa):
    plan = sisa.plan
    target = plan.shards[1][2][0]  # shard 1, slice 2 (0-based)
    keys_before = [s.key for s in sisa.selection()]
    report = sisa.delete([target], executor="serial", progress=False)
    assert [s["shard"] for s in report.shards] == [1]
    assert report.shards[0]["slices"] == [2]
    assert report.shards[0]["retrained_steps"] == [3, 4]  # steps 1-2 came from the cache
    after = sisa.selection()
    assert after[0].key == keys_before[0] and after[2].key == keys_before[2]
    assert after[1].key != keys_before[1]
    assert report.accuracy is not None and report.accuracy > 75
    assert target in sisa.deleted and target not in sisa.plan.all_ids()


def test_exactness_is_proven_from_the_keys(sisa):
    ids = [sisa.plan.shards[0][0][3], sisa.plan.shards[2][3][0], sisa.plan.shards[2][1][5]]
    old = sisa.chain(0, 0)[0]  # shard 0's step-1 checkpoint, trained on ids[0]
    sisa.delete(ids, executor="serial", evaluate=False, progress=False)
    report = audit(sisa)
    assert report.ok and report.deleted == 3
    for sel in sisa.selection():
        ok, _ = sisa.store.check(sel.key)
        assert ok  # the recorded history hashes to the key the checkpoint is stored under
        meta = sisa.store.meta(sel.key)
        seen = {i for sl in meta["history"] for i in sl}
        assert not seen & set(ids)
        assert chain_keys(meta["root"], meta["history"])[-1] == sel.key
    # the checkpoint trained on ids[0] was purged from the store, and its key is no longer derivable
    assert old not in sisa.store.stored_keys() and not sisa.store.has(old)
    assert old not in sisa.chain(0, 0) and old not in {s.key for s in sisa.selection()}


def test_deleted_model_equals_training_from_scratch_without_the_ids(sisa, tmp_path):
    target = sisa.plan.shards[2][1][0]
    sisa.delete([target], executor="serial", evaluate=False, progress=False)
    sel = sisa.selection()[2]
    job = ChainJob(
        sisa.scheme,
        sisa.spec,
        sisa.recipe,
        str(tmp_path / "fresh"),
        sisa.state["roots"][2],
        2,
        [0, 1, 2, 3],
        sisa.plan.shards[2],
        sisa.plan.shard_ids(2),
        sisa.data.subset(sisa.plan.shard_ids(2)),
    )
    res = run_chain(job)
    assert res.trained_steps == [1, 2, 3, 4] and res.keys[-1] == sel.key
    fresh = sisa.spec.build(0)
    uk.load(tmp_path / "fresh" / sel.key, model=fresh)
    used = sisa.constituent(sel)
    for (n, a), (_, b) in zip(used.state_dict().items(), fresh.state_dict().items()):
        assert torch.equal(a, b), n


def test_deleted_ids_are_never_used_again(sisa, digits, tmp_path):
    target = sisa.plan.shards[0][1][0]
    sisa.delete([target], executor="serial", evaluate=False, progress=False)
    sisa.refit(executor="serial", progress=False)  # full retraining of every shard
    assert audit(sisa).ok
    for sel in sisa.selection():
        assert target not in {i for sl in sisa.store.meta(sel.key)["history"] for i in sl}
    # a new fit into the same folder inherits the deletions from the ledger
    again = ShardedModel.fit(
        sisa.path,
        digits.train,
        SISA(shards=3, slices=4),
        model=sisa.spec,
        recipe=RECIPE,
        executor="serial",
        progress=False,
        overwrite=True,
    )
    assert target in again.deleted and target not in again.plan.all_ids() and audit(again).ok
    # putting a deleted id back into the plan by hand is refused
    state = json.loads((sisa.path / "exact.json").read_text())
    state["plan"]["shards"][0][0].append(target)
    (sisa.path / "exact.json").write_text(json.dumps(state))
    with pytest.raises(uk.CheckpointError, match="never be trained on again"):
        ShardedModel.open(sisa.path, data=digits.train)


def test_deletion_requests_are_validated_and_recorded(sisa):
    with pytest.raises(uk.ForgetSpecError, match="not in this model's training set"):
        sisa.delete([10**6], executor="serial")
    a = sisa.plan.shards[0][3][0]
    sisa.delete([a], executor="serial", evaluate=False, progress=False, request_id="ticket-1")
    again = sisa.delete([a], executor="serial", evaluate=False, progress=False)
    assert again.ids == [] and again.already_deleted == [a] and again.shards == []
    entries = sisa.ledger.entries()
    kinds = [(e["record"]["type"], e["record"].get("request_id")) for e in entries]
    assert kinds == [
        ("fit", None),
        ("bound", None),  # the weights the fit trained, bound to their keys
        ("pending", "ticket-1"),
        ("committed", "ticket-1"),
        ("purge", None),  # the checkpoints trained on a were listed, then removed
        ("purged", None),
        ("pending", "req-00001"),
        ("committed", "req-00001"),  # nothing new deleted: nothing to purge
    ]
    assert entries[2]["record"]["ids"] == [a] and entries[3]["record"]["seconds"] > 0
    with pytest.raises(uk.ForgetSpecError, match="already in the ledger"):
        sisa.delete([a], executor="serial", request_id="ticket-1")
    assert sisa.ledger.verify(expected_head=sisa.state["ledger_head"]).ok


def test_an_emptied_shard_leaves_the_ensemble(sisa):
    gone = sisa.plan.shard_ids(2)
    report = sisa.delete(gone, executor="serial", progress=False)
    assert report.constituents == 2 and len(sisa.ensemble().members) == 2
    assert sisa.selection()[2].key is None and report.accuracy > 75
    assert audit(sisa).ok
