"""S3T: slices train disjoint parameter groups; a deletion deactivates groups instead of retraining, and
inference never uses a group trained on a deleted slice."""

from __future__ import annotations

import shutil

import pytest
import torch

import unlearnkit as uk
from unlearnkit.exact import S3T, ModelSpec, ShardedModel, audit, layer_groups
from unlearnkit.exact.s3t import ADAPTER, group_state_names

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


# ---- the paper's setting: LoRA adapters over a frozen backbone pre-trained on a non-deletable split ----------
PUBLIC = list(range(0, 1437, 4))  # a quarter of digits' training rows, declared non-deletable


@pytest.fixture(scope="session")
def lora_dir(digits, tmp_path_factory):
    folder = tmp_path_factory.mktemp("exact") / "s3t-lora"
    ShardedModel.fit(
        folder,
        digits.train,
        S3T(shards=2, slices=3, backbone=True, rank=4),
        model=spec(digits),
        recipe=RECIPE,
        test=digits.test,
        executor="serial",
        progress=False,
        protected=PUBLIC,
    )
    return folder


@pytest.fixture
def lora(lora_dir, digits, tmp_path) -> ShardedModel:
    shutil.copytree(lora_dir, tmp_path / "m")
    return ShardedModel.open(tmp_path / "m", data=digits.train, test=digits.test)


def test_adapters_train_over_a_frozen_backbone_and_fall_back_to_it(lora, digits):
    assert lora.plan.all_ids().isdisjoint(PUBLIC)  # the backbone's split is never sharded
    backbone = lora.spec.build(0)
    lora.store.get(lora.state["backbone"], backbone)
    backbone.eval()
    sel = lora.selection()[0]
    assert sel.depth == 3
    trained = lora.constituent(sel)
    sd = trained.state_dict()
    # every base weight is bit-for-bit the backbone's; only adapters were trained
    for name, value in backbone.state_dict().items():
        owner, _, leaf = name.rpartition(".")
        assert torch.equal(sd[f"{owner}.base_layer.{leaf}"], value), name
    assert any(k.endswith(f"lora_B.{ADAPTER}.weight") and sd[k].abs().sum() > 0 for k in sd)
    # the shard's root (all adapters off) computes exactly the backbone's function
    root = lora.constituent(type(sel)(0, 0, 0, lora.state["roots"][0]))
    x = digits.test.x[:64]
    assert torch.equal(root(x), backbone(x))
    with pytest.raises(uk.ForgetSpecError, match="non-deletable"):
        lora.delete([PUBLIC[3]], executor="serial")


def test_lora_deletion_deactivates_adapters_and_keeps_accuracy(lora):
    acc0 = lora.accuracy()
    ids = [lora.plan.shards[s][r][0] for s in range(2) for r in range(2)]  # slices 0 and 1 of both shards
    rep = lora.delete(ids, executor="serial", progress=False)
    assert all(r["retrained_steps"] == [] for r in rep.shards)  # deactivation only
    assert all(0 < r["depth_after"] < 3 for r in rep.shards)
    report = audit(lora)
    assert report.ok and all(c.inactive_groups_at_init for c in report.constituents)
    assert rep.accuracy > acc0 - 3


def test_background_retraining_when_min_depth_is_reached(lora):
    ids = [lora.plan.shards[0][r][0] for r in range(3)]  # every order of shard 0 dies at its first step
    rep = lora.delete(ids, executor="serial", progress=False, background=True)
    row = rep.shards[0]
    assert row["retrained_steps"] == [] and row["depth_after"] == 0
    assert lora.selection()[0].key == lora.state["roots"][0] or lora.selection()[0].depth > 0  # backbone meanwhile
    assert audit(lora).ok
    results = lora.wait()
    assert sorted(st for r in results if r.shard == 0 for st in r.trained_steps)[:3] == [1, 1, 1]
    assert lora.selection()[0].depth == 3 and audit(lora).ok


def test_adapters_are_peft_named_adapters_drawn_as_one_kaiming_stream():
    """S3T's groups are peft's LoRA layers (``peft/tuners/lora/layer.py``, ``Linear`` and ``Conv2d``) with the
    named adapter ``s3t``; ``A`` comes from the global generator, layer after layer, exactly as a plain
    Kaiming-uniform stream (so whatever peft draws while building its layers changes no number), ``B`` is zero,
    and the branch computes ``base(x) + (alpha / rank) · B A x``."""
    import math

    peft = pytest.importorskip("peft")
    from torch import nn

    from unlearnkit.exact.s3t import attach_adapters

    net = nn.Sequential(nn.Conv2d(3, 4, 3, stride=2, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 3 * 3, 5))
    base = __import__("copy").deepcopy(net)
    torch.manual_seed(1)
    assert attach_adapters(net, rank=2, alpha=6) == ["0", "3"]
    after = torch.rand(3)
    torch.manual_seed(1)
    want = [nn.init.kaiming_uniform_(torch.empty(shape), a=math.sqrt(5)) for shape in ((2, 3, 3, 3), (2, 36))]
    assert torch.equal(after, torch.rand(3))  # the generator is where the plain stream leaves it
    for name, a in zip(("0", "3"), want):
        layer = net.get_submodule(name)
        assert isinstance(layer, peft.tuners.lora.LoraLayer) and layer.active_adapters == [ADAPTER]
        assert torch.equal(layer.lora_A[ADAPTER].weight, a) and not layer.lora_B[ADAPTER].weight.any()
        assert not layer.base_layer.weight.requires_grad
    x = torch.randn(7, 3, 6, 6)
    assert torch.equal(net(x), base(x))  # B = 0: the backbone's function, bit for bit
    with torch.no_grad():
        for name in ("0", "3"):
            net.get_submodule(name).lora_B[ADAPTER].weight.normal_()
    conv, lin = net.get_submodule("0"), net.get_submodule("3")
    h = (
        base[0](x)
        + nn.functional.conv2d(
            nn.functional.conv2d(x, conv.lora_A[ADAPTER].weight, None, 2, 1), conv.lora_B[ADAPTER].weight
        )
        * 3.0
    )
    h = base[2](base[1](h))
    want_out = base[3](h) + h @ lin.lora_A[ADAPTER].weight.t() @ lin.lora_B[ADAPTER].weight.t() * 3.0
    assert torch.allclose(net(x), want_out, atol=1e-5)
