"""Signed deletion certificates, the signed ledger head, and request queues batched into one round."""

from __future__ import annotations

import json
import shutil

import pytest

from unlearnkit.cli import main
from unlearnkit.exact import ShardedModel, faults, verify_certificate
from unlearnkit.exact.ledger import entry_hash

from .conftest import signed_sisa

pytest.importorskip("cryptography")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return signed_sisa(tmp_path_factory, "certs", epochs=3)


@pytest.fixture
def model(trained, tmp_path):
    out, key = trained
    shutil.copytree(out, tmp_path / "m")
    return tmp_path / "m", key


def _requests(folder, plan, tmp_path):
    queue = tmp_path / "queue"
    queue.mkdir()
    (queue / "alice.txt").write_text(f"{plan.shards[0][1][0]}\n")
    (queue / "bob.json").write_text(json.dumps([plan.shards[0][1][1], plan.shards[1][1][0]]))
    return queue


def test_every_certificate_verifies_and_any_one_byte_change_fails(model, tmp_path, capsys):
    folder, key = model
    plan = ShardedModel.open(folder).plan
    queue = _requests(folder, plan, tmp_path)
    cmd = ["delete", "--model", str(folder), "--ids", str(queue), "--executor", "serial", "--no-progress"]
    assert main([*cmd, "--signing-key", str(key)]) == 0
    certs = sorted((folder / "certificates").glob("*.json"))
    assert [c.stem for c in certs] == ["alice", "bob"]
    pub = str(key) + ".pub"
    assert main(["certificate", "verify", *map(str, certs), "--public-key", pub]) == 0
    body = json.loads(certs[1].read_text())["certificate"]
    assert body["ids_count"] == 2 and body["affected_shards"] == [0, 1] and body["model_before"] != body["model_after"]
    entries = ShardedModel.open(folder).ledger.entries()
    assert body["ledger_head"] == entries[body["ledger_entries"] - 1]["hash"]

    raw = certs[0].read_bytes()
    for pos in range(0, len(raw), max(1, len(raw) // 60)):  # ~60 positions spread over the whole file
        flipped = bytearray(raw)
        flipped[pos] = ord("0") if raw[pos] != ord("0") else ord("1")
        certs[0].write_bytes(bytes(flipped))
        assert not verify_certificate(certs[0], pub)[0], pos
    pos = raw.index(b"\n ") + 1  # indentation -> tab: the same JSON content, still a changed file
    certs[0].write_bytes(raw[:pos] + b"\t" + raw[pos + 1 :])
    assert main(["certificate", "verify", str(certs[0]), "--public-key", pub]) == 1
    certs[0].write_bytes(raw)
    assert main(["certificate", "verify", str(certs[0]), "--public-key", pub]) == 0
    other = tmp_path / "other.pem"
    assert main(["keygen", "--out", str(other)]) == 0
    assert main(["certificate", "verify", str(certs[0]), "--public-key", str(other) + ".pub"]) == 1
    assert "different key" in capsys.readouterr().out


def test_signed_head_detects_a_wholesale_rewrite(model, tmp_path, capsys):
    folder, key = model
    plan = ShardedModel.open(folder).plan
    ids = tmp_path / "ids.txt"
    ids.write_text(str(plan.shards[1][0][0]))
    base = ["delete", "--model", str(folder), "--executor", "serial", "--no-progress", "--signing-key", str(key)]
    assert main([*base, "--ids", str(ids)]) == 0
    pub = str(key) + ".pub"
    assert main(["ledger", "verify", "--model", str(folder), "--public-key", pub]) == 0

    # rewrite history: the request deleted another id; every hash recomputed, exact.json updated to match
    ledger = folder / "ledger.jsonl"
    entries = [json.loads(line) for line in ledger.read_text().splitlines()]
    prev = "0" * 64
    for e in entries:
        if e["record"].get("ids"):
            e["record"]["ids"] = [plan.shards[0][0][0]]
        e["prev"] = prev
        e["hash"] = prev = entry_hash(e)
    ledger.write_text("".join(json.dumps(e, sort_keys=True) + "\n" for e in entries))
    state = json.loads((folder / "exact.json").read_text())
    state["ledger_head"] = prev
    (folder / "exact.json").write_text(json.dumps(state))
    assert main(["ledger", "verify", "--model", str(ledger)]) == 0  # the chain alone cannot tell
    capsys.readouterr()
    assert main(["ledger", "verify", "--model", str(folder), "--public-key", pub]) == 1
    assert "rewritten" in capsys.readouterr().out


def test_exact_audit_with_a_public_key_requires_every_entry_signed(model, tmp_path, capsys):
    folder, key = model
    plan = ShardedModel.open(folder).plan
    pub = str(key) + ".pub"
    base = ["delete", "--model", str(folder), "--executor", "serial", "--no-progress"]
    (tmp_path / "a.txt").write_text(str(plan.shards[1][0][0]))
    assert main([*base, "--ids", str(tmp_path / "a.txt"), "--signing-key", str(key)]) == 0
    assert main(["exact-audit", "--model", str(folder), "--public-key", pub]) == 0
    (tmp_path / "b.txt").write_text(str(plan.shards[0][0][0]))
    assert main([*base, "--ids", str(tmp_path / "b.txt")]) == 0  # a deletion nobody signed
    capsys.readouterr()
    assert main(["ledger", "verify", "--model", str(folder), "--public-key", pub]) == 0  # reported only
    assert "not yet covered" in capsys.readouterr().out
    assert main(["ledger", "verify", "--model", str(folder), "--public-key", pub, "--strict"]) == 1
    assert main(["exact-audit", "--model", str(folder)]) == 0  # the keys alone are still exact
    capsys.readouterr()
    assert main(["exact-audit", "--model", str(folder), "--public-key", pub]) == 1
    out = capsys.readouterr().out
    assert "not covered by a signature" in out and "exact: NO" in out


def test_a_queue_is_one_retraining_round_with_a_certificate_per_request(model, tmp_path, monkeypatch):
    folder, key = model
    plan = ShardedModel.open(folder).plan
    queue = _requests(folder, plan, tmp_path)
    checkpoints = {"n": 0}
    late = plan.shards[1][0][1]

    def hook(stage: str) -> None:
        if stage == "checkpoint":
            checkpoints["n"] += 1
        if stage == "trained" and not (queue / "carol.txt").exists():  # arrives while the first round trains
            (queue / "carol.txt").write_text(f"{late}\n")

    monkeypatch.setattr(faults, "HOOK", hook)
    cmd = ["delete", "--model", str(folder), "--ids", str(queue), "--executor", "serial", "--no-progress", "--watch"]
    assert main([*cmd, "--signing-key", str(key)]) == 0
    # round 1: alice and bob touch slice 1 of both shards -> one retrain of step 2 per shard (2 checkpoints);
    # round 2: carol (slice 0 of shard 1) -> steps 1 and 2 of shard 1 (2 checkpoints)
    assert checkpoints["n"] == 4
    sm = ShardedModel.open(folder)
    committed = [e["record"] for e in sm.ledger.entries() if e["record"]["type"] == "committed"]
    assert [r["request_id"] for r in committed] == ["alice", "bob", "carol"]
    assert committed[0]["keys_after"] == committed[1]["keys_after"] != committed[2]["keys_after"]
    assert late in sm.deleted and len(list((folder / "certificates").glob("*.json"))) == 3


@pytest.mark.slow
def test_killed_delete_command_then_resume_command(model, tmp_path, capsys):
    import os
    import subprocess
    import sys

    folder, key = model
    plan = ShardedModel.open(folder).plan
    ids = tmp_path / "ids.txt"
    ids.write_text(f"{plan.shards[0][0][0]} {plan.shards[1][1][0]}")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "UNLEARNKIT_EXACT_KILL_AT": "checkpoint:1"}
    cmd = [sys.executable, "-m", "unlearnkit.cli", "delete", "--model", str(folder), "--ids", str(ids)]
    proc = subprocess.run([*cmd, "--executor", "serial", "--no-progress"], env=env, capture_output=True, timeout=300)
    assert proc.returncode == -9
    assert main(["exact-audit", "--model", str(folder)]) == 1
    assert main(["resume", "--model", str(folder), "--executor", "serial", "--signing-key", str(key)]) == 0
    out = capsys.readouterr().out
    assert "req-00000: deleted 2 ids" in out and "certificate" in out
    assert main(["exact-audit", "--model", str(folder)]) == 0
    assert main(["resume", "--model", str(folder), "--executor", "serial"]) == 0
    assert "nothing to resume" in capsys.readouterr().out
    assert (
        main(
            [
                "certificate",
                "verify",
                str(folder / "certificates" / "req-00000.json"),
                "--public-key",
                str(key) + ".pub",
            ]
        )
        == 0
    )
    assert main(["ledger", "verify", "--model", str(folder), "--public-key", str(key) + ".pub"]) == 0


def test_private_key_is_never_readable_by_others(tmp_path, monkeypatch):
    """The private key file has mode 0600 from the moment it holds the key, before it is renamed into place."""
    import os
    import stat

    pytest.importorskip("cryptography")
    from unlearnkit.exact.certificates import keygen

    modes: dict[str, int] = {}
    real_replace = os.replace

    def spy(src, dst, *a, **k):
        modes[os.path.basename(dst)] = stat.S_IMODE(os.stat(src).st_mode)
        return real_replace(src, dst, *a, **k)

    monkeypatch.setattr(os, "replace", spy)
    keygen(tmp_path / "k.pem")
    assert modes["k.pem"] == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "k.pem").st_mode) == 0o600


def test_a_signature_with_altered_padding_bits_is_refused(tmp_path):
    """Base64 leaves unused bits in the last character before '=='; changing them decodes to the same bytes,
    but the file was still edited after signing, so it must not verify."""
    pytest.importorskip("cryptography")
    import base64

    from unlearnkit.exact.certificates import Signer, _check, keygen, load_public_key

    pub = keygen(tmp_path / "k.pem")
    body = {"request_id": "alice", "ids": [1, 2]}
    signed = Signer(tmp_path / "k.pem").sign(body)
    sig = signed["signature"]
    assert sig.endswith("==")  # a 64-byte Ed25519 signature: 4 unused bits in the last character
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    twin = sig[:-3] + alphabet[alphabet.index(sig[-3]) ^ 1] + "=="
    assert base64.b64decode(twin) == base64.b64decode(sig)
    key = load_public_key(pub)
    assert _check(signed, body, key)[0]
    ok, why = _check({**signed, "signature": twin}, body, key)
    assert not ok and "canonical" in why
