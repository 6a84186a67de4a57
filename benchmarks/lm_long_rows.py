"""Peak memory and time of ``lm-eval`` and ``lm-unlearn`` on TOFU-format files with normal answers, and with one
answer of 10 MB (rows are cut to ``--max-length`` tokens while they are encoded, before the whole text is
tokenised).

Usage: OMP_NUM_THREADS=1 python benchmarks/lm_long_rows.py [--mb 10] [--work DIR]
Each command runs in its own process; the figures are that process's peak RSS (``ru_maxrss``) and wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _child(argv: list[str]) -> None:
    from unlearnkit.cli import main

    rc = main(argv)
    print(json.dumps({"rc": rc, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def _setup(work: Path, mb: float) -> None:
    import torch

    from unlearnkit.lm import TinyLMConfig, build_tiny_lm, make_benchmark, save_causal_lm, train_tokenizer

    torch.manual_seed(0)
    split = make_benchmark(n_people=6, n_holdout=2, seed=0).split("forget10")
    tok = train_tokenizer([f"{r['question']} {r['answer']}" for r in split.forget + split.retain], vocab_size=300)
    save_causal_lm(build_tiny_lm(TinyLMConfig(arch="gpt2", d_model=32, n_layers=2, n_heads=2), tok), tok, work / "m")
    rows = [{"question": r["question"], "answer": r["answer"]} for r in split.forget]
    (work / "forget.json").write_text("".join(json.dumps(r) + "\n" for r in rows))
    long = [dict(r) for r in rows]
    words = (long[0]["answer"] + " ").encode()
    long[0]["answer"] = (words * (int(mb * 2**20) // len(words) + 1)).decode()[: int(mb * 2**20)]
    (work / "forget-long.json").write_text("".join(json.dumps(r) + "\n" for r in long))
    retain = [{"question": r["question"], "answer": r["answer"]} for r in split.retain[:20]]
    (work / "retain.json").write_text("".join(json.dumps(r) + "\n" for r in retain))


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        _child(sys.argv[2:])
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=float, default=10.0, help="size of the long answer in MB")
    ap.add_argument("--work", help="folder for the model and files (default: a temporary one)")
    args = ap.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="lm-long-rows-"))
    work.mkdir(parents=True, exist_ok=True)
    _setup(work, args.mb)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    print(f"long answer: {(work / 'forget-long.json').stat().st_size / 2**20:.1f} MB file; OMP_NUM_THREADS=1")
    print(f"{'command':<11} {'forget file':<17} {'rc':>3} {'peak RSS MB':>12} {'seconds':>8}")
    for command in ("lm-eval", "lm-unlearn"):
        for forget in ("forget.json", "forget-long.json"):
            argv = [command, "--model", str(work / "m"), "--forget", str(work / forget)]
            argv += ["--retain", str(work / "retain.json"), "--no-progress"]
            if command == "lm-unlearn":
                argv += ["--method", "ga", "--hp", "epochs=1", "--out", str(work / "out"), "--overwrite"]
            start = time.perf_counter()
            proc = subprocess.run(
                [sys.executable, __file__, "--child", *argv], capture_output=True, text=True, env=env, check=False
            )
            seconds = time.perf_counter() - start
            lines = [x for x in proc.stdout.splitlines() if x.startswith("{")]
            if not lines:
                print(proc.stderr[-2000:])
                raise SystemExit(f"{command} on {forget} failed")
            res = json.loads(lines[-1])
            print(f"{command:<11} {forget:<17} {res['rc']:>3} {res['peak_rss_mb']:>12.0f} {seconds:>8.1f}")


if __name__ == "__main__":
    main()
