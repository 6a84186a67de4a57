"""Training outside a deletion binds its weights: S3T background retraining, ``resume`` and a fresh
``exact-train`` append a ``bound`` ledger entry, and a constituent in use that no binding explains fails."""

from __future__ import annotations

import shutil

import pytest

from unlearnkit.cli import main
from unlearnkit.exact import ShardedModel

from .conftest import exact_audit

TRAIN = ["--dataset", "digits", "--train-subset", "120", "--model-kw", "hidden=[8]", "--epochs", "1"]
TRAIN += ["--lr", "0.1", "--executor", "serial", "--no-progress"]


@pytest.fixture(scope="module")
def retrained(tmp_path_factory):
    """S3T with two slice orders per shard and min depth 2, after a background deletion from slice 0 of
    shard 0 (both orders of shard 0 fall below min depth and are retrained in the background)."""
    root = tmp_path_factory.mktemp("bound")
    out = root / "m"
    args = ["exact-train", "--scheme", "s3t", "--shards", "2", "--slices", "2", "--sequences", "2"]
    assert main([*args, "--min-depth", "2", *TRAIN, "--out", str(out)]) == 0
    fresh = root / "fresh"
    shutil.copytree(out, fresh)
    sm = ShardedModel.open(out)
    old = root / "before.safetensors"
    shutil.copy(out / "store" / sm.selection()[0].key / "model.safetensors", old)
    (root / "req.txt").write_text(f"{sm.plan.shards[0][0][0]}\n")
    cmd = ["delete", "--model", str(out), "--ids", str(root / "req.txt"), "--executor", "serial", "--no-progress"]
    assert main([*cmd, "--background"]) == 0
    return out, fresh, old


@pytest.fixture
def folder(retrained, tmp_path):
    out, _, old = retrained
    shutil.copytree(out, tmp_path / "m")
    return tmp_path / "m", old


def _last_binding(sm):
    return [e["record"] for e in sm.ledger.entries() if e["record"].get("type") in ("committed", "bound")][-1]


def test_background_retraining_appends_a_bound_entry_for_the_weights_in_use(folder, capsys):
    m, _ = folder
    sm = ShardedModel.open(m)
    rec = _last_binding(sm)
    assert rec["type"] == "bound" and rec["keys_after"] == [s.key for s in sm.selection()]
    assert rec["weights_after"] == sm.weights_digests()
    assert main(["ledger", "verify", "--model", str(m)]) == 0
    rc, out = exact_audit(m, capsys)
    assert rc == 0 and "exact: yes" in out


def test_other_weights_copied_over_a_background_retrained_checkpoint_fail_the_audit(folder, capsys):
    m, old = folder
    in_use = m / "store" / ShardedModel.open(m).selection()[0].key / "model.safetensors"
    shutil.copy(old, in_use)
    rc, out = exact_audit(m, capsys)
    assert rc == 1 and "exact: NO" in out
    bad = [line.strip() for line in out.splitlines() if "differ from the digest bound" in line]
    assert len(bad) == 1 and bad[0].startswith("shard 0:")  # only the shard that differs is named
    assert "backup" in bad[0] and "unlearnkit resume" not in bad[0]
    assert [line.strip() for line in out.splitlines() if line.strip().startswith("shard 1:")][0].endswith(" ok")


def test_a_checkpoint_in_use_that_no_binding_names_fails_naming_the_shard(folder, capsys):
    m, old = folder
    sm = ShardedModel.open(m)
    bound = sm.selection()[0]
    shutil.rmtree(m / "store" / bound.key)  # the shard falls back to its other slice order
    now = ShardedModel.open(m).selection()[0]
    assert now.key is not None and now.key != bound.key
    shutil.copy(old, m / "store" / now.key / "model.safetensors")
    rc, out = exact_audit(m, capsys)
    assert rc == 1
    bad = [line.strip() for line in out.splitlines() if "no ledger record explains" in line]
    assert len(bad) == 1 and bad[0].startswith("shard 0:")


def test_fresh_exact_train_binds_its_weights(retrained, tmp_path, capsys):
    _, fresh, _ = retrained
    m = tmp_path / "fresh"
    shutil.copytree(fresh, m)
    sm = ShardedModel.open(m)
    rec = _last_binding(sm)
    assert rec["type"] == "bound" and rec["keys_after"] == [s.key for s in sm.selection()]
    sels = sm.selection()
    src = m / "store" / sels[1].key / "model.safetensors"
    shutil.copy(src, m / "store" / sels[0].key / "model.safetensors")
    rc, out = exact_audit(m, capsys)
    assert rc == 1 and "shard 0:" in out and "differ from the digest bound" in out


def test_resume_binds_the_weights_of_interrupted_background_retraining(retrained, tmp_path, monkeypatch, capsys):
    from unlearnkit.exact import sharded

    _, fresh, _ = retrained
    m = tmp_path / "m"
    shutil.copytree(fresh, m)
    sm = ShardedModel.open(m)
    (tmp_path / "req.txt").write_text(f"{sm.plan.shards[0][0][0]}\n")
    monkeypatch.setattr(sharded._Background, "run", lambda self: None)  # the process stops before retraining
    cmd = ["delete", "--model", str(m), "--ids", str(tmp_path / "req.txt"), "--executor", "serial"]
    assert main([*cmd, "--no-progress", "--background"]) == 0
    monkeypatch.undo()
    assert main(["resume", "--model", str(m), "--executor", "serial", "--no-progress"]) == 0
    sm = ShardedModel.open(m)
    rec = _last_binding(sm)
    assert rec["type"] == "bound" and rec["keys_after"] == [s.key for s in sm.selection()]
    assert rec["weights_after"] == sm.weights_digests()
    rc, out = exact_audit(m, capsys)
    assert rc == 0
