"""Every classification method at its defaults, through the Python API, with a user's own model.

The acceptance check of the training budgets (:mod:`unlearnkit.budget`): class-wise forgetting on digits and
on a class-stratified Fashion-MNIST subset, a small CNN defined here (not one of the bundled models), trained
by the user's own recipe; then ``unlearnkit.unlearn(model, forget, retain, name)`` with nothing else set
(so ``budget="scaled"`` with the published epochs and at least ``MIN_STEPS`` optimiser steps). A method passes
when its forget accuracy is at most retrain's + 10 points and its retain accuracy within 5 points of the
original's. ``--budget published`` runs the raw published values for comparison.

    python benchmarks/defaults_check.py [--datasets digits,fashion-mnist] [--fmnist-subset 3000] [--methods ...]
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import torch
from torch import nn

import unlearnkit as uk
from unlearnkit.errors import DivergenceError
from unlearnkit.methods import available_methods

FORGET_MARGIN, RETAIN_MARGIN = 10.0, 5.0


class UserCNN(nn.Module):
    """A user's plain CNN (no BatchNorm), with ``features``/``classifier`` so that ``laf`` can split it."""

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(channels, 16, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(2),
            nn.Flatten(),
            nn.Linear(128, 64),
            nn.ReLU(),
        )
        self.classifier = nn.Linear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def accuracy(model: nn.Module, data: uk.TensorData) -> float:
    model.eval()
    with torch.no_grad():
        pred = torch.cat([model(data.x[i : i + 1024]).argmax(1) for i in range(0, len(data), 1024)])
    return 100.0 * float((pred == data.y).float().mean())


def check(dataset: str, subset: int | None, forget_class: int, methods: list[str], budget: str) -> list[dict]:
    bundle = uk.load_dataset(dataset, train_subset=subset, subset_seed=0)
    epochs = 30 if dataset == "digits" else 15
    recipe = uk.Recipe(epochs=epochs, lr=0.05, batch_size=64, schedule="cosine")

    def factory() -> nn.Module:
        torch.manual_seed(0)
        return UserCNN(bundle.input_shape[0], bundle.num_classes)

    original = factory()
    uk.train_model(original, bundle.train, recipe, seed=0, progress=False)
    split = uk.parse_forget(f"class:{forget_class}", bundle.train.y, class_names=bundle.class_names)
    forget, retain, test = split.forget(bundle.train), split.retain(bundle.train), split.test(bundle.test)
    same = {k: v for k, v in recipe.to_dict().items() if k != "grad_clip"}
    retrain = uk.unlearn(original, forget, retain, "retrain", model_factory=factory, progress=False, **same).model
    ref_f, orig_r = accuracy(retrain, forget), accuracy(original, retain)
    rows = [
        {"method": m, "forget": accuracy(x, forget), "retain": accuracy(x, retain), "test": accuracy(x, test)}
        for m, x in (("retrain", retrain), ("original", original))
    ]
    for name in methods:
        start = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                res = uk.unlearn(original, forget, retain, name, progress=False, budget=budget)
            except DivergenceError as exc:  # a diverged run is a failing row; the other methods still run
                rows.append({"method": name, "diverged": str(exc), "passes": False})
                continue
        f, r = accuracy(res.model, forget), accuracy(res.model, retain)
        rows.append(
            {
                "method": name,
                "forget": f,
                "retain": r,
                "test": accuracy(res.model, test),
                "passes": f <= ref_f + FORGET_MARGIN and r >= orig_r - RETAIN_MARGIN,
                "collapse_warning": any("collapse" in str(w.message) for w in caught),
                "seconds": time.perf_counter() - start,
                "budget_repeats": res.report.get("budget_repeats", 1),
            }
        )
        if "auto" in res.report:
            rows[-1]["auto_choice"] = res.report["auto"]["chosen"]
    return rows


def print_rows(title: str, rows: list[dict]) -> None:
    print(f"\n{title}")
    print("| method | forget acc | retain acc | test acc | passes | collapse warning | repeats | seconds |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "diverged" in r:
            print(f"| {r['method']} | diverged | | | NO | | | |")
            continue
        extra = (
            f"{'yes' if r['passes'] else 'NO'} | {'yes' if r['collapse_warning'] else ''} | "
            f"{r['budget_repeats']} | {r['seconds']:.1f}"
            if "passes" in r
            else "| | |"
        )
        print(f"| {r['method']} | {r['forget']:.1f} | {r['retain']:.1f} | {r['test']:.1f} | {extra} |")
    for r in rows:
        if "auto_choice" in r:
            print(f"auto chose {r['auto_choice']}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default="digits,fashion-mnist")
    ap.add_argument("--fmnist-subset", type=int, default=3000)
    ap.add_argument("--methods", help="comma-separated; default: every classification method")
    ap.add_argument("--budget", default="scaled", choices=("scaled", "published"))
    ap.add_argument("--out", help="write the rows as JSON here")
    args = ap.parse_args()
    methods = args.methods.split(",") if args.methods else []
    methods = methods or [m for m in available_methods(task="classification") if m != "retrain"]
    results = {}
    for ds in args.datasets.split(","):
        subset = None if ds == "digits" else args.fmnist_subset
        start = time.perf_counter()
        rows = check(ds, subset, 3, methods, args.budget)
        results[ds] = rows
        n = "all" if subset is None else subset
        took = time.perf_counter() - start
        print_rows(f"{ds} ({n} training images), class 3, budget={args.budget}, {took:.0f}s", rows)
        if args.out:
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
