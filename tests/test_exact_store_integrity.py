"""The purge check and the audit vouch for every stored checkpoint: damaged metadata is one project error,
a checkpoint whose history was edited, a folder without meta.json or a purged key put back fail the audit."""

from __future__ import annotations

import json
import shutil

import pytest

from unlearnkit.cli import main
from unlearnkit.exact import ShardedModel

from .conftest import exact_audit


@pytest.fixture(scope="module")
def deleted(tmp_path_factory):
    """A SISA model after one deletion from slice 0 of shard 0 (so the purge removed checkpoints), and a copy
    of the store from before it."""
    root = tmp_path_factory.mktemp("integrity")
    out = root / "m"
    args = ["exact-train", "--dataset", "digits", "--train-subset", "120", "--model-kw", "hidden=[8]"]
    args += ["--shards", "2", "--slices", "2", "--epochs", "1", "--lr", "0.1", "--executor", "serial"]
    assert main([*args, "--out", str(out), "--no-progress"]) == 0
    shutil.copytree(out / "store", root / "before")
    sm = ShardedModel.open(out)
    (root / "req.txt").write_text(f"{sm.plan.shards[0][0][0]}\n")
    cmd = ["delete", "--model", str(out), "--ids", str(root / "req.txt"), "--executor", "serial", "--no-progress"]
    assert main(cmd) == 0
    return out, root / "before"


@pytest.fixture
def folder(deleted, tmp_path):
    out, before = deleted
    shutil.copytree(out, tmp_path / "m")
    return tmp_path / "m", before


def _purged_keys(m):
    sm = ShardedModel.open(m)
    return sorted({k for e in sm.ledger.entries() if e["record"].get("type") == "purged" for k in e["record"]["keys"]})


def _unused_key(m):
    sm = ShardedModel.open(m)
    used = {s.key for s in sm.selection()}
    return next(k for k in sm.store.stored_keys() if k not in used)


@pytest.mark.parametrize("history", [[["x"]], 5, [[None]]])
def test_damaged_history_of_a_checkpoint_not_in_use_is_one_checkpoint_error(folder, capsys, history):
    m, _ = folder
    key = _unused_key(m)
    meta = m / "store" / key / "meta.json"
    meta.write_text(json.dumps({**json.loads(meta.read_text()), "history": history}))
    capsys.readouterr()
    assert main(["exact-audit", "--model", str(m)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and key[:12] in err and "remove that folder" in err
    assert "Traceback" not in err


def test_untouched_model_passes_the_audit(folder, capsys):
    m, _ = folder
    assert _purged_keys(m)
    rc, out = exact_audit(m, capsys)
    assert rc == 0 and "exact: yes" in out


def test_purged_checkpoint_put_back_with_its_history_stripped_fails_the_audit(folder, capsys):
    m, before = folder
    sm = ShardedModel.open(m)
    key = _purged_keys(m)[0]
    shutil.copytree(before / key, m / "store" / key)
    meta = m / "store" / key / "meta.json"
    doc = json.loads(meta.read_text())
    doc["history"] = [[i for i in sl if i not in sm.deleted] for sl in doc["history"]]
    meta.write_text(json.dumps(doc))
    assert sm.stale_checkpoints() == {}  # the history alone no longer gives it away
    rc, out = exact_audit(m, capsys)
    assert rc == 1 and "exact: NO" in out and key[:12] in out and "stored again" in out


def test_edited_history_of_a_checkpoint_fails_the_audit(folder, capsys):
    m, _ = folder
    key = _unused_key(m)
    meta = m / "store" / key / "meta.json"
    doc = json.loads(meta.read_text())
    doc["history"] = [*doc["history"], [0]]
    meta.write_text(json.dumps(doc))
    rc, out = exact_audit(m, capsys)
    assert rc == 1 and key[:12] in out and "does not hash" in out


def test_weights_put_back_without_meta_json_fail_the_audit(folder, capsys):
    m, before = folder
    key = _purged_keys(m)[0]
    (m / "store" / key).mkdir()
    shutil.copy(before / key / "model.safetensors", m / "store" / key / "model.safetensors")
    rc, out = exact_audit(m, capsys)
    assert rc == 1 and key[:12] in out
    # a folder of weights under a key no purge names, without meta.json, fails as well
    shutil.rmtree(m / "store" / key)
    other = "f" * 64
    (m / "store" / other).mkdir()
    shutil.copy(before / key / "model.safetensors", m / "store" / other / "model.safetensors")
    rc, out = exact_audit(m, capsys)
    assert rc == 1 and "no meta.json" in out


def test_purge_removes_a_purged_checkpoint_put_back_even_with_its_history_stripped(folder):
    m, before = folder
    key = _purged_keys(m)[0]
    shutil.copytree(before / key, m / "store" / key)
    sm = ShardedModel.open(m)
    meta = m / "store" / key / "meta.json"
    doc = json.loads(meta.read_text())
    doc["history"] = [[i for i in sl if i not in sm.deleted] for sl in doc["history"]]
    meta.write_text(json.dumps(doc))
    assert key in sm.purge() and not (m / "store" / key).exists()
