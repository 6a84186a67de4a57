"""Peak memory and time per step of LM unlearning from ~10 M to ~2 B parameters, fp32/bf16, full weights or LoRA.

Usage: OMP_NUM_THREADS=1 python benchmarks/lm_scale.py [--sizes 10m,100m] [--precisions fp32,bf16]
       [--lora no,yes,inplace] [--method npo] [--rows 16] [--batch-size 4] > cells.md
       python benchmarks/lm_scale.py --fit cells.md [more.md ...] [--budget-gib 24] [--min-params-m 90]

Each cell runs in its own process (so its peak RSS is its own): a GPT-2-style model built locally from a config
(no download; vocab 16384 except 10m: 8192): 10m (d 384, 4 layers, 10.3 M parameters), 100m (d 768, 12 layers,
97.8 M), 350m (d 1024, 26 layers, 344.5 M), 1b (d 2048, 20 layers, 1.04 B), 2b (d 2048, 40 layers, 2.05 B), 3b
(d 2560, 36 layers, 2.87 B); the generated benchmark's tokenizer, ``--rows`` forget QA rows of one epoch of
``--method`` at ``--batch-size`` (``rows / batch-size`` steps, plus as many retain batches for methods with a
retain term). ``--lora``: ``no`` (full weights), ``yes`` (LoRA; the caller's original stays intact and is NPO's
frozen reference, so two copies of the weights are held), ``inplace`` (LoRA on the given model,
``unlearn_lm(..., inplace=True)``, with the adapters switched off as the reference: one copy). Prints a Markdown
table: parameters, seconds per step (the method's own training time / steps) and the process's peak RSS.

``--fit`` reads such tables and fits, per (precision, LoRA), peak RSS MB = a + b × parameters (least squares over
the cells of at least ``--min-params-m`` M parameters: below that, fixed costs dominate), then prints a and b (as
bytes per parameter) and the parameter count at which the fit reaches ``--budget-gib``: a prediction, not a
measurement, resting on the cells listed beside it.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys

SIZES = {"10m": {"n_embd": 384, "n_layer": 4, "n_head": 6, "vocab": 8192},
         "100m": {"n_embd": 768, "n_layer": 12, "n_head": 12, "vocab": 16384},
         "350m": {"n_embd": 1024, "n_layer": 26, "n_head": 16, "vocab": 16384},
         "1b": {"n_embd": 2048, "n_layer": 20, "n_head": 16, "vocab": 16384},
         "2b": {"n_embd": 2048, "n_layer": 40, "n_head": 16, "vocab": 16384},
         "3b": {"n_embd": 2560, "n_layer": 36, "n_head": 20, "vocab": 16384}}  # fmt: skip
#: ``--lora`` values: full weights, LoRA with the original as NPO's frozen reference (two copies of the weights),
#: LoRA trained in place with the adapters switched off as the reference (one copy; ``unlearn_lm(inplace=True)``)
LORA = {"no": (False, False), "yes": (True, False), "inplace": (True, True)}


def one(size: str, precision: str, lora: str, method: str, rows: int, batch_size: int) -> dict:
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
    use_lora, inplace = LORA[lora]
    kw = {"inplace": True} if inplace else {}  # the default copies the model (and keeps it as the reference)
    res = unlearn_lm(
        model, tok, split, method, progress=False, epochs=1, batch_size=batch_size, lr=1e-5, precision=precision,
        lora=use_lora, **kw,
    )  # fmt: skip
    steps = math.ceil(len(split.forget) / batch_size)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"params_m": params / 1e6, "s_per_step": res.seconds / steps, "peak_rss_mb": peak_mb, "steps": steps}


def fit(paths: list[str], budget_gib: float, min_params_m: float) -> None:
    """Least-squares peak-RSS lines per (precision, LoRA) from Markdown tables written by this script."""
    cells: dict[tuple[str, str], list[tuple[float, float, str]]] = {}
    for path in paths:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                f = [c.strip() for c in line.strip().strip("|").split("|")]
                if len(f) != 7 or not f[1].endswith(" M"):
                    continue
                params = float(f[1].removesuffix(" M"))
                if params >= min_params_m:
                    cells.setdefault((f[2], f[3]), []).append((params, float(f[5]), f[0]))
    budget = budget_gib * 1024
    head = f"| precision | LoRA | a MB | b bytes / param | fits in {budget_gib:g} GiB (predicted) | measured cells |"
    print(head)
    print("|---|---|---|---|---|---|")
    for (precision, lora), pts in sorted(cells.items()):
        pts.sort()
        n = len(pts)
        if len({p for p, _, _ in pts}) < 2:
            continue
        mx, my = sum(p for p, _, _ in pts) / n, sum(m for _, m, _ in pts) / n
        b = sum((p - mx) * (m - my) for p, m, _ in pts) / sum((p - mx) ** 2 for p, _, _ in pts)
        a = my - b * mx
        largest = (budget - a) / b  # M parameters
        where = ", ".join(f"{name} {m:.0f} MB" for _, m, name in pts)
        # b is MB per M parameters; × 2^20 / 10^6 gives bytes per parameter
        print(f"| {precision} | {lora} | {a:.0f} | {b * 1.048576:.1f} | {largest / 1000:.1f} B | {where} |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--fit", nargs="+", metavar="TABLE.md", help="fit peak RSS to parameters from these tables")
    ap.add_argument("--budget-gib", type=float, default=24.0)
    ap.add_argument("--min-params-m", type=float, default=90.0)
    ap.add_argument("--sizes", default="10m,100m")
    ap.add_argument("--precisions", default="fp32,bf16")
    ap.add_argument("--lora", default="no,yes")
    ap.add_argument("--method", default="npo")
    ap.add_argument("--rows", type=int, default=16)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.fit:
        fit(args.fit, args.budget_gib, args.min_params_m)
        return
    if args.one:
        size, precision, lora = args.one.split(":")
        print(json.dumps(one(size, precision, lora, args.method, args.rows, args.batch_size)))
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
