"""Shard training on existing engines (a process pool, Ray) and data-parallel training with Accelerate."""

from __future__ import annotations

import pytest
import torch

import unlearnkit as uk
from unlearnkit.exact import SISA, ModelSpec, ProcessExecutor, SerialExecutor, ShardedModel, audit, make_executor
from unlearnkit.exact.data_parallel import ProcessBatches, make_accelerator, train_data_parallel

RECIPE = uk.Recipe(epochs=4, lr=0.1, batch_size=32, schedule="cosine")


def _fit(folder, digits, executor):
    return ShardedModel.fit(
        folder,
        digits.train.subset(range(600)),
        SISA(shards=2, slices=2),
        model=ModelSpec("mlp", digits.input_shape, 10, {"hidden": [16]}),
        recipe=RECIPE,
        executor=executor,
        progress=False,
    )


def _weights(sm: ShardedModel) -> list[dict[str, torch.Tensor]]:
    return [sm.constituent(s).state_dict() for s in sm.selection()]


def _same(a: list[dict], b: list[dict]) -> bool:
    return all(torch.equal(x[k], y[k]) for x, y in zip(a, b) for k in x)


@pytest.fixture(scope="module")
def serial_model(digits, tmp_path_factory):
    # pool and Ray workers train with one torch thread; a multi-threaded reduction order would change the
    # last bits of the weights, so the in-process reference uses one thread too
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _fit(tmp_path_factory.mktemp("serial") / "m", digits, "serial")
    finally:
        torch.set_num_threads(threads)


def test_process_pool_trains_the_same_shards(serial_model, digits, tmp_path):
    pooled = _fit(tmp_path / "m", digits, ProcessExecutor(max_workers=2))
    assert [s.key for s in pooled.selection()] == [s.key for s in serial_model.selection()]
    assert _same(_weights(pooled), _weights(serial_model))
    assert audit(pooled).ok


def test_ray_backend_trains_the_same_shards(serial_model, digits, tmp_path, monkeypatch):
    ray = pytest.importorskip("ray")
    from unlearnkit.exact import RayExecutor

    # an earlier Ray run that did not shut down leaves its address in Ray's temp folder; a local executor must
    # start its own instance rather than try to join that dead one
    monkeypatch.setattr(ray._private.utils, "read_ray_address", lambda temp_dir=None: "127.0.0.1:9")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    # workers inherit the driver's OMP_NUM_THREADS (Ray sets 1 only when it is unset): the executor must still
    # train with one thread, as the serial reference does
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    with RayExecutor(num_cpus=1) as ray_exec:
        distributed = _fit(tmp_path / "m", digits, ray_exec)
    assert [s.key for s in distributed.selection()] == [s.key for s in serial_model.selection()]
    assert _same(_weights(distributed), _weights(serial_model))


def test_executor_names():
    assert isinstance(make_executor("serial"), SerialExecutor)
    assert isinstance(make_executor(None), ProcessExecutor)
    with pytest.raises(uk.ConfigError, match="choose one of"):
        make_executor("slurm")


def test_accelerate_single_process_matches_the_engine(digits):
    pytest.importorskip("accelerate")
    data = digits.train.subset(range(400))
    recipe = uk.Recipe(epochs=2, lr=0.05, batch_size=32)
    torch.manual_seed(0)
    plain = uk.create_model("mlp", digits.input_shape, 10, hidden=[16])
    parallel = uk.create_model("mlp", digits.input_shape, 10, hidden=[16])
    parallel.load_state_dict(plain.state_dict())
    uk.train_model(plain, data, recipe, seed=3, device="cpu", progress=False)
    acc = make_accelerator(cpu=True)
    assert acc.num_processes == 1
    log = train_data_parallel(parallel, data, recipe, accelerator=acc, seed=3, progress=False)
    assert log.steps == 2 * len(ProcessBatches(data, 32, 1, 0))
    for (n, a), (_, b) in zip(plain.state_dict().items(), parallel.state_dict().items()):
        assert torch.allclose(a, b, atol=1e-6), n


def test_process_batches_split_every_global_batch(digits):
    data = digits.train.subset(range(100))
    parts = [list(ProcessBatches(data, 8, 2, r, seed=1)) for r in range(2)]
    assert len(parts[0]) == len(parts[1]) == 100 // 16
    for (x0, _), (x1, _) in zip(*parts):
        assert x0.shape[0] == x1.shape[0] == 8
        assert not any(torch.equal(a, b) for a in x0 for b in x1)  # disjoint halves of one global batch


def test_dp_train_refuses_fewer_processes_than_requested(tmp_path, capsys):
    pytest.importorskip("accelerate")
    from unlearnkit.cli import main

    args = ["dp-train", "--cpu", "--processes", "2", "--dataset", "digits", "--train-subset", "100", "--epochs", "1"]
    assert main([*args, "--out", str(tmp_path / "dp"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "asked for 2 processes but runs in 1" in err and "--multi_gpu --num_processes 2" in err
    assert not (tmp_path / "dp").exists()


@pytest.mark.slow
def test_dp_train_really_runs_two_cpu_processes(tmp_path):
    pytest.importorskip("accelerate")
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    launcher = str(Path(sys.executable).with_name("accelerate"))
    cmd = [launcher, "launch", "--multi_gpu", "--num_processes", "2", "-m", "unlearnkit.cli", "dp-train", "--cpu"]
    cmd += ["--processes", "2", "--scale-lr", "--lr", "0.05", "--dataset", "digits", "--train-subset", "300"]
    cmd += ["--epochs", "1", "--model-kw", "hidden=[16]", "--out", str(tmp_path / "dp"), "--no-progress"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    meta = json.loads((tmp_path / "dp" / "meta.json").read_text())
    assert meta["processes"] == 2 and meta["global_batch"] == 2 * meta["recipe"]["batch_size"]
    assert meta["recipe"]["lr"] == pytest.approx(0.1)  # scaled with the global batch
