"""Concept vectors on the generated benchmark: localisation check, intrinsic drift after unlearning, jailbreak check.

Usage: OMP_NUM_THREADS=1 python benchmarks/concept_vectors.py [--people 20] [--epochs 40] [--d-model 32]
       [--cache-dir DIR] [--methods ga,npo,simnpo] [--ablations needle,zero,noise]

1. Localisation (Hong et al.'s causal validation): per forgotten person, ablate its located vectors (top 8, by
   attribution and by vocabulary projection) or as many random vectors of the same layers; forget-QA and
   unrelated-QA accuracy / answer log-probability after.
2. For each fine-tuning method and each concept-ablation mode: forget/retain QA accuracy, the intrinsic metrics
   (concept vectors located in the original) and the attacks of ``lm-bench`` (adversarial probes, in-context
   probe, relearning) — which model the knowledge comes back from.
Prints Markdown tables.
"""

from __future__ import annotations

import argparse
import math
import time

import torch

from unlearnkit.cli.options import parse_hparams
from unlearnkit.lm import LMBenchConfig, LMTrainConfig, TinyLMConfig, train_pair, unlearn_lm
from unlearnkit.lm.bench import TINY_HPARAMS, attack_row, load_split, qa_accuracy
from unlearnkit.lm.concepts import noise_validation, person_concepts
from unlearnkit.lm.concepts.report import intrinsic_row


def fmt(v: float) -> str:
    return "–" if isinstance(v, float) and math.isnan(v) else f"{v:.3f}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--people", type=int, default=20)
    ap.add_argument("--holdout", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--d-model", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-2)
    ap.add_argument("--cache-dir")
    ap.add_argument("--methods", default="ga,npo,simnpo")
    ap.add_argument("--ablations", default="needle,zero,noise")
    ap.add_argument("--needle-lr", type=float, default=1e-2)
    ap.add_argument("--noise-std", type=float, default=0.3)
    ap.add_argument("--top-n", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-probe", action="store_true", help="run every method's whole budget (no held-out target)")
    ap.add_argument(
        "--hp",
        action="append",
        metavar="METHOD.KEY=VALUE",
        help="a hyper-parameter of one of --methods over its tiny-model setting, as `lm-bench --hp` (repeatable)",
    )
    args = ap.parse_args()
    torch.set_num_threads(1)
    cfg = LMBenchConfig(
        n_people=args.people,
        n_holdout=args.holdout,
        n_readers=0,
        tiny=TinyLMConfig(d_model=args.d_model),
        train=LMTrainConfig(epochs=args.epochs, lr=args.lr, batch_size=16),
        cache_dir=args.cache_dir,
        seed=args.seed,
        progress=False,
    )
    split = load_split(cfg)
    pair = train_pair(cfg, split)
    model, tok = pair.original, pair.tokenizer
    neigh = {r["person"] for r in split.neighbour}
    unrelated = [r for r in split.retain if r["person"] not in neigh][:40]
    print(f"## {split.name}: {len(split.forget)} forget QA, {len(unrelated)} unrelated QA, d_model {args.d_model}\n")

    print("### Localisation: ablate the located vectors vs as many random vectors of the same layers\n")
    print("| rank | edit | forget acc | forget logp | unrelated acc | unrelated logp | random: forget acc | "
          "random: forget logp | random: unrelated acc |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    people = sorted({r["person"] for r in split.forget})
    for rank in ("attribution", "projection"):
        concepts = person_concepts(model, tok, split.forget, split.retain, top_n=args.top_n, rank=rank)
        for mode, std in (("original", 0.0), ("zero", 0.0), ("noise", args.noise_std), ("noise", 0.1)):
            rows = []
            for c in concepts:
                qa = [r for r in split.forget if r["person"] == c.name]
                rows.append(
                    noise_validation(
                        model,
                        tok,
                        c.locations(),
                        qa,
                        unrelated,
                        mode="zero" if mode == "original" else mode,
                        noise_std=std,
                        seed=args.seed,
                    )  # fmt: skip
                )

            def avg(key: str, rows=rows) -> float:
                return sum(r[key] for r in rows) / len(rows)

            if mode == "original":
                print(f"| – | none | {fmt(avg('concept_acc_before'))} | {fmt(avg('concept_logp_before'))} | "
                      f"{fmt(avg('unrelated_acc_before'))} | {fmt(avg('unrelated_logp_before'))} | | | |")  # fmt: skip
                continue
            edit = "zero" if mode == "zero" else f"noise std {std}"
            print(
                f"| {rank} | {edit} | {fmt(avg('concept_acc_after'))} | {fmt(avg('concept_logp_after'))} | "
                f"{fmt(avg('unrelated_acc_after'))} | {fmt(avg('unrelated_logp_after'))} | "
                f"{fmt(avg('random_concept_acc_after'))} | {fmt(avg('random_concept_logp_after'))} | "
                f"{fmt(avg('random_unrelated_acc_after'))} |"
            )
    print(f"\n({len(people)} forget people, top {args.top_n} vectors each)\n")

    concepts = person_concepts(model, tok, split.forget, split.retain, top_n=args.top_n)
    runs: list[tuple[str, str, dict]] = [("original", "", {})]
    given = parse_hparams(args.hp, nested=True)
    for m in args.methods.split(","):
        runs.append((m, m, {**TINY_HPARAMS.get(m, {}), **given.get(m, {})}))
    for mode in args.ablations.split(","):
        hp = {"mode": mode, "top_n": args.top_n, "noise_std": args.noise_std}
        if mode == "needle":
            hp.update(lr=args.needle_lr, epochs=5, batch_size=32)
        runs.append((f"concept-ablation ({mode})", "concept-ablation", hp))
    retain_eval = split.retain_eval(200)
    print("### Intrinsic drift of the concept vectors, behaviour, and attacks\n")
    cols = ["forget acc", "retain acc", "CV cosine", "all-vector cosine", "CV norm Δ", "CV Jaccard",
            "CV concept tokens", "probes (mean)", "ICL forget", "relearn after", "seconds"]  # fmt: skip
    print("| model | " + " | ".join(cols) + " |")
    print("|---|" + "---|" * len(cols))
    for label, method, hp in runs:
        t0 = time.perf_counter()
        m = (
            model
            if not method
            else unlearn_lm(model, tok, split, method, progress=False, probe=not args.no_probe, **hp).model
        )
        secs = time.perf_counter() - t0
        row = intrinsic_row(model, m, concepts)
        att = attack_row(m, tok, split, cfg, None)
        probes = [v for k, v in att.items() if k.startswith("probe_")]
        vals = [
            qa_accuracy(m, tok, split.forget),
            qa_accuracy(m, tok, retain_eval),
            row["cv_cosine"],
            row["cv_all_cosine"],
            row["cv_norm_change"],
            row["cv_jaccard"],
            row["cv_concept_token_rate"],
            sum(probes) / len(probes) if probes else float("nan"),
            att.get("icl_with_context", float("nan")),
            att.get("relearn_after", float("nan")),
            secs,
        ]
        print(f"| {label} | " + " | ".join(fmt(v) for v in vals) + " |", flush=True)


if __name__ == "__main__":
    main()
