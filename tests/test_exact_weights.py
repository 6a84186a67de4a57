"""The weights in use are bound to the ledger: copying pre-deletion weights over a checkpoint fails the audit."""

from __future__ import annotations

import shutil

import pytest

from unlearnkit.cli import main
from unlearnkit.exact import ShardedModel
from unlearnkit.exact.weights import check_weights

pytest.importorskip("cryptography")


@pytest.fixture(scope="module")
def signed(tmp_path_factory):
    """A SISA model with one signed deletion from slice 1 of shard 0, and the weights in use before it."""
    root = tmp_path_factory.mktemp("weights")
    out = root / "m"
    args = ["exact-train", "--dataset", "digits", "--train-subset", "200", "--model-kw", "hidden=[8]"]
    args += ["--shards", "2", "--slices", "2", "--epochs", "2", "--lr", "0.1", "--executor", "serial"]
    assert main([*args, "--out", str(out), "--no-progress"]) == 0
    key = root / "owner.pem"
    assert main(["keygen", "--out", str(key)]) == 0
    sm = ShardedModel.open(out)
    # the weights in use before the deletion, kept aside (a store may purge checkpoints of deleted ids)
    old = root / "before.safetensors"
    shutil.copy(out / "store" / sm.selection()[0].key / "model.safetensors", old)
    (root / "req.txt").write_text(f"{sm.plan.shards[0][1][0]}\n")
    cmd = ["delete", "--model", str(out), "--ids", str(root / "req.txt"), "--request-id", "alice"]
    assert main([*cmd, "--executor", "serial", "--no-progress", "--signing-key", str(key)]) == 0
    return out, key, old


@pytest.fixture
def folder(signed, tmp_path):
    out, key, old = signed
    shutil.copytree(out, tmp_path / "m")
    return tmp_path / "m", str(key) + ".pub", old


def _verify_cert(folder, pub):
    return main(
        [
            "certificate",
            "verify",
            str(folder / "certificates" / "alice.json"),
            "--public-key",
            pub,
            "--model",
            str(folder),
        ]
    )


def test_committed_entry_records_the_digest_of_every_weights_file_in_use(folder):
    m, _, _ = folder
    sm = ShardedModel.open(m)
    rec = _last_committed(sm)
    assert rec["type"] == "committed" and rec["keys_after"] == [s.key for s in sm.selection()]
    assert rec["weights_after"] == sm.weights_digests() and all(rec["weights_after"])
    assert check_weights(sm).ok and check_weights(sm).unbound == []


def test_untouched_model_passes_audit_and_certificate_check(folder, capsys):
    m, pub, _ = folder
    assert main(["exact-audit", "--model", str(m), "--public-key", pub]) == 0
    assert _verify_cert(m, pub) == 0
    assert "valid (ok)" in capsys.readouterr().out


def test_pre_deletion_weights_copied_over_the_checkpoint_in_use_fail_naming_the_shard(folder, capsys):
    m, pub, old = folder
    in_use = m / "store" / ShardedModel.open(m).selection()[0].key / "model.safetensors"
    assert in_use.read_bytes() != old.read_bytes()
    shutil.copy(old, in_use)
    # the ledger, its signed head and the keys are untouched: only the weights give it away
    assert main(["ledger", "verify", "--model", str(m), "--public-key", pub, "--strict"]) == 0
    capsys.readouterr()
    assert main(["exact-audit", "--model", str(m), "--public-key", pub]) == 1
    out = capsys.readouterr().out
    bad = [line for line in out.splitlines() if "differ from the digest bound" in line]
    assert len(bad) == 1 and bad[0].strip().startswith("shard 0:"), out
    assert "exact: NO" in out
    assert _verify_cert(m, pub) == 1
    out = capsys.readouterr().out
    assert "INVALID (shard 0: weights of checkpoint" in out and "model_after" in out


def test_certificate_checked_against_a_missing_model_folder_is_an_input_error(folder, tmp_path, capsys):
    m, pub, _ = folder
    cert = str(m / "certificates" / "alice.json")
    assert main(["certificate", "verify", cert, "--public-key", pub, "--model", str(tmp_path / "nope")]) == 2
    out, err = capsys.readouterr()
    assert "INVALID" not in out and len(err.strip().splitlines()) == 1 and "nope" in err


def test_a_missing_certificate_file_is_an_input_error_not_a_verdict(folder, tmp_path, capsys):
    m, pub, _ = folder
    missing = str(tmp_path / "nonexist.json")
    assert main(["ledger", "verify", "--model", str(m), "--certificate", missing]) == 2
    out, err = capsys.readouterr()
    assert "TAMPERED" not in out and len(err.strip().splitlines()) == 1 and "nonexist.json" in err
    assert main(["certificate", "verify", missing, "--public-key", pub]) == 2
    out, err = capsys.readouterr()
    assert "INVALID" not in out and "nonexist.json" in err


def test_a_ledger_without_per_shard_digests_is_checked_against_model_after(signed, tmp_path, monkeypatch, capsys):
    """Entries written before ``weights_after`` existed: the whole model is compared with ``model_after``."""
    from dataclasses import asdict

    from unlearnkit.exact import sharded

    out, _, _ = signed
    m = tmp_path / "legacy"
    shutil.copytree(out, m)
    sm = ShardedModel.open(m)
    before = (m / "store" / sm.selection()[1].key / "model.safetensors").read_bytes()
    legacy = lambda self: {k: v for k, v in asdict(self).items() if k != "weights_after"}  # noqa: E731
    monkeypatch.setattr(sharded.DeletionReport, "to_dict", legacy)
    sm.delete([sm.plan.shards[1][1][0]], executor="serial", progress=False, request_id="bob")
    monkeypatch.undo()
    assert "weights_after" not in _last_committed(ShardedModel.open(m))
    assert main(["exact-audit", "--model", str(m)]) == 0
    (m / "store" / ShardedModel.open(m).selection()[1].key / "model.safetensors").write_bytes(before)
    capsys.readouterr()
    assert main(["exact-audit", "--model", str(m)]) == 1
    assert "do not hash to model_after bound in ledger entry" in capsys.readouterr().out


def _last_committed(sm) -> dict:
    """The record of the ledger's last committed deletion (purge entries follow it)."""
    return [e["record"] for e in sm.ledger.entries() if e["record"].get("type") == "committed"][-1]
