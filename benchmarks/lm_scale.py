"""Peak memory and time per step of LM unlearning at ~10 M and ~100 M parameters, fp32/bf16, full or LoRA.

Usage: OMP_NUM_THREADS=1 python benchmarks/lm_scale.py [--sizes 10m,100m] [--precisions fp32,bf16]
       [--lora no,yes] [--method npo] [--rows 16] [--batch-size 4]

Each cell runs in its own process (so its peak RSS is its own): a GPT-2-style model built locally from a config
(10m: d 384, 4 layers, vocab 8192 → 10.2 M parameters; 100m: d 768, 12 layers, vocab 16384 → 97.7 M), the
generated benchmark's tokenizer, ``--rows`` forget QA rows of one epoch of ``--method`` at ``--batch-size``
(``rows / batch-size`` steps, plus as many retain batches for methods with a retain term). Prints a Markdown table:
parameters, seconds per step (the method's own training time / steps) and the process's peak RSS.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys

SIZES = {"10m": {"n_embd": 384, "n_layer": 4, "n_head": 6, "vocab": 8192},
         "100m": {"n_embd": 768, "n_layer": 12, "n_head": 12, "vocab": 16384}}  # fmt: skip


def one(size: str, precision: str, lora: bool, method: str, rows: int, batch_size: int) -> dict:
    import torch
    import transformers

    from unlearnkit.lm import make_benchmark, train_tokenizer, unlearn_lm

    torch.manual_seed(0)
    split = make_benchmark(n_people=20, n_holdout=2, seed=0).split("forget10")
    split.forget = split.forget[:rows]
    tok = train_tokenizer([f"{r['question']} {r['answer']}" for r in split.forget + split.retain], vocab_size=2048)
    s = SIZES[size]
    cfg = transformers.GPT2Config(
        vocab_size=s["vocab"], n_embd=s["n_embd"], n_layer=s["n_layer"], n_head=s["n_head"], n_positions=256,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
    )  # fmt: skip
    model = transformers.GPT2LMHeadModel(cfg)
    params = sum(p.numel() for p in model.parameters())
    res = unlearn_lm(
        model, tok, split, method, progress=False, epochs=1, batch_size=batch_size, lr=1e-5, precision=precision,
        lora=lora,
    )  # fmt: skip
    steps = math.ceil(len(split.forget) / batch_size)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"params_m": params / 1e6, "s_per_step": res.seconds / steps, "peak_rss_mb": peak_mb, "steps": steps}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10m,100m")
    ap.add_argument("--precisions", default="fp32,bf16")
    ap.add_argument("--lora", default="no,yes")
    ap.add_argument("--method", default="npo")
    ap.add_argument("--rows", type=int, default=16)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        size, precision, lora = args.one.split(":")
        print(json.dumps(one(size, precision, lora == "yes", args.method, args.rows, args.batch_size)))
        return
    print(f"| size | parameters | precision | LoRA | {args.method} s / step | peak RSS MB | steps |")
    print("|---|---|---|---|---|---|---|")
    for size in args.sizes.split(","):
        for precision in args.precisions.split(","):
            for lora in args.lora.split(","):
                cmd = [sys.executable, __file__, "--one", f"{size}:{precision}:{lora}", "--method", args.method]
                cmd += ["--rows", str(args.rows), "--batch-size", str(args.batch_size)]
                out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
                r = json.loads(out)
                print(f"| {size} | {r['params_m']:.1f} M | {precision} | {lora} | {r['s_per_step']:.2f} | "
                      f"{r['peak_rss_mb']:.0f} | {r['steps']} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
