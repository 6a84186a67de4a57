"""S3T background retraining from the command line: `delete --background`, finished by `resume` if cut short."""

from __future__ import annotations

import shutil

import pytest

from unlearnkit.cli import main
from unlearnkit.exact import ShardedModel, sharded

TRAIN = ["--dataset", "digits", "--train-subset", "200", "--model-kw", "hidden=[8,8]", "--epochs", "2"]
TRAIN += ["--lr", "0.1", "--executor", "serial", "--no-progress"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("bg") / "s3t"
    # one slice order per shard and min depth = slices: any deletion leaves shard 0 below min depth
    args = ["exact-train", "--scheme", "s3t", "--shards", "2", "--slices", "2", "--sequences", "1"]
    assert main([*args, "--min-depth", "2", *TRAIN, "--out", str(out)]) == 0
    return out


@pytest.fixture
def model(trained, tmp_path):
    shutil.copytree(trained, tmp_path / "m")
    sm = ShardedModel.open(tmp_path / "m")
    (tmp_path / "req.txt").write_text(f"{sm.plan.shards[0][0][0]}\n")  # slice 0 of shard 0: depth falls to 0
    return tmp_path / "m", tmp_path / "req.txt"


def _delete(folder, req, *extra):
    return main(["delete", "--model", str(folder), "--ids", str(req), "--executor", "serial", "--no-progress", *extra])


def test_delete_background_commits_before_retraining_then_retrains(model, capsys):
    folder, req = model
    assert _delete(folder, req, "--background") == 0
    out = capsys.readouterr().out
    assert out.index("committed; retraining") < out.index("background retraining finished")
    sm = ShardedModel.open(folder)
    row = _last_committed(sm)["shards"][0]
    assert row["shard"] == 0 and row["retrained_steps"] == [] and row["depth_after"] == 0  # committed first
    assert sm.selection()[0].depth == 2  # and the shard was retrained before the command returned
    assert main(["exact-audit", "--model", str(folder)]) == 0


def test_interrupted_background_retraining_is_finished_by_resume(model, monkeypatch, capsys):
    folder, req = model
    monkeypatch.setattr(sharded._Background, "run", lambda self: None)  # the process stops before retraining
    assert _delete(folder, req, "--background") == 0
    assert ShardedModel.open(folder).selection()[0].depth == 0
    monkeypatch.undo()
    assert main(["resume", "--model", str(folder), "--executor", "serial"]) == 0
    assert ShardedModel.open(folder).selection()[0].depth == 2
    assert main(["exact-audit", "--model", str(folder)]) == 0


def test_background_is_refused_for_sisa(tmp_path, capsys):
    out = tmp_path / "sisa"
    args = ["exact-train", "--shards", "2", "--slices", "2", *TRAIN, "--out", str(out)]
    assert main(args) == 0
    (tmp_path / "req.txt").write_text("3\n")
    assert _delete(out, tmp_path / "req.txt", "--background") == 2
    assert "--background belongs to s3t" in capsys.readouterr().err


def _last_committed(sm) -> dict:
    """The record of the ledger's last committed deletion (purge entries follow it)."""
    return [e["record"] for e in sm.ledger.entries() if e["record"].get("type") == "committed"][-1]
