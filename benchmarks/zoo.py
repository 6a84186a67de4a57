"""A small zoo of originals the defaults were not tuned on: does forgetting land on retraining?

Each member is an original (architecture, optimiser and schedule, data) with the requests ``random:0.1`` and
``class:3``. ``ROLE`` is fixed here before any tuning: ``tune`` members may be used to choose defaults,
``hold-out`` members only judge them. For every member and request it runs ``bench`` twice on the same cached
original and retrain — ``--stop budget`` (the whole budget, as before the probes) and ``--stop target`` (probed
runs that stop at the held-out target, keep their best state and never collapse) — and prints retrain's
metrics, the target estimate (UA = 100 - target forget accuracy, its MIA) and each method's Avg-Gap and
time over retraining in both modes.

    python benchmarks/zoo.py [--members NAME,...] [--requests random:0.1,class:3] [--methods ft,ga,rl,l1-sparse,salun]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch

from unlearnkit.bench import BenchConfig, run_bench
from unlearnkit.engine import Recipe

#: name -> (role, BenchConfig keyword arguments). Fixed before tuning: only "hold-out" members judge.
MEMBERS: dict[str, tuple[str, dict[str, Any]]] = {
    # a user's BatchNorm CNN: SGD + a one-cycle-shaped schedule (warmup-cosine) on a 3 000-image Fashion-MNIST subset
    "fmnist3k-bncnn-sgd-warmup-cosine": (
        "hold-out",
        dict(
            dataset="fashion-mnist",
            train_subset=3000,
            model="cnn",
            model_kwargs={"width": 8, "hidden": 64},
            recipe=Recipe(epochs=10, lr=0.05, optimizer="sgd", schedule="warmup-cosine", batch_size=64),
        ),
    ),
    # a small CNN trained with Adam on digits (a held-out 10 % of the training split is set aside)
    "digits-cnn-adam": (
        "hold-out",
        dict(
            dataset="digits",
            model="cnn",
            model_kwargs={"width": 8, "hidden": 32},
            recipe=Recipe(epochs=20, lr=1e-3, optimizer="adam", weight_decay=0.0, batch_size=32),
        ),
    ),
    # the demo's MLP, trained to memorise 720 digits (used to choose the probe settings)
    "digits-mlp-demo": (
        "tune",
        dict(
            dataset="digits",
            train_subset=720,
            model="mlp",
            recipe=Recipe(epochs=100, lr=0.05, batch_size=32, schedule="cosine", weight_decay=0.0),
        ),
    ),
}


def run_member(name: str, request: str, methods: list[str], cache: str, seed: int) -> dict[str, Any]:
    role, kwargs = MEMBERS[name]
    out: dict[str, Any] = {"member": name, "role": role, "request": request}
    for stop in ("budget", "target"):
        cfg = BenchConfig(
            **kwargs,
            forget=request,
            methods=methods,
            stop=stop,
            heldout="split",  # both runs on the same original (and its held-out set)
            seed=seed,
            cache_dir=cache,
            progress=False,
        )
        rows = {r["method"]: r for r in run_bench(cfg).table.rows}
        ret = rows["retrain"]
        out["retrain"] = {k: round(ret[k], 2) for k in ("ua", "ra", "ta", "mia")} | {"seconds": ret["seconds"]}
        out["original_gap"] = round(rows["original"]["avg_gap"], 2)
        out["original_ra"] = round(rows["original"]["ra"], 2)
        for m in methods:
            r = rows[m]
            cell = out.setdefault("methods", {}).setdefault(m, {})
            if r.get("failed"):
                cell[stop] = {"failed": r["failed"][:80]}
                continue
            cell[stop] = {
                "avg_gap": round(r["avg_gap"], 2),
                "ra": round(r["ra"], 2),
                "time_ratio": round(r["time_ratio"], 3),
                "collapsed": r.get("note") == "collapsed",
            }
            if "probe" in r:
                cell[stop]["stopped"] = r["probe"]["stopped"]
            if "auto" in r:  # what auto chose, whether it reached the target, its cost against its estimate
                a = r["auto"]
                cell[stop]["stopped"] = "reached" if a["reached"] else "not reached"
                cell[stop]["auto"] = {
                    "chosen": a["chosen"],
                    "verdict": a["verdict"],
                    "estimate_seconds": a["estimate"]["retrain_seconds"],
                    "spent_seconds": round(a["spent"]["seconds"], 3),
                    "rungs": [x["candidates"] for x in a["rungs"]],
                }
            if "target" in r:
                t = r["target"]
                out["target"] = {
                    "source": t["source"],
                    "ua": round(100 - t["forget_acc"], 2),
                    "mia": None if t.get("mia") is None else round(t["mia"], 2),
                }
    return out


def print_member(res: dict[str, Any]) -> None:
    r, t = res["retrain"], res.get("target", {})
    print(f"\n## {res['member']} ({res['role']}) · {res['request']}")
    print(
        f"retrain: UA {r['ua']} RA {r['ra']} TA {r['ta']} MIA {r['mia']} ({r['seconds']:.1f} s) · "
        f"target ({t.get('source')}): UA {t.get('ua')} MIA {t.get('mia')} · "
        f"do nothing: Avg-Gap {res['original_gap']} (RA {res['original_ra']})"
    )
    print(
        "| method | Avg-Gap budget | Avg-Gap target | RA budget | RA target | t/retrain budget | t/retrain target "
        "| stopped |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for m, cell in res["methods"].items():
        b, g = cell.get("budget", {}), cell.get("target", {})
        if "failed" in b or "failed" in g:
            print(f"| {m} | {b.get('failed', b.get('avg_gap'))} | {g.get('failed', g.get('avg_gap'))} | | | | | |")
            continue
        flag = lambda c: " (collapsed)" if c.get("collapsed") else ""  # noqa: E731
        print(
            f"| {m} | {b['avg_gap']}{flag(b)} | {g['avg_gap']}{flag(g)} | {b['ra']} | {g['ra']} | "
            f"{b['time_ratio']} | {g['time_ratio']} | {g.get('stopped', '')} |"
        )
    for m, cell in res["methods"].items():
        for stop, c in cell.items():
            if "auto" in c:
                a, est = c["auto"], c["auto"]["estimate_seconds"]
                est = "unknown" if est is None else f"{est:.1f} s"
                print(f"{m} ({stop}): {a['verdict']} · {a['spent_seconds']} s (retrain est. {est}), rungs {a['rungs']}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--members", default=",".join(MEMBERS))
    p.add_argument("--requests", default="random:0.1,class:3")
    p.add_argument("--methods", default="ft,ga,rl,l1-sparse,salun")
    p.add_argument("--cache-dir", default=str(Path.home() / ".cache" / "unlearnkit-zoo"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="write every result to this JSON file")
    args = p.parse_args()
    torch.set_num_threads(1)
    start = time.time()
    results = []
    for name in args.members.split(","):
        for request in args.requests.split(","):
            res = run_member(name, request, args.methods.split(","), args.cache_dir, args.seed)
            print_member(res)
            results.append(res)
    print(f"\n{time.time() - start:.0f} s wall-clock")
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
