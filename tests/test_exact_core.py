"""Exact unlearning building blocks: shard plans, index-history keys, the ledger and the ensemble."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

import unlearnkit as uk
from unlearnkit.exact import Ledger, ShardEnsemble, chain_keys, make_plan
from unlearnkit.metrics.evaluate import TASK_METRICS


def test_plan_is_a_partition_into_shards_and_slices():
    plan = make_plan(range(103), shards=5, slices=4, seed=1)
    assert plan.num_shards == 5 and plan.num_slices == 4
    ids = [i for shard in plan.shards for sl in shard for i in sl]
    assert sorted(ids) == list(range(103))  # disjoint and complete
    assert max(len(plan.shard_ids(s)) for s in range(5)) - min(len(plan.shard_ids(s)) for s in range(5)) <= 1
    assert plan.locate([7])[7][0] in range(5)
    with pytest.raises(uk.ConfigError, match="fewer shards"):
        make_plan(range(10), shards=5, slices=4)


def test_prior_groups_likely_requests_into_few_shards_and_last_slices():
    prior = np.zeros(200)
    likely = np.arange(0, 200, 5)  # 40 ids with a high request likelihood
    prior[likely] = 1.0
    plan = make_plan(range(200), shards=5, slices=4, seed=0, prior=prior)
    where = plan.locate(likely.tolist())
    assert {s for s, _ in where.values()} == {0}  # all in one shard (40 = one shard's size)
    uniform = make_plan(range(200), shards=5, slices=4, seed=0)
    assert len({s for s, _ in uniform.locate(likely.tolist()).values()}) > 1


def test_prior_puts_likely_ids_in_the_last_slices():
    prior = np.zeros(100)
    prior[:5] = 1.0
    plan = make_plan(range(100), shards=2, slices=4, seed=0, prior=prior)
    assert {r for _, r in plan.locate(range(5)).values()} == {3}


def test_chain_keys_hash_the_exact_index_history():
    history = [[1, 2], [3, 4], [5, 6]]
    keys = chain_keys("r" * 64, history)
    assert keys == chain_keys("r" * 64, [[2, 1], [4, 3], [6, 5]])  # a slice is a set
    changed = chain_keys("r" * 64, [[1, 2], [3], [5, 6]])
    assert changed[0] == keys[0] and changed[1] != keys[1] and changed[2] != keys[2]
    assert chain_keys("s" * 64, history)[0] != keys[0]


def test_ledger_chain_detects_edits_and_truncation(tmp_path):
    led = Ledger(tmp_path / "ledger.jsonl")
    for i in range(3):
        entry = led.append({"ids": [i], "seconds": 0.1})
    check = led.verify(expected_head=entry["hash"])
    assert check.ok and check.entries == 3
    assert led.deleted_ids() == {0, 1, 2}

    lines = led.path.read_text().splitlines()
    tampered = json.loads(lines[1])
    tampered["record"]["ids"] = [99]
    (tmp_path / "edit.jsonl").write_text("\n".join([lines[0], json.dumps(tampered), lines[2]]) + "\n")
    bad = Ledger(tmp_path / "edit.jsonl").verify()
    assert not bad.ok and bad.line == 2 and "modified" in bad.problem
    with pytest.raises(uk.CheckpointError, match="fails verification"):
        Ledger(tmp_path / "edit.jsonl").append({"ids": [5]})

    (tmp_path / "cut.jsonl").write_text("\n".join(lines[:2]) + "\n")
    assert Ledger(tmp_path / "cut.jsonl").verify().ok  # a prefix is a valid chain ...
    assert not Ledger(tmp_path / "cut.jsonl").verify(expected_head=entry["hash"]).ok  # ... but not the head

    (tmp_path / "swap.jsonl").write_text("\n".join([lines[1], lines[0], lines[2]]) + "\n")
    assert not Ledger(tmp_path / "swap.jsonl").verify().ok


class Fixed(nn.Module):
    def __init__(self, logits: list[float]) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))
        self.out = torch.tensor(logits)

    def forward(self, x):
        return self.out.expand(x.shape[0], -1) + 0 * self.w


def test_ensemble_vote_and_softmax_aggregate_differently():
    # two members mildly prefer class 0, one strongly prefers class 1
    members = [Fixed([1.0, 0.0]), Fixed([1.0, 0.0]), Fixed([0.0, 9.0])]
    x = torch.zeros(4, 3)
    vote = ShardEnsemble(members, "vote")(x)
    soft = ShardEnsemble(members, "softmax")(x)
    assert (vote.argmax(1) == 0).all()  # majority
    assert (ShardEnsemble(members, "vote").predict(x) == 0).all()
    assert (soft.argmax(1) == 1).all()  # mean probability
    assert torch.allclose(torch.softmax(soft, 1).sum(1), torch.ones(4))
    with pytest.raises(uk.ConfigError):
        ShardEnsemble(members, "median")
    with pytest.raises(uk.ModelError):
        ShardEnsemble([], "vote")


def test_ensemble_is_an_ordinary_model_for_metrics(digits):
    torch.manual_seed(0)
    members = [uk.create_model("mlp", digits.input_shape, 10, hidden=[16]) for _ in range(3)]
    for m in members:
        uk.train_model(m, digits.train.subset(range(0, 300)), uk.Recipe(epochs=5, lr=0.1), progress=False)
    ens = ShardEnsemble(members, "softmax")
    retain = digits.train.subset(range(2, 300))
    ev = uk.evaluate(ens, forget=digits.train.subset([0, 1]), retain=retain, test=digits.test)
    assert ev.ta > 60
    metrics = TASK_METRICS["classification"](ens, digits.train.subset([0, 1]), retain, digits.test, True)
    assert metrics["ta"] == pytest.approx(ev.ta)
