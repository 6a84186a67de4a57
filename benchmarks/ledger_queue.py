"""Deletion queues scale linearly: time to process a folder of N one-id request files in one round.

Every request gets its own ``pending`` and ``committed`` ledger entries, so a queue of N requests appends
2N entries. :meth:`unlearnkit.exact.Ledger.append` continues from the chain it verified last instead of
re-verifying the whole file, so the cost per request does not grow with the ledger.

    OMP_NUM_THREADS=1 python benchmarks/ledger_queue.py --sizes 200,1000

Each size starts from a fresh copy of one trained model (SISA, 2 shards x 2 slices, digits); the affected
shards retrain once per round whatever N is. Prints seconds per queue (fastest of ``--repeat`` runs) and the
ratio to the smallest.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from unlearnkit.engine import Recipe
from unlearnkit.exact import ShardedModel
from unlearnkit.exact.workflow import delete_ids, train_exact


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="200,1000", help="queue lengths to time (comma-separated)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per size; the fastest counts (shared machines)")
    ap.add_argument("--workdir", default=None, help="where model folders go (default: a temporary folder)")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    work = Path(args.workdir or tempfile.mkdtemp(prefix="ledger-queue-"))
    base = work / "base"
    if not (base / "exact.json").is_file():
        train_exact(
            base,
            scheme_options={"shards": 2, "slices": 2},
            dataset="digits",
            model_kwargs={"hidden": [16]},
            recipe=Recipe(epochs=1, lr=0.1, batch_size=64),
            executor="serial",
            progress=False,
        )
    ids = sorted(ShardedModel.open(base).plan.all_ids())
    if max(sizes) > len(ids):
        raise SystemExit(f"the model has {len(ids)} ids; ask for at most that many requests")
    times: dict[int, float] = {}
    for n in sizes:
        queue = work / f"queue{n}"
        shutil.rmtree(queue, ignore_errors=True)
        queue.mkdir()
        for k in range(n):
            (queue / f"r{k:05d}.txt").write_text(f"{ids[k]}\n")
        runs = []
        for _ in range(args.repeat):
            folder = work / f"m{n}"
            shutil.rmtree(folder, ignore_errors=True)
            shutil.copytree(base, folder)
            start = time.perf_counter()
            reports = delete_ids(folder, queue, executor="serial", progress=False)
            runs.append(time.perf_counter() - start)
        times[n] = min(runs)
        entries = len(ShardedModel.open(folder).ledger.entries())
        shown = ", ".join(f"{t:.2f}" for t in runs)
        print(f"{n:5d} requests: {times[n]:7.2f} s fastest of [{shown}]  ({len(reports)} reports, {entries} entries)")
    first = sizes[0]
    for n in sizes[1:]:
        print(f"{n} / {first} requests: {times[n] / times[first]:.2f}x the time ({n / first:.1f}x the requests)")
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
