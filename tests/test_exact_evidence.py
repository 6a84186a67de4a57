"""Deletion evidence: ids that are never paths, linear ledger appends, purge of deleted data from every stored
checkpoint, signing repaired by resume, and anchors/certificates that reveal a ledger rolled back."""

from __future__ import annotations

import json
import shutil

import pytest

from unlearnkit.cli import main
from unlearnkit.errors import CheckpointError, ConfigError
from unlearnkit.exact import DeletionRequest, Ledger, ShardedModel, faults
from unlearnkit.exact.certificates import certificate_path, read_head
from unlearnkit.exact.workflow import audit_folder
from unlearnkit.identifiers import check_identifier, file_name

from .conftest import signed_sisa

pytest.importorskip("cryptography")


class Crash(BaseException):
    """Raised by a fault hook: a simulated crash that no ``except Exception`` swallows."""


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return signed_sisa(tmp_path_factory, "evidence", epochs=2)


@pytest.fixture
def model(trained, tmp_path):
    out, key = trained
    shutil.copytree(out, tmp_path / "m")
    return tmp_path / "m", key


def _ids(tmp_path, name, *ids):
    path = tmp_path / f"{name}.txt"
    path.write_text(" ".join(map(str, ids)))
    return str(path)


def _delete(folder, ids_file, *extra):
    return main(["delete", "--model", str(folder), "--ids", ids_file, "--executor", "serial", "--no-progress", *extra])


# ---- identifiers ---------------------------------------------------------------------------------------------
def test_identifier_rule_and_file_names():
    for good in ("alice", "req-00001", "a.b_c-9", "x" * 128):
        assert check_identifier(good) == good and file_name(good, ".json") == good + ".json"
    for bad in ("../../victim/meta", "a/b", "..", ".hidden", "", "x" * 129, "a b", "a\nb", "-rf", "a..b", 5):
        with pytest.raises(ConfigError, match="request id"):
            check_identifier(bad, "request id")
    assert "/" not in file_name("../../victim/meta") and len(file_name("../x")) == 64
    assert certificate_path(__import__("pathlib").Path("/m"), "../../v").parent.name == "certificates"


def test_a_path_or_overlong_request_id_is_refused_before_any_ledger_entry(model, tmp_path, capsys):
    folder, key = model
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "meta.json").write_text("{}")
    before = (folder / "ledger.jsonl").read_bytes()
    ids = _ids(tmp_path, "one", ShardedModel.open(folder).plan.shards[0][0][0])
    rid = str(victim / "meta").replace(str(tmp_path), "../..")
    for bad in (rid, "r" * 300):
        capsys.readouterr()
        assert _delete(folder, ids, "--request-id", bad, "--signing-key", str(key)) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "request id" in err and "Traceback" not in err
    assert (folder / "ledger.jsonl").read_bytes() == before and (victim / "meta.json").read_text() == "{}"
    assert not (folder / "certificates").exists()
    with pytest.raises(ConfigError):
        DeletionRequest([1], "../x")


# ---- linear appends ------------------------------------------------------------------------------------------
def test_append_continues_from_the_verified_tail(tmp_path, monkeypatch):
    ledger = Ledger(tmp_path / "ledger.jsonl")
    for n in range(5):
        ledger.append({"type": "fit", "n": n})
    scanned = []
    real = Ledger._scan

    def counting(data, offset, count, prev):
        scanned.append(len(data) - offset)
        return real(data, offset, count, prev)

    monkeypatch.setattr(Ledger, "_scan", staticmethod(counting))
    for n in range(20):
        ledger.append({"type": "fit", "n": n})
    assert scanned == []  # no re-verification of the chain per append
    other = Ledger(ledger.path)
    other.append({"type": "fit", "by": "another writer"})  # a fresh object verifies in full once
    assert len(scanned) == 1
    line = ledger.path.read_bytes().splitlines(keepends=True)[-1]
    ledger.append({"type": "fit", "n": "after"})  # only the line the other writer added is checked
    assert scanned[-1] == len(line)
    assert ledger.verify().ok and ledger.verify().entries == 27

    text = ledger.path.read_text()
    ledger.path.write_text(text.replace('"n": 3', '"n": 4', 1))  # an edit in the middle
    with pytest.raises(CheckpointError, match="fails verification at line 4"):
        Ledger(ledger.path).append({"type": "fit"})  # a ledger opened again verifies in full
    ledger.path.write_text(text.replace('"n": 3', '"n": 33', 1))  # the file's size changed under this object
    with pytest.raises(CheckpointError, match="fails verification at line 4"):
        ledger.append({"type": "fit"})


