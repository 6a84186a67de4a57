"""LM methods through Accelerate: each process's shard of a batch, the averaged shard gradients against gradient
accumulation, a one-process Accelerator run against the plain engine and (slow) two real CPU processes against one
process with two accumulation steps."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("transformers")

from unlearnkit.data.tensors import PairedBatches  # noqa: E402
from unlearnkit.engine import TrainLog  # noqa: E402
from unlearnkit.lm import TinyLMConfig, build_tiny_lm, make_benchmark, train_tokenizer, unlearn_lm  # noqa: E402
from unlearnkit.lm.api import lm_request  # noqa: E402
from unlearnkit.lm.encode import LMBatches  # noqa: E402
from unlearnkit.lm.losses import nll  # noqa: E402
from unlearnkit.lm.methods.base import accumulated, micro_batches  # noqa: E402
from unlearnkit.lm.parallel import ProcessShard, global_log  # noqa: E402

WORKER = Path(__file__).with_name("lm_parallel_worker.py")


@pytest.fixture(scope="module")
def tiny():
    torch.set_num_threads(1)
    split = make_benchmark(n_people=6, n_holdout=2, seed=0).split("forget10")
    tok = train_tokenizer([f"{r['question']} {r['answer']}" for r in split.forget + split.retain], vocab_size=300)
    model = build_tiny_lm(TinyLMConfig(d_model=32, n_layers=2, n_heads=2), tok, seed=0)
    return split, tok, model


def test_process_shards_are_the_micro_batches_of_every_batch(tiny):
    split, tok, model = tiny
    req = lm_request(model, tok, split)
    paired = PairedBatches(
        LMBatches(req.forget, 4, seed=0), LMBatches(req.retain, 4, seed=1), restart_each_pass=False
    )  # 10 rows: 4, 4, 2
    batches = list(paired)
    shards = [list(ProcessShard(batches, 3, k)) for k in range(3)]
    # the last batch (2 forget rows) is shorter than 3 processes: every process skips it
    assert [len(s) for s in shards] == [2, 2, 2] and len(ProcessShard(batches, 3, 0)) == 3
    for i, batch in enumerate(batches[:2]):
        parts = micro_batches(batch, 3)
        for k in range(3):
            assert all(torch.equal(a, b) for a, b in zip(shards[k][i], parts[k]))
        rows = sum(s[i][0].shape[0] for s in shards)
        assert rows == batch[0].shape[0] and sum(s[i][3].shape[0] for s in shards) == batch[3].shape[0]
    with pytest.raises(ValueError, match="outside"):
        ProcessShard(batches, 2, 2)


def test_averaged_shard_gradients_equal_gradient_accumulation(tiny):
    """What DDP does with two processes (each back-propagates its shard, the gradients are averaged), emulated in
    one process, equals one process with two accumulation steps."""
    split, tok, model = tiny
    req = lm_request(model, tok, split)
    batch = next(
        iter(
            PairedBatches(LMBatches(req.forget, 10, seed=0), LMBatches(req.retain, 10, seed=1), restart_each_pass=False)
        )
    )

    def loss(m, b):  # a GradDiff-like loss on paired batches
        return -nll(m, b[:3]) + nll(m, b[3:])

    ddp = [torch.zeros_like(p) for p in model.parameters()]
    for k in range(2):
        model.zero_grad()
        shard = next(iter(ProcessShard([batch], 2, k)))
        loss(model, shard).backward()
        for g, p in zip(ddp, model.parameters()):
            g += p.grad / 2
    model.zero_grad()
    accumulated(loss, 2)(model, batch).backward()
    for g, p in zip(ddp, model.parameters()):
        assert torch.allclose(g, p.grad, atol=1e-6)
    model.zero_grad()
    loss(model, batch).backward()  # the full batch differs (token means over unequal answer lengths)
    assert any(not torch.allclose(g, p.grad, atol=1e-6) for g, p in zip(ddp, model.parameters()))


def test_one_process_accelerator_trains_like_the_plain_engine(tiny):
    pytest.importorskip("accelerate")
    from unlearnkit.lm.parallel import make_lm_accelerator

    split, tok, model = tiny
    hps = {"lr": 1e-2, "epochs": 2, "batch_size": 10, "seed": 0}
    plain = unlearn_lm(model, tok, split, "npo", device="cpu", progress=False, probe=False, **hps)  # as under acc
    acc = make_lm_accelerator(cpu=True)
    assert acc.num_processes == 1
    fast = unlearn_lm(model, tok, split, "npo", progress=False, accelerator=acc, **hps)
    assert len(plain.losses) == 2 and plain.losses[1] != plain.losses[0]
    assert fast.losses == pytest.approx(plain.losses, abs=1e-6)
    for (n, a), b in zip(plain.model.state_dict().items(), fast.model.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), n
    log = TrainLog(epoch_losses=[{"unlearn": 1.5}])
    assert global_log(log, acc).epoch_losses == [{"unlearn": 1.5}]  # one process: nothing to average


def _run(args: list[str], tmp: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(tmp.read_text())


@pytest.mark.slow
def test_two_cpu_processes_give_the_loss_curve_of_two_accumulation_steps(tmp_path):
    """Two real processes (torchrun, gloo) through Accelerate against one process × 2 accumulation steps, same
    global batch: the per-epoch losses (averaged over processes) and the final weights agree."""
    pytest.importorskip("accelerate")
    one = _run([sys.executable, str(WORKER), str(tmp_path / "one.json"), "--grad-accum", "2"], tmp_path / "one.json")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29613"]
    two = _run([*cmd, str(WORKER), str(tmp_path / "two.json"), "--accelerate"], tmp_path / "two.json")
    assert one["processes"] == 1 and two["processes"] == 2
    assert len(one["losses"]) == 4 and one["losses"][-1] < one["losses"][0] - 0.1  # grad-diff moved the model
    assert two["losses"] == pytest.approx(one["losses"], rel=1e-4, abs=1e-5)
    assert two["weights_sum"] == pytest.approx(one["weights_sum"], rel=1e-5)


def test_lm_unlearn_accelerate_flag_trains_like_the_plain_command(tiny, tmp_path):
    pytest.importorskip("accelerate")
    from unlearnkit.cli import main
    from unlearnkit.lm import load_causal_lm, save_causal_lm

    split, tok, model = tiny
    save_causal_lm(model, tok, tmp_path / "model")
    for name, rows in (("forget", split.forget), ("retain", split.retain[:20])):
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = ["lm-unlearn", "--model", str(tmp_path / "model"), "--method", "ga", "--device", "cpu", "--no-progress"]
    args += ["--forget", str(tmp_path / "forget.jsonl"), "--retain", str(tmp_path / "retain.jsonl")]
    args += ["--hp", "epochs=1", "--hp", "lr=1e-2", "--hp", "batch_size=5"]
    assert main([*args, "--out", str(tmp_path / "plain")]) == 0
    assert main([*args, "--accelerate", "--out", str(tmp_path / "acc")]) == 0
    a, b = load_causal_lm(tmp_path / "plain")[0].state_dict(), load_causal_lm(tmp_path / "acc")[0].state_dict()
    assert any(not torch.equal(a[k], model.state_dict()[k]) for k in a)
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
