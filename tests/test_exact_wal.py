"""The write-ahead deletion protocol: a crash at any stage of a deletion, then reopening, always ends with
ledger, exact.json and checkpoints consistent and every requested id in the ledger; exact.json is bound to
the ledger; concurrent writers are serialised."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

import unlearnkit as uk
from unlearnkit.cli import main
from unlearnkit.exact import SISA, Ledger, ModelSpec, ShardedModel, audit, faults
from unlearnkit.exact.workflow import audit_folder, verify_ledger

RECIPE = uk.Recipe(epochs=3, lr=0.1, batch_size=32)
N = 360


class Crash(BaseException):
    """Stands for the process dying: not an Exception, so no handler in the code under test catches it."""


@pytest.fixture(scope="module")
def base(digits, tmp_path_factory):
    folder = tmp_path_factory.mktemp("wal") / "m"
    ShardedModel.fit(
        folder,
        digits.train.subset(range(N)),
        SISA(shards=2, slices=3),
        model=ModelSpec("mlp", digits.input_shape, 10, {"hidden": [16]}),
        recipe=RECIPE,
        executor="serial",
        progress=False,
    )
    return folder


def _copy(base: Path, tmp: Path) -> Path:
    shutil.copytree(base, tmp / "m")
    return tmp / "m"


def _targets(folder: Path, digits) -> list[int]:
    sm = ShardedModel.open(folder, data=digits.train.subset(range(N)))
    return [sm.plan.shards[0][0][1], sm.plan.shards[1][1][0]]  # two shards: 3 + 2 steps to retrain


@pytest.fixture(scope="module")
def reference(base, digits, tmp_path_factory):
    """Keys and ledger of the same deletion run without interruption."""
    folder = _copy(base, tmp_path_factory.mktemp("ref"))
    sm = ShardedModel.open(folder, data=digits.train.subset(range(N)))
    sm.delete(_targets(folder, digits), executor="serial", evaluate=False, progress=False, request_id="r1")
    return [s.key for s in sm.selection()], {
        k: v.clone() for k, v in sm.constituent(sm.selection()[0]).state_dict().items()
    }


def _consistent(folder: Path, ids: list[int]) -> None:
    sm = ShardedModel.open(folder, recover=False)
    assert sm.problem == ""
    assert verify_ledger(folder).ok
    ledger_ids = sm.ledger.deleted_ids()
    assert set(ids) <= ledger_ids and ledger_ids == sm.deleted  # every requested id is in the ledger
    committed = [e["record"] for e in sm.ledger.entries() if e["record"]["type"] == "committed"]
    assert {i for r in committed for i in r["ids"]} >= set(ids) and not sm.ledger.open_requests()
    report = audit(sm)
    assert report.ok and not report.missing_shards


@pytest.mark.parametrize(
    "stage,nth",
    [("pending", 1), ("state", 1), ("checkpoint", 1), ("checkpoint", 4), ("trained", 1), ("committed", 1), ("done", 1)],
)
def test_a_crash_at_any_stage_is_finished_on_reopen(base, reference, digits, tmp_path, monkeypatch, stage, nth):
    folder = _copy(base, tmp_path)
    ids = _targets(folder, digits)
    seen = {"n": 0}

    def hook(name: str) -> None:
        if name == stage:
            seen["n"] += 1
            if seen["n"] == nth:
                raise Crash(name)

    sm = ShardedModel.open(folder, data=digits.train.subset(range(N)))
    monkeypatch.setattr(faults, "HOOK", hook)
    with pytest.raises(Crash):
        sm.delete(ids, executor="serial", evaluate=False, progress=False, request_id="r1")
    monkeypatch.setattr(faults, "HOOK", None)

    # read-only audit: passes only when the folder is already consistent and complete
    before = audit_folder(folder)
    assert before.ok == (stage == "done")
    if stage != "done":
        assert before.ledger_problem or before.missing_shards

    ShardedModel.open(folder, data=digits.train.subset(range(N)), executor="serial")  # recovers
    _consistent(folder, ids)
    sm = ShardedModel.open(folder, recover=False)
    keys, weights = reference
    assert [s.key for s in sm.selection()] == keys  # exactly what the uninterrupted deletion produced
    w = sm.constituent(sm.selection()[0]).state_dict()
    assert all(torch.equal(w[k], weights[k]) for k in weights)
    assert [e["record"]["request_id"] for e in sm.ledger.entries() if e["record"]["type"] == "committed"] == ["r1"]


@pytest.mark.slow  # a new Python process (torch import) per run: ~10 s idle, a minute on a loaded machine
def test_a_killed_delete_command_is_resumed(base, digits, tmp_path, capsys):
    folder = _copy(base, tmp_path)
    ids = _targets(folder, digits)
    ids_file = tmp_path / "ids.txt"
    ids_file.write_text(" ".join(map(str, ids)))
    code = (
        "import sys, unlearnkit as uk\n"
        "from unlearnkit.exact import ShardedModel\n"
        f"sm = ShardedModel.open({str(folder)!r}, data=uk.load_dataset('digits').train.subset(range({N})))\n"
        f"sm.delete({ids!r}, executor='serial', evaluate=False, progress=False, source={str(ids_file)!r})\n"
    )
    env = {**os.environ, "UNLEARNKIT_EXACT_KILL_AT": "checkpoint:2", "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, timeout=300)
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]  # SIGKILL: no cleanup ran
    assert main(["exact-audit", "--model", str(folder)]) == 1
    assert "no usable model" in capsys.readouterr().out
    assert main(["ledger", "verify", "--model", str(folder)]) == 0
    assert "resume" in capsys.readouterr().out
    pending = Ledger(folder / "ledger.jsonl").entries()[-1]["record"]
    assert pending["type"] == "pending" and pending["ids"] == sorted(ids)
    assert pending["request_file_sha256"] == hashlib.sha256(ids_file.read_bytes()).hexdigest()
    ShardedModel.open(folder, data=digits.train.subset(range(N)), executor="serial")
    _consistent(folder, ids)


def test_exact_json_is_bound_to_the_ledger(base, digits, tmp_path, capsys):
    folder = _copy(base, tmp_path)
    sm = ShardedModel.open(folder, data=digits.train.subset(range(N)))
    victim = sm.plan.shards[1][2][0]
    sm.delete([victim], executor="serial", evaluate=False, progress=False)
    assert main(["exact-audit", "--model", str(folder)]) == 0
    state = json.loads((folder / "exact.json").read_text())
    # forget the deletion in exact.json (and put the id back into training)
    state["deleted"] = []
    state["plan"]["shards"][1][2].append(victim)
    (folder / "exact.json").write_text(json.dumps(state))
    with pytest.raises(uk.CheckpointError, match=f"ids \\[{victim}\\] are deleted in the ledger"):
        ShardedModel.open(folder, data=digits.train.subset(range(N)))
    capsys.readouterr()
    assert main(["exact-audit", "--model", str(folder)]) == 1


def test_ledger_file_path_catches_truncation_at_the_end(base, digits, tmp_path, capsys):
    folder = _copy(base, tmp_path)
    sm = ShardedModel.open(folder, data=digits.train.subset(range(N)))
    sm.delete([sm.plan.shards[0][2][0]], executor="serial", evaluate=False, progress=False)
    ledger = folder / "ledger.jsonl"
    assert main(["ledger", "verify", "--model", str(ledger)]) == 0
    lines = ledger.read_text().splitlines()
    ledger.write_text("\n".join(lines[:-1]) + "\n")  # drop the committed entry
    assert main(["ledger", "verify", "--model", str(ledger)]) == 1
    assert "not in the ledger" in capsys.readouterr().out
    ledger.write_text("\n".join(lines) + "\n" + lines[-1][:40])  # a torn append is reported ...
    assert main(["ledger", "verify", "--model", str(ledger)]) == 1
    ShardedModel.open(folder, data=digits.train.subset(range(N)))  # ... and cut when the folder is reopened
    assert main(["ledger", "verify", "--model", str(ledger)]) == 0
    assert ledger.read_text() == "\n".join(lines) + "\n"


def test_concurrent_deletes_are_serialised(base, digits, tmp_path):
    folder = _copy(base, tmp_path)
    data = digits.train.subset(range(N))
    plan = ShardedModel.open(folder, data=data).plan
    ids = [plan.shards[0][2][0], plan.shards[1][2][0]]
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            ShardedModel.open(folder, data=data).delete([i], executor="serial", evaluate=False, progress=False)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    _consistent(folder, ids)
    requests = ShardedModel.open(folder, recover=False).ledger.requests()
    assert len(requests) == 2 and all(r["outcome"] == "committed" for r in requests.values())


def test_rollback_cancels_an_open_request(base, digits, tmp_path, monkeypatch, capsys):
    folder = _copy(base, tmp_path)
    sm = ShardedModel.open(folder, data=digits.train.subset(range(N)))
    plan_before = sm.plan.to_dict()
    victim = sm.plan.shards[0][0][0]

    def hook(name: str) -> None:
        if name == "checkpoint":
            raise Crash(name)

    monkeypatch.setattr(faults, "HOOK", hook)
    with pytest.raises(Crash):
        sm.delete([victim], executor="serial", evaluate=False, progress=False, request_id="oops")
    monkeypatch.setattr(faults, "HOOK", None)
    sm = ShardedModel.open(folder, data=digits.train.subset(range(N)), recover=False)
    assert sm.rollback() == ["oops"]
    sm.resume(executor="serial")
    sm = ShardedModel.open(folder, recover=False)
    assert sm.plan.to_dict() == plan_before and victim not in sm.deleted and victim not in sm.ledger.deleted_ids()
    assert sm.problem == "" and audit(sm).ok
