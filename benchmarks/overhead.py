"""Engine overhead: one epoch through ``unlearnkit.engine.train`` vs a bare hand-written PyTorch loop.

Same model architecture, data, batch size and optimiser; runs are interleaved (bare, engine, bare, …) so that
machine load affects both alike; prints the median seconds of each and their ratio (target ≤ 1.10).

    python benchmarks/overhead.py [--dataset fashion-mnist] [--subset 12000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

import unlearnkit as uk
from unlearnkit.data.tensors import Batches
from unlearnkit.engine import Phase, Recipe, train
from unlearnkit.losses import cross_entropy


def bare_epoch(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int, lr: float, seed: int) -> None:
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(x), generator=g)
    model.train()
    for i in range(0, len(x), batch_size):
        idx = order[i : i + batch_size]
        opt.zero_grad(set_to_none=True)
        loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
        loss.backward()
        opt.step()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="fashion-mnist")
    ap.add_argument("--subset", type=int, default=12000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--progress", action="store_true", help="show the engine's progress bar while timing")
    args = ap.parse_args()
    bundle = uk.load_dataset(args.dataset, train_subset=args.subset)
    data = bundle.train
    recipe = Recipe(epochs=1, lr=0.01, batch_size=args.batch_size)

    def fresh() -> nn.Module:
        torch.manual_seed(0)
        return uk.create_model("cnn", bundle.input_shape, bundle.num_classes)

    bare_epoch(fresh(), data.x[:512], data.y[:512], args.batch_size, 0.01, 0)  # warm-up
    times: dict[str, list[float]] = {"bare": [], "engine": []}
    for r in range(args.repeats):
        for kind in ("bare", "engine") if r % 2 == 0 else ("engine", "bare"):
            model = fresh()
            start = time.perf_counter()
            if kind == "bare":
                bare_epoch(model, data.x, data.y, args.batch_size, 0.01, r)
            else:
                phase = Phase("train", Batches(data, args.batch_size, seed=r), cross_entropy)
                train(model, phase, recipe, device="cpu", progress=args.progress)
            times[kind].append(time.perf_counter() - start)
    bare, eng = statistics.median(times["bare"]), statistics.median(times["engine"])
    print(
        f"dataset={args.dataset} n={len(data)} model=cnn batch={args.batch_size} repeats={args.repeats} "
        f"threads={torch.get_num_threads()}"
    )
    print(f"bare loop   median {bare:.3f} s/epoch  ({', '.join(f'{t:.2f}' for t in times['bare'])})")
    print(f"engine      median {eng:.3f} s/epoch  ({', '.join(f'{t:.2f}' for t in times['engine'])})")
    print(f"ratio engine/bare = {eng / bare:.3f}  (target <= 1.10)")


if __name__ == "__main__":
    main()