# ---- purge ---------------------------------------------------------------------------------------------------
def _walk(sm):
    deleted = sm.deleted
    found = {}
    for key in sm.store.stored_keys():
        seen = {int(i) for sl in sm.store.meta(key)["history"] for i in sl}
        if seen & deleted:
            found[key] = sorted(seen & deleted)
    return found


def test_no_stored_checkpoint_holds_a_deleted_id_after_a_sequence_of_deletes(model, tmp_path):
    folder, key = model
    plan = ShardedModel.open(folder).plan
    picks = [plan.shards[0][1][0], plan.shards[1][0][0], plan.shards[0][0][1], plan.shards[1][1][0]]
    for n, i in enumerate(picks):
        assert _delete(folder, _ids(tmp_path, f"r{n}", i), "--signing-key", str(key)) == 0
        sm = ShardedModel.open(folder)
        assert i in sm.deleted and _walk(sm) == {}
    kinds = [e["record"]["type"] for e in sm.ledger.entries()]
    assert kinds.count("purge") == kinds.count("purged") == 4 and not sm.ledger.open_purges()
    cert = json.loads(certificate_path(folder, "req-00003").read_text())["certificate"]
    assert cert["purge"]["complete"] and cert["purge"]["removed_checkpoints"] >= 1
    assert audit_folder(folder).ok


def test_an_old_checkpoint_left_in_the_store_fails_the_audit_until_resume(model, tmp_path, capsys):
    folder, key = model
    sm = ShardedModel.open(folder)
    i = sm.plan.shards[0][0][0]
    saved = tmp_path / "saved"
    shutil.copytree(folder / "store", saved)
    assert _delete(folder, _ids(tmp_path, "a", i)) == 0
    sm = ShardedModel.open(folder)
    gone = [k for k in saved.iterdir() if not (folder / "store" / k.name).exists()]
    assert gone  # the checkpoints trained on id i were removed
    shutil.copytree(gone[0], folder / "store" / gone[0].name)  # put one back (not in use)
    capsys.readouterr()
    assert main(["exact-audit", "--model", str(folder)]) == 1
    out = capsys.readouterr().out
    assert "trained on deleted ids" in out and gone[0].name[:12] in out and "exact: NO" in out
    assert main(["resume", "--model", str(folder), "--executor", "serial", "--no-progress"]) == 0
    assert main(["exact-audit", "--model", str(folder)]) == 0
    assert not (folder / "store" / gone[0].name).exists()

    shutil.copytree(gone[0], folder / "store" / gone[0].name)  # a new fit into the folder purges too
    args = ["exact-train", "--dataset", "digits", "--train-subset", "300", "--model-kw", "hidden=[16]"]
    args += ["--shards", "2", "--slices", "2", "--epochs", "1", "--executor", "serial", "--seed", "1"]
    assert main([*args, "--out", str(folder), "--overwrite", "--no-progress"]) == 0
    assert not (folder / "store" / gone[0].name).exists() and audit_folder(folder).ok


