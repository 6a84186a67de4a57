"""S3T: slices train disjoint parameter groups; a deletion deactivates groups instead of retraining, and
inference never uses a group trained on a deleted slice."""

from __future__ import annotations

import shutil

import pytest
import torch

import unlearnkit as uk
from unlearnkit.exact import S3T, ModelSpec, ShardedModel, audit, layer_groups
from unlearnkit.exact.s3t import group_state_names

RECIPE = uk.Recipe(epochs=8, lr=0.05, batch_size=32, schedule="cosine")


def spec(digits) -> ModelSpec:
    return ModelSpec("mlp", digits.input_shape, 10, {"hidden": [48, 32]})  # 3 linear layers = 3 groups


@pytest.fixture(scope="session")
def s3t_dir(digits, tmp_path_factory):
    folder = tmp_path_factory.mktemp("exact") / "s3t"
    ShardedModel.fit(
        folder,
        digits.train,
        S3T(shards=2, slices=3),
        model=spec(digits),
        recipe=RECIPE,
        test=digits.test,
        executor="serial",
        progress=False,
    )
    return folder


@pytest.fixture
def s3t(s3t_dir, digits, tmp_path) -> ShardedModel:
    shutil.copytree(s3t_dir, tmp_path / "m")
    return ShardedModel.open(tmp_path / "m", data=digits.train, test=digits.test)


def test_orders_are_cyclic_rotations_and_groups_go_top_first(digits):
    assert S3T(slices=3).orders() == [[0, 1, 2], [1, 2, 0], [2, 0, 1]]
    assert S3T(slices=4, sequences=2).orders() == [[0, 1, 2, 3], [2, 3, 0, 1]]
    model = spec(digits).build(0)
    assert layer_groups(model, 3) == [["classifier"], ["features.3"], ["features.1"]]
    with pytest.raises(uk.ModelError, match="fewer slices or a deeper model"):
        layer_groups(model, 4)
    with pytest.raises(uk.ConfigError):
        S3T(slices=3, sequences=4)


def test_a_step_changes_only_its_parameter_group(digits):
    model = uk.create_model("cnn", digits.input_shape, 10, width=4, hidden=16)  # has BatchNorm buffers
    scheme = S3T(shards=1, slices=3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    quick = uk.Recipe(epochs=1, lr=0.05, batch_size=50)
    _, names = scheme.train_step(model, digits.train.subset(range(100)), 1, quick, seed=0)
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and changed <= set(names)
    assert names == group_state_names(model, layer_groups(model, 3)[1])


def test_s3t_predicts_well_and_deletion_deactivates_without_retraining(s3t):
    assert s3t.accuracy() > 80
    assert all(s.depth == 3 for s in s3t.selection())
    target = s3t.plan.shards[1][1][0]  # shard 1, slice 1
    rep = s3t.delete([target], executor="serial", progress=False)
    row = rep.shards[0]
    assert row["shard"] == 1 and row["retrained_steps"] == [] and row["retrain_seconds"] == 0
    # the order that sees slice 1 last keeps a depth-2 prefix; only its last group is deactivated
    assert row["depth_after"] == 2 and row["order"] == [2, 0, 1]
    assert row["deactivated_groups"] == [["features.1"]]
    assert rep.accuracy > 75
    sel = s3t.selection()[1]
    assert sel.depth == 2 and s3t.scheme.orders()[sel.order] == [2, 0, 1]


def test_inference_never_uses_a_group_trained_on_a_deleted_slice(s3t):
    ids = [s3t.plan.shards[0][0][0], s3t.plan.shards[0][2][0], s3t.plan.shards[1][2][1]]
    s3t.delete(ids, executor="serial", evaluate=False, progress=False)
    report = audit(s3t)
    assert report.ok
    used = [c for c in report.constituents if c.key is not None]
    assert all(c.inactive_groups_at_init for c in used)
    # check the groups by hand: every group after the surviving prefix holds its untrained values
    for sel in s3t.selection():
        model = s3t.constituent(sel)
        init = s3t.spec.build(0)
        s3t.store.get(s3t.state["roots"][sel.shard], init)
        groups = layer_groups(model, 3)
        history = {i for sl in s3t.store.meta(sel.key)["history"] for i in sl}
        assert not history & set(ids)
        for pos in range(sel.depth, 3):
            for name in group_state_names(model, groups[pos]):
                assert torch.equal(model.state_dict()[name], init.state_dict()[name])


def test_shard_is_retrained_when_no_prefix_survives(s3t):
    # one id from every slice of shard 0 kills every order at its first step
    ids = [s3t.plan.shards[0][r][0] for r in range(3)]
    rep = s3t.delete(ids, executor="serial", evaluate=False, progress=False)
    row = rep.shards[0]
    assert row["retrained_steps"] == [1, 2, 3] and row["depth_after"] == 3
    assert audit(s3t).ok
