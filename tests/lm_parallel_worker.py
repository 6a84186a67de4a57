"""Run one LM method on a fixed tiny model and data, and write its per-epoch losses and final weights' sum.

``python lm_parallel_worker.py OUT.json --grad-accum 2`` trains on one process; launched by torchrun (two CPU
processes) with ``--accelerate`` it trains data-parallel through Accelerate. Used by tests/test_lm_parallel.py."""

from __future__ import annotations

import argparse
import json

import torch

from unlearnkit.lm import TinyLMConfig, build_tiny_lm, make_benchmark, train_tokenizer, unlearn_lm


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--method", default="grad-diff")
    ap.add_argument("--grad-accum", type=int, default=1)
    ap.add_argument("--accelerate", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    split = make_benchmark(n_people=6, n_holdout=2, seed=0).split("forget10")
    tok = train_tokenizer([f"{r['question']} {r['answer']}" for r in split.forget + split.retain], vocab_size=300)
    model = build_tiny_lm(TinyLMConfig(d_model=32, n_layers=2, n_heads=2), tok, seed=0)
    acc = None
    if args.accelerate:
        from unlearnkit.lm.parallel import make_lm_accelerator

        acc = make_lm_accelerator(cpu=True)
    hps = {"lr": 1e-2, "epochs": 4, "batch_size": 10, "grad_accum": args.grad_accum, "seed": 0}
    res = unlearn_lm(model, tok, split, args.method, device="cpu", progress=False, accelerator=acc, probe=False, **hps)
    if acc is None or acc.is_main_process:
        total = float(sum(p.detach().double().sum() for p in res.model.parameters()))
        processes = acc.num_processes if acc is not None else 1
        payload = {"losses": res.losses, "weights_sum": total, "processes": processes}
        with open(args.out, "w", encoding="utf-8") as fh:
            json.dump(payload, fh)


if __name__ == "__main__":
    main()