def test_a_crash_mid_purge_is_listed_as_pending_and_finished_on_open(model, tmp_path, monkeypatch):
    folder, key = model
    sm = ShardedModel.open(folder)
    i = sm.plan.shards[1][1][0]

    def hook(stage):
        if stage == "purge":
            raise Crash(stage)

    monkeypatch.setattr(faults, "HOOK", hook)
    with pytest.raises(Crash):
        sm.delete([i], executor="serial", evaluate=False, progress=False)
    monkeypatch.setattr(faults, "HOOK", None)
    opened = ShardedModel.open(folder, recover=False)
    pending = opened.ledger.open_purges()
    assert len(pending) == 1 and set(pending[0]["record"]["keys"]) == set(_walk(opened))
    report = audit_folder(folder)
    assert not report.ok and "trained on deleted ids" in report.purge_problem
    sm = ShardedModel.open(folder)  # recovers: finishes the purge
    assert not sm.ledger.open_purges() and _walk(sm) == {} and audit_folder(folder).ok


def test_purge_on_an_fsspec_store(tmp_path, digits):
    pytest.importorskip("fsspec")
    import numpy as np

    import unlearnkit as uk
    from unlearnkit.exact import SISA, ModelSpec

    data = digits.train.subset(np.arange(120))
    url = (tmp_path / "ckpts").as_uri()
    sm = ShardedModel.fit(
        tmp_path / "m",
        data,
        SISA(shards=2, slices=2),
        model=ModelSpec("mlp", (1, 8, 8), 10, {"hidden": [8]}),
        recipe=uk.Recipe(epochs=1, lr=0.1),
        executor="serial",
        progress=False,
        store=url,
    )
    before = set(sm.store.stored_keys())
    sm.delete([int(sm.plan.shards[0][0][0])], executor="serial", evaluate=False, progress=False)
    assert _walk(sm) == {} and before - set(sm.store.stored_keys())


# ---- signing repaired by resume ------------------------------------------------------------------------------
def test_resume_signs_the_head_and_issues_the_certificate_after_a_crash_after_commit(
    model, tmp_path, monkeypatch, capsys
):
    folder, key = model
    pub = str(key) + ".pub"
    i = ShardedModel.open(folder).plan.shards[0][1][1]

    def hook(stage):
        if stage == "committed":
            raise Crash(stage)

    monkeypatch.setattr(faults, "HOOK", hook)
    with pytest.raises(Crash):
        _delete(folder, _ids(tmp_path, "a", i), "--signing-key", str(key), "--request-id", "alice")
    monkeypatch.setattr(faults, "HOOK", None)
    entries = ShardedModel.open(folder, recover=False).ledger.entries()
    assert entries[-1]["record"]["type"] == "committed" and not certificate_path(folder, "alice").exists()
    assert read_head(folder)["head"]["entries"] < len(entries)  # the head was not signed after the commit
    assert main(["exact-audit", "--model", str(folder), "--public-key", pub]) == 1
    assert main(["resume", "--model", str(folder), "--executor", "serial", "--no-progress"]) == 0
    assert not certificate_path(folder, "alice").exists()  # no key, nothing signed
    assert main(["resume", "--model", str(folder), "--no-progress", "--signing-key", str(key)]) == 0
    cert = certificate_path(folder, "alice")
    assert main(["certificate", "verify", str(cert), "--public-key", pub, "--ledger", str(folder)]) == 0
    assert main(["exact-audit", "--model", str(folder), "--public-key", pub]) == 0
    assert main(["ledger", "verify", "--model", str(folder), "--public-key", pub, "--strict"]) == 0


