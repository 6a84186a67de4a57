"""Exact unlearning on Fashion-MNIST: full retrain vs SISA (S=5, R=4) vs S3T for 1, 10 and 100 deletions.

Deletions arrive as requests against the same model: one id, then 9 more (10 in all), then 90 more (100 in
all), drawn once with the seed and shared by every scheme. For each request the table reports the wall-clock
seconds per deleted id, the speed-up over a full retrain (which needs one retrain per request, measured on
the data without the first k ids), and the test accuracy after k deletions with its loss against the single
model trained on all the data.

    OMP_NUM_THREADS=1 python benchmarks/exact.py --train-subset 20000 --epochs 20 --batch-size 64

``s3t-lora`` is S3T in the paper's setting: a frozen backbone pre-trained on a declared non-deletable split
(``--backbone-fraction`` of the training rows, drawn with the seed) and per-slice LoRA adapters. Deleted ids
are always drawn from the other rows, for every scheme, so all schemes answer the same requests.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import unlearnkit as uk
from unlearnkit.engine import Recipe
from unlearnkit.exact import S3T, SISA, ModelSpec, ShardedModel, audit
from unlearnkit.metrics.accuracy import accuracy
from unlearnkit.metrics.predict import predict_outputs
from unlearnkit.results import ResultTable


def test_accuracy(model: torch.nn.Module, test: uk.TensorData) -> float:
    return accuracy(predict_outputs(model, test), test.y)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="fashion-mnist")
    ap.add_argument("--train-subset", type=int, default=10000)
    ap.add_argument("--hidden", default="256,256,128", help="mlp hidden widths (S3T needs >= R layers)")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--shards", type=int, default=5)
    ap.add_argument("--slices", type=int, default=4)
    ap.add_argument("--sequences", type=int, default=2, help="S3T slice orders per shard (budget B)")
    ap.add_argument("--deletions", default="1,10,100")
    ap.add_argument("--executor", default="serial", help="serial (timing), process or ray for training")
    ap.add_argument("--schemes", default="sisa,s3t,s3t-lora")
    ap.add_argument("--backbone-fraction", type=float, default=0.2, help="s3t-lora: non-deletable split")
    ap.add_argument("--rank", type=int, default=8, help="s3t-lora: adapter rank")
    ap.add_argument("--skip-retrain", action="store_true", help="no full retrains (no speed-up columns)")
    ap.add_argument("--adapter-lr", type=float, default=None, help="s3t-lora recipe lr, backbone too")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="folder for results.json / results.csv")
    ap.add_argument("--workdir", default=None, help="where model folders go (default: a temporary folder)")
    args = ap.parse_args()
    torch.set_num_threads(1)

    ks = sorted(int(k) for k in args.deletions.split(","))
    bundle = uk.load_dataset(args.dataset, train_subset=args.train_subset)
    hidden = [int(h) for h in args.hidden.split(",")]
    spec = ModelSpec("mlp", bundle.input_shape, bundle.num_classes, {"hidden": hidden})
    recipe = Recipe(epochs=args.epochs, lr=args.lr, batch_size=args.batch_size, schedule="cosine")
    rng = np.random.default_rng(args.seed)
    n_public = int(round(args.backbone_fraction * len(bundle.train)))
    public = sorted(rng.choice(len(bundle.train), size=n_public, replace=False).tolist())
    deletable = np.setdiff1d(np.arange(len(bundle.train)), public)
    order = rng.choice(deletable, size=max(ks), replace=False).tolist()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="exact-bench-"))
    rows: list[dict] = []
    wall = time.perf_counter()

    # ---- the single model and full retrains ------------------------------------------------------------
    single = spec.build(args.seed)
    log = uk.train_model(single, bundle.train, recipe, seed=args.seed, progress=False)
    ta_single = test_accuracy(single, bundle.test)
    print(f"single model: {log.seconds:.1f}s, TA {ta_single:.2f}", flush=True)
    retrain_seconds: dict[int, float] = {}
    retrain_steps: dict[int, int] = {}
    sizes = {k: k - prev for prev, k in zip([0, *ks[:-1]], ks)}  # ids in the request that reaches k
    for k in [] if args.skip_retrain else ks:
        keep = np.setdiff1d(np.arange(len(bundle.train)), order[:k])
        m = spec.build(args.seed)
        lg = uk.train_model(m, bundle.train.subset(keep), recipe, seed=args.seed, progress=False)
        retrain_seconds[k] = lg.seconds
        retrain_steps[k] = lg.steps
        ta = test_accuracy(m, bundle.test)
        rows.append(row("full retrain", k, sizes[k], lg.seconds, lg.seconds, ta, ta_single, log.seconds))
        rows[-1].update(steps=lg.steps, work_speedup=1.0)
        print(f"full retrain without {k}: {lg.seconds:.1f}s, TA {ta:.2f}", flush=True)

    # ---- SISA and S3T ----------------------------------------------------------------------------------
    schemes = {
        "sisa": SISA(shards=args.shards, slices=args.slices),
        "s3t": S3T(shards=args.shards, slices=args.slices, sequences=args.sequences),
        "s3t-lora": S3T(
            shards=args.shards, slices=args.slices, sequences=args.sequences, backbone=True, rank=args.rank
        ),
    }
    for label in args.schemes.split(","):
        scheme = schemes[label]
        lora = label == "s3t-lora"
        folder = work / label
        shutil.rmtree(folder, ignore_errors=True)
        t0 = time.perf_counter()
        sm = ShardedModel.fit(
            folder,
            bundle.train,
            scheme,
            model=spec,
            recipe=Recipe(**{**recipe.to_dict(), "lr": args.adapter_lr or args.lr}) if lora else recipe,
            seed=args.seed,
            test=bundle.test,
            executor=args.executor,
            progress=False,
            protected=public if lora else None,
        )
        fit_seconds = time.perf_counter() - t0
        ta0 = {agg: test_accuracy(sm.ensemble(agg), bundle.test) for agg in ("vote", "softmax")}
        if lora:
            backbone = spec.build(0)
            sm.store.get(sm.state["backbone"], backbone)
            ta_bb = test_accuracy(backbone, bundle.test)
            print(f"s3t-lora backbone alone ({n_public} non-deletable rows): TA {ta_bb:.2f}")
        print(
            f"{label}: trained in {fit_seconds:.1f}s, TA vote {ta0['vote']:.2f} softmax {ta0['softmax']:.2f}",
            flush=True,
        )
        rows.append(row(label, 0, 1, None, None, ta0["vote"], ta_single, fit_seconds))
        rows[-1]["ta_loss_vs_undeleted"] = 0.0
        rows[-1]["ta_softmax"] = ta0["softmax"]
        done = 0
        for k in ks:
            rep = sm.delete(order[done:k], executor=args.executor, evaluate=False, progress=False)
            done = k
            tas = {agg: test_accuracy(sm.ensemble(agg), bundle.test) for agg in ("vote", "softmax")}
            ok = audit(sm).ok
            per = rep.seconds / sizes[k]
            base_s = retrain_seconds.get(k)
            rows.append(row(label, k, sizes[k], rep.seconds, base_s, tas["vote"], ta_single, fit_seconds))
            rows[-1]["ta_loss_vs_undeleted"] = ta0["vote"] - tas["vote"]
            rows[-1].update(ta_softmax=tas["softmax"], request_seconds=rep.seconds, exact=ok)
            rows[-1]["retrained_shards"] = sum(1 for r in rep.shards if r["retrained_steps"])
            steps = sum(r.get("optimizer_steps", 0) for r in rep.shards)
            rows[-1].update(
                steps=steps, work_speedup=retrain_steps[k] / steps if steps and k in retrain_steps else None
            )
            print(
                f"{label} after {k}: request of {sizes[k]} in {rep.seconds:.2f}s ({per:.3f}s/deletion), "
                f"x{retrain_seconds.get(k, float('nan')) / rep.seconds:.1f} "
                f"(steps {steps} vs {retrain_steps.get(k)}), "
                f"TA vote {tas['vote']:.2f} softmax {tas['softmax']:.2f} (loss vs no deletion "
                f"{ta0['vote'] - tas['vote']:.2f}), "
                f"audit {'ok' if ok else 'FAILED'}",
                flush=True,
            )
    table = ResultTable(
        title=(
            f"{args.dataset} (train subset {len(bundle.train)}), mlp {hidden}, {args.epochs} epochs, "
            f"S={args.shards} R={args.slices}, seed {args.seed}"
        ),
        rows=rows,
        columns=[
            ("scheme", "scheme"),
            ("deletions", "deletions"),
            ("request_size", "request"),
            ("sec_per_deletion", "s/deletion"),
            ("speedup", "speed-up"),
            ("steps", "SGD steps"),
            ("work_speedup", "step speed-up"),
            ("ta", "TA (vote)"),
            ("ta_softmax", "TA (softmax)"),
            ("ta_loss", "TA loss"),
            ("ta_loss_vs_undeleted", "TA loss vs 0 deletions"),
            ("train_seconds", "train s"),
        ],
        meta={"single_ta": ta_single, "single_seconds": log.seconds, "wall_seconds": time.perf_counter() - wall},
    )
    table.print()
    print(table.render())
    print(f"wall-clock {time.perf_counter() - wall:.0f}s")
    if args.out:
        table.write(args.out)
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)


def row(scheme, k, size, request_seconds, retrain_seconds, ta, ta_single, train_seconds) -> dict:
    """One table row: the request of ``size`` ids that brings the deletions to ``k``."""
    return {
        "scheme": scheme,
        "deletions": k,
        "request_size": size,
        "sec_per_deletion": request_seconds / size if request_seconds is not None else None,
        "speedup": retrain_seconds / request_seconds if request_seconds and retrain_seconds else None,
        "ta": ta,
        "ta_loss": ta_single - ta,
        "train_seconds": train_seconds,
    }


if __name__ == "__main__":
    main()
