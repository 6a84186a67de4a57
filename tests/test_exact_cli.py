"""The exact-unlearning commands: train, delete with a ledger record, verify the ledger, audit."""

from __future__ import annotations

import json

import pytest

from unlearnkit.cli import main
from unlearnkit.exact import ShardedModel


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "sisa"
    prior = [0.0] * 1437  # digits' training set; ids 4, 8 and 15 are likely to be deleted
    for i in (4, 8, 15):
        prior[i] = 1.0
    prior_file = out.parent / "prior.json"
    prior_file.write_text(json.dumps(prior))
    code = main(
        [
            "exact-train",
            "--prior",
            str(prior_file),
            "--dataset",
            "digits",
            "--model-kw",
            "hidden=[32]",
            "--shards",
            "2",
            "--slices",
            "2",
            "--epochs",
            "6",
            "--lr",
            "0.1",
            "--executor",
            "serial",
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    assert code == 0
    return out


def test_delete_verify_and_audit(trained, tmp_path, capsys):
    ids = tmp_path / "ids.txt"
    ids.write_text("4 8 15\n")
    assert main(["delete", "--model", str(trained), "--ids", str(ids), "--executor", "serial", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "deleted 3 ids" in out and "test accuracy" in out
    sm = ShardedModel.open(trained)
    assert {4, 8, 15} <= sm.deleted
    record = [e["record"] for e in sm.ledger.entries() if e["record"]["type"] == "committed"][-1]
    assert record["ids"] == [4, 8, 15]
    # the prior grouped the likely ids into one shard's last slice: one shard, one step retrained
    assert [(r["shard"], r["slices"], r["retrained_steps"]) for r in record["shards"]] == [(0, [1], [2])]

    assert main(["ledger", "verify", "--model", str(trained)]) == 0
    assert main(["exact-audit", "--model", str(trained)]) == 0
    assert "exact: yes" in capsys.readouterr().out

    # tamper with the ledger: change which ids a request deleted
    ledger = trained / "ledger.jsonl"
    lines = ledger.read_text().splitlines()
    at = max(n for n, line in enumerate(lines) if json.loads(line)["record"]["type"] == "committed")
    entry = json.loads(lines[at])
    entry["record"]["ids"] = [4]
    ledger.write_text("\n".join([*lines[:at], json.dumps(entry), *lines[at + 1 :]]) + "\n")
    assert main(["ledger", "verify", "--model", str(trained)]) == 1
    assert "TAMPERED" in capsys.readouterr().out
    assert main(["delete", "--model", str(trained), "--ids", str(ids), "--executor", "serial"]) == 2
    assert "does not verify" in capsys.readouterr().err
    ledger.write_text("\n".join(lines) + "\n")
    assert main(["ledger", "verify", "--model", str(trained)]) == 0


def test_bad_ids_file_says_how_to_fix(trained, tmp_path, capsys):
    bad = tmp_path / "bad.txt"
    bad.write_text("3 100000\n")
    assert main(["delete", "--model", str(trained), "--ids", str(bad), "--executor", "serial"]) == 2
    assert "out of range" in capsys.readouterr().err


def test_a_failed_exact_train_leaves_no_folder_and_a_rerun_works(tmp_path, capsys, monkeypatch):
    import errno

    base = ["exact-train", "--dataset", "digits", "--train-subset", "100", "--model-kw", "hidden=[8]"]
    base += ["--slices", "1", "--epochs", "1", "--executor", "serial", "--no-progress"]
    out = tmp_path / "ex"
    assert main([*base, "--shards", "300", "--out", str(out)]) == 2  # more shards than examples
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert not out.exists() and list(tmp_path.iterdir()) == []

    def full(*args, **kwargs):
        raise OSError(errno.EFBIG, "File too large")

    monkeypatch.setattr(ShardedModel, "_train", full)
    assert main([*base, "--shards", "2", "--out", str(out)]) == 2  # the disk filled up mid-training
    assert not out.exists() and list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    assert main([*base, "--shards", "2", "--out", str(out)]) == 0
    assert (out / "exact.json").is_file() and ShardedModel.open(out, recover=False).problem == ""