# ---- anchors against rollback --------------------------------------------------------------------------------
def test_a_rollback_to_an_older_signed_snapshot_is_detected(model, tmp_path, capsys):
    folder, key = model
    pub = str(key) + ".pub"
    (tmp_path / "elsewhere").mkdir()
    anchor = tmp_path / "elsewhere" / "anchor.jsonl"
    plan = ShardedModel.open(folder).plan
    assert (
        _delete(folder, _ids(tmp_path, "a", plan.shards[0][0][0]), "--signing-key", str(key), "--anchor", str(anchor))
        == 0
    )
    snapshot = tmp_path / "snapshot"
    shutil.copytree(folder, snapshot)
    first = read_head(folder)["head"]
    assert (
        _delete(folder, _ids(tmp_path, "b", plan.shards[1][0][0]), "--signing-key", str(key), "--anchor", str(anchor))
        == 0
    )
    second = read_head(folder)["head"]
    assert second["counter"] == first["counter"] + 1 and second["previous"] is not None
    assert len(anchor.read_text().splitlines()) == 2
    cert = folder / "certificates" / "req-00001.json"
    held = tmp_path / "held.json"
    shutil.copy(cert, held)
    verify = ["ledger", "verify", "--model", str(folder), "--public-key", pub, "--strict"]
    assert main([*verify, "--anchor", str(anchor), "--certificate", str(held)]) == 0

    shutil.copy(snapshot / "ledger.head.json", folder / "ledger.head.json")  # only the older signed head
    capsys.readouterr()
    assert main(["ledger", "verify", "--model", str(folder), "--public-key", pub]) == 0  # "not yet covered"
    assert main(["ledger", "verify", "--model", str(folder), "--public-key", pub, "--anchor", str(anchor)]) == 1
    assert "an older signed head was restored" in capsys.readouterr().out

    for name in ("exact.json", "ledger.jsonl", "ledger.head.json"):  # roll back to the older signed snapshot
        shutil.copy(snapshot / name, folder / name)
    assert main(verify) == 0  # every hash and signature of the old snapshot still verifies on its own
    capsys.readouterr()
    assert main([*verify, "--anchor", str(anchor)]) == 1
    assert "rolled back" in capsys.readouterr().out
    assert main([*verify, "--certificate", str(held)]) == 1
    assert "older than the certificate" in capsys.readouterr().out
    assert main(["certificate", "verify", str(held), "--public-key", pub]) == 0  # alone it still verifies
    assert main(["certificate", "verify", str(held), "--public-key", pub, "--ledger", str(folder)]) == 1
    assert "INVALID" in capsys.readouterr().out


def test_a_certificate_not_in_the_ledger_at_its_place_fails(model, tmp_path, capsys):
    folder, key = model
    pub = str(key) + ".pub"
    other = tmp_path / "other"
    shutil.copytree(folder, other)
    plan = ShardedModel.open(folder).plan
    assert _delete(other, _ids(tmp_path, "x", plan.shards[1][1][1]), "--signing-key", str(key)) == 0
    assert _delete(folder, _ids(tmp_path, "y", plan.shards[0][1][1]), "--signing-key", str(key)) == 0
    foreign = other / "certificates" / "req-00000.json"  # same id and position, another ledger
    capsys.readouterr()
    assert main(["certificate", "verify", str(foreign), "--public-key", pub, "--ledger", str(folder)]) == 1
    assert "is not the head certificate" in capsys.readouterr().out
    own = folder / "certificates" / "req-00000.json"
    assert main(["certificate", "verify", str(own), "--public-key", pub, "--ledger", str(folder)]) == 0


