"""O3's detector settings on two differently built tiny models: does the gate route?

Usage: OMP_NUM_THREADS=1 python benchmarks/o3_detector.py [--people 20] [--epochs 30] [--archs llama,gpt2]
       [--configs 1e-3x5,1e-2x10] [--cache-dir DIR]

For each architecture (the embedded tiny Llama and a tiny GPT-2, both built here from a config and trained on
the generated benchmark as ``lm-continual`` trains its original, with fewer people and epochs), one detector per
``LRxEPOCHS`` setting is fitted on the first request's forget prompts (4 requests × 5 people, as
``lm-continual``), and the gate's AUROC is printed: forget vs retain prompts, forget vs unrelated
(general-knowledge) prompts, held-out rewordings of the forget questions vs unrelated prompts
(:mod:`unlearnkit.lm.continual.routing`), plus the mean gate weight on each set. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from unlearnkit.lm import LMTrainConfig, TinyLMConfig, build_tiny_lm, load_causal_lm, save_causal_lm, train_tokenizer
from unlearnkit.lm.bench import _corpus
from unlearnkit.lm.continual import ContrastiveEntropyDetector, DetectorConfig, GatedLM, benchmark_requests
from unlearnkit.lm.continual.routing import gate_aurocs, reworded_question
from unlearnkit.lm.encode import encode_texts, prompt_text
from unlearnkit.lm.training import train_lm


def backbone(arch: str, seq, epochs: int, cache: Path | None):
    folder = cache / f"o3-detector-{arch}-{len(seq.split.forget)}-{epochs}" if cache else None
    if folder is not None and (folder / "config.json").is_file():
        return load_causal_lm(folder)
    tok = train_tokenizer(_corpus(seq.split), 2048)
    model = build_tiny_lm(TinyLMConfig(arch=arch), tok, seed=0)
    t0 = time.perf_counter()
    train_lm(model, encode_texts(tok, seq.split.train_texts), LMTrainConfig(epochs=epochs), progress=False)
    print(
        f"trained {arch} ({sum(p.numel() for p in model.parameters()) / 1e6:.2f} M) in {time.perf_counter() - t0:.0f} s"
    )
    if folder is not None:
        save_causal_lm(model, tok, folder, overwrite=True)
    return model.eval(), tok


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--people", type=int, default=30)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--archs", default="llama,gpt2")
    ap.add_argument("--configs", default="1e-3x5,1e-2x10")
    ap.add_argument("--cache-dir")
    args = ap.parse_args()
    torch.manual_seed(0)
    cache = Path(args.cache_dir) if args.cache_dir else None
    seq = benchmark_requests(4, 5, n_people=args.people, n_holdout=2, seed=0)
    rows = []
    for arch in args.archs.split(","):
        model, tok = backbone(arch, seq, args.epochs, cache)
        forget = [prompt_text(r["question"], tok) for r in seq.requests[0]]
        reworded = [prompt_text(q, tok) for q in map(reworded_question, seq.requests[0]) if q]
        retain = [prompt_text(r["question"], tok) for r in seq.split.retain[:100]]
        unrelated = [prompt_text(r["question"], tok) for r in seq.split.world]
        for spec in args.configs.split(","):
            lr, epochs = spec.split("x")
            t0 = time.perf_counter()
            det = ContrastiveEntropyDetector(model, tok, DetectorConfig(lr=float(lr), epochs=int(epochs)))
            det.fit(forget, seed=0)
            secs = time.perf_counter() - t0
            gated = GatedLM(model, tok, [det])
            a = gate_aurocs(gated, forget, retain, unrelated, reworded)
            w = {k: float(np.mean(gated.weights_for(v))) for k, v in (("f", forget), ("r", retain), ("u", unrelated))}
            rows.append((arch, spec, a, w, secs))
    print("| model | detector lr × epochs | AUROC forget/retain | forget/unrelated | reworded/unrelated "
          "| weight forget | retain | unrelated | fit s |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for arch, spec, a, w, secs in rows:
        print(f"| {arch} | {spec} | {a['forget_retain']:.2f} | {a['forget_unrelated']:.2f} | "
              f"{a['reworded_unrelated']:.2f} | {w['f']:.2f} | {w['r']:.2f} | {w['u']:.2f} | {secs:.0f} |")  # fmt: skip


if __name__ == "__main__":
    main()
