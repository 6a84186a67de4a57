"""A real Ray cluster reached by address: ``ray start --head`` on 127.0.0.1, then ``exact-train`` and
``delete`` with ``--ray-address`` and an fsspec checkpoint store (no shared folder assumed by the code)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from unlearnkit.cli import main
from unlearnkit.exact import ShardedModel, audit

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cluster():
    pytest.importorskip("ray")
    ray_bin = Path(sys.executable).with_name("ray")
    port = _free_port()
    temp = tempfile.mkdtemp(prefix="ukray")  # short: Ray's socket paths must stay under 108 characters
    # a private test cluster on the loopback interface: Ray's token authentication is switched off for it
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "RAY_ADDRESS": "", "RAY_AUTH_MODE": "disabled"}
    cmd = [str(ray_bin), "start", "--head", "--block", "--node-ip-address", "127.0.0.1", "--port", str(port)]
    cmd += ["--num-cpus", "1", "--include-dashboard", "false", "--temp-dir", temp, "--disable-usage-stats"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline:  # the GCS port accepts connections once the head is up
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.5)
        time.sleep(2)
        yield f"127.0.0.1:{port}"
    finally:
        # stop only the processes this fixture started: the `ray start --block` session we spawned
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        shutil.rmtree(temp, ignore_errors=True)


def test_train_and_delete_on_a_cluster_reached_by_address(cluster, tmp_path, monkeypatch):
    out = tmp_path / "m"
    store = f"file://{tmp_path / 'remote-store'}"
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    monkeypatch.setenv("RAY_ADDRESS", cluster)  # what a cluster user sets; no num_cpus may be passed
    args = ["exact-train", "--dataset", "digits", "--train-subset", "300", "--model-kw", "hidden=[16]"]
    args += ["--shards", "2", "--slices", "2", "--epochs", "2", "--executor", "ray", "--store", store]
    assert main([*args, "--out", str(out), "--no-progress"]) == 0
    assert not (out / "store").exists() and len(list((tmp_path / "remote-store").iterdir())) == 6  # 2 roots + 4
    sm = ShardedModel.open(out)
    ids = tmp_path / "ids.txt"
    ids.write_text(str(sm.plan.shards[1][0][0]))
    monkeypatch.delenv("RAY_ADDRESS")
    cmd = ["delete", "--model", str(out), "--ids", str(ids), "--ray-address", cluster, "--no-progress"]
    assert main(cmd) == 0
    sm = ShardedModel.open(out, recover=False)
    assert audit(sm).ok and _last_committed(sm)["shards"][0]["retrained_steps"] == [1, 2]


def _last_committed(sm) -> dict:
    """The record of the ledger's last committed deletion (purge entries follow it)."""
    return [e["record"] for e in sm.ledger.entries() if e["record"].get("type") == "committed"][-1]