def test_an_unsafe_anchor_path_is_refused_before_anything_changes(model, tmp_path, capsys):
    folder, key = model
    orig = tmp_path / "orig"  # an original checkpoint: a model folder
    orig.mkdir()
    (orig / "model.safetensors").write_bytes(b"weights")
    (orig / "meta.json").write_text('{"kind": "original"}')
    notes = tmp_path / "notes.txt"
    notes.write_text("not an anchor\n")
    ids = _ids(tmp_path, "a", ShardedModel.open(folder).plan.shards[0][0][0])
    bad = {
        folder / "exact.json": "is inside the input",
        orig / "meta.json": "inside the model folder",
        folder: "is the input",
        tmp_path / "elsewhere": "is a folder",
        tmp_path / "nonexistent" / "d" / "x": "does not exist; create it first",
        notes: "is not an anchor file",
        key: "is the input",
        tmp_path / "other.pem": "private key",
        tmp_path / "a.txt": "is the input",
    }
    shutil.copy(key, tmp_path / "other.pem")
    (tmp_path / "elsewhere").mkdir()
    kept = {
        p: p.read_bytes()
        for p in [
            folder / "exact.json",
            folder / "ledger.jsonl",
            orig / "meta.json",
            notes,
            key,
            tmp_path / "other.pem",
        ]
    }
    for anchor, why in bad.items():
        capsys.readouterr()
        assert _delete(folder, ids, "--signing-key", str(key), "--anchor", str(anchor)) == 2, anchor
        err = capsys.readouterr().err
        assert why in err and "--anchor" in err and len(err.strip().splitlines()) == 1, err
        assert main(["resume", "--model", str(folder), "--signing-key", str(key), "--anchor", str(anchor)]) == 2
        assert "--anchor" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in kept} == kept  # nothing was deleted, nothing corrupted
    assert not (tmp_path / "nonexistent").exists()
    good = tmp_path / "anchor.jsonl"
    assert _delete(folder, ids, "--signing-key", str(key), "--anchor", str(good)) == 0
    assert _delete(folder, ids, "--signing-key", str(key), "--anchor", str(good)) == 0  # an anchor file: accepted
    assert json.loads(good.read_text().splitlines()[-1])["head"]["entries"] > 0


@pytest.mark.parametrize("damaged", ["exact.json", "exact.json:list", "ledger.head.json"])
def test_damaged_json_state_is_one_error_naming_the_file(model, tmp_path, capsys, damaged):
    folder, key = model
    name, _, how = damaged.partition(":")
    if name == "ledger.head.json":  # a signed head exists only after a signed deletion
        ids = _ids(tmp_path, "a", ShardedModel.open(folder).plan.shards[0][0][0])
        assert _delete(folder, ids, "--signing-key", str(key)) == 0
    (folder / name).write_text("[1, 2]" if how else '{"format": 2, "plan": [tru')
    pub = str(key) + ".pub"
    capsys.readouterr()
    if name == "exact.json":
        for args in (["ledger", "verify", "--model", str(folder)], ["resume", "--model", str(folder)]):
            assert main(args) == 2
            err = capsys.readouterr().err
            assert "exact.json" in err and "restore it from a backup" in err and len(err.strip().splitlines()) == 1
        assert main(["exact-audit", "--model", str(folder)]) == 1
        assert "exact.json" in capsys.readouterr().out
    else:
        assert main(["ledger", "verify", "--model", str(folder), "--public-key", pub]) == 1
        assert "signed head is not valid JSON" in capsys.readouterr().out
        assert main(["exact-audit", "--model", str(folder), "--public-key", pub]) == 1


def test_keygen_never_writes_into_a_model_folder_and_outputs_never_replace_a_key(model, tmp_path, capsys):
    from unlearnkit.outputs import check_output_file

    folder, key = model
    assert main(["keygen", "--out", str(folder / "x.pem")]) == 2
    assert "inside the model folder" in capsys.readouterr().err and not (folder / "x.pem").exists()
    assert main(["keygen", "--out", str(tmp_path / "k.pem"), "--public", str(folder / "k.pub")]) == 2
    assert not (tmp_path / "k.pem").exists() and not (folder / "k.pub").exists()
    assert main(["keygen", "--out", str(tmp_path / "k.pem")]) == 0
    assert main(["keygen", "--out", str(tmp_path / "k.pem"), "--overwrite"]) == 0  # keygen may replace its key
    with pytest.raises(CheckpointError, match="private key"):
        check_output_file(tmp_path / "k.pem", overwrite=True)
    check_output_file(tmp_path / "k.pem.pub", overwrite=True)  # a public key is an ordinary file
