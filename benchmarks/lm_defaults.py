"""Do the LM methods' defaults forget without collapsing the retained knowledge?

Usage: OMP_NUM_THREADS=1 python benchmarks/lm_defaults.py [--people 30] [--epochs 40] [--cache-dir DIR]
       [--arch llama|gpt2] [--no-probe] [--runs "rmu;rmu:preset=wmdp;concept-ablation:mode=needle"]

Trains (or loads from the cache) the original and the retain-only tiny model on the generated benchmark
(``forget10`` split, as ``lm-bench``; the original is the one ``lm-continual --people 30 --epochs 40`` trains,
shared through the cache), then runs each ``METHOD[:NAME=VALUE,...]`` of ``--runs`` at the tiny
model's defaults (``lm-bench``'s ``TINY_HPARAMS``, overridden by the given values; ``preset=wmdp`` applies
:data:`unlearnkit.lm.methods.rmu.WMDP_PRESET`) and prints forget / retain QA accuracy against the acceptance:
forget ≤ retain-only + 0.1 and retain ≥ 0.8 × the original's. Every run is probed against the held-out target
(:mod:`unlearnkit.lm.probe`, the benchmark's never-trained people) unless ``--no-probe``; the ``probe`` column gives
the step handed back and why the run ended. ``--arch gpt2`` builds both tiny models as GPT-2 instead of Llama.
"""

from __future__ import annotations

import argparse
import time

import torch

from unlearnkit.lm import LMBenchConfig, LMTrainConfig, train_pair, unlearn_lm
from unlearnkit.lm.bench import TINY_HPARAMS, load_split, qa_accuracy
from unlearnkit.lm.generate import qa_logprobs
from unlearnkit.lm.methods.rmu import WMDP_PRESET
from unlearnkit.lm.metrics.probability import mean_answer_probability
from unlearnkit.lm.model import TinyLMConfig


def parse(spec: str) -> tuple[str, dict]:
    name, _, rest = spec.partition(":")
    hps: dict = {}
    for kv in filter(None, rest.split(",")):
        k, v = kv.split("=")
        if k == "preset":
            hps.update(WMDP_PRESET)
            continue
        try:
            hps[k] = float(v) if any(c in v for c in ".e") else int(v)
        except ValueError:
            hps[k] = v
    return name.strip(), hps


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--people", type=int, default=30)
    ap.add_argument("--holdout", type=int, default=10)
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--retain-eval", type=int, default=100)
    ap.add_argument("--cache-dir")
    ap.add_argument("--arch", default="llama", choices=("llama", "gpt2"), help="the tiny model's architecture")
    ap.add_argument("--runs", default="rmu;concept-ablation;idk-dpo;simnpo")
    ap.add_argument("--no-probe", action="store_true", help="run the whole budget (no held-out target)")
    args = ap.parse_args()
    torch.manual_seed(0)
    cfg = LMBenchConfig(
        n_people=args.people,
        n_holdout=args.holdout,
        n_readers=0,
        train=LMTrainConfig(epochs=args.epochs),
        tiny=TinyLMConfig(arch=args.arch),
        methods=[],
        cache_dir=args.cache_dir,
        progress=False,
    )
    split = load_split(cfg)
    pair = train_pair(cfg, split)
    retain_qa = split.retain_eval(args.retain_eval)
    base_f, base_r = (
        qa_accuracy(pair.original, pair.tokenizer, split.forget),
        qa_accuracy(pair.original, pair.tokenizer, retain_qa),
    )
    ro_f = qa_accuracy(pair.retain_only, pair.tokenizer, split.forget)
    print(f"original: forget {base_f:.3f}, retain {base_r:.3f}; retain-only: forget {ro_f:.3f}")
    prob = {  # the held-out target's premise: never-seen people's answers are as likely as forgotten ones
        "original forget": mean_answer_probability(qa_logprobs(pair.original, pair.tokenizer, split.forget)),
        "original held-out": mean_answer_probability(qa_logprobs(pair.original, pair.tokenizer, split.holdout)),
        "retain-only forget": mean_answer_probability(qa_logprobs(pair.retain_only, pair.tokenizer, split.forget)),
        "retain-only held-out": mean_answer_probability(qa_logprobs(pair.retain_only, pair.tokenizer, split.holdout)),
    }
    print("answer probability: " + ", ".join(f"{k} {v:.3f}" for k, v in prob.items()))
    print("| run | hyper-parameters | forget acc | retain acc | forget ≤ r-o + 0.1 | retain ≥ 0.8× | probe | s |")
    print("|---|---|---|---|---|---|---|---|")
    for spec in filter(None, (s.strip() for s in args.runs.split(";"))):
        name, over = parse(spec)
        hps = {**TINY_HPARAMS.get(name, {}), **over}
        t0 = time.perf_counter()
        res = unlearn_lm(pair.original, pair.tokenizer, split, name, progress=False, probe=not args.no_probe, **hps)
        secs = time.perf_counter() - t0
        f = qa_accuracy(res.model, pair.tokenizer, split.forget)
        r = qa_accuracy(res.model, pair.tokenizer, retain_qa)
        ok_f, ok_r = f <= ro_f + 0.1, r >= 0.8 * base_r
        shown = ", ".join(f"{k}={v}" for k, v in hps.items())
        p = res.report.get("probe", {})
        p = p[-1] if isinstance(p, list) else p
        steps = f"step {p['best_step']} ({p['stopped']}, {p['rollbacks']} rollbacks)" if "best_step" in p else "off"
        print(f"| {spec} | {shown} | {f:.3f} | {r:.3f} | {'yes' if ok_f else 'no'} | {'yes' if ok_r else 'no'} "
              f"| {steps} | {secs:.0f} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
