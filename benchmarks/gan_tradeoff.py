"""Adapt-then-Unlearn on digits: the forgotten-class share against FD along one stage-2 run.

One run of stage 2 (:func:`unlearnkit.gan.adapt_unlearn.unlearn`'s loop, through the engine) on the cached
bundled GAN, with snapshots of the trained generator and of its moving average (the reference's ``g_ema``)
every ``--every`` generator steps; each snapshot is measured as ``gan-bench`` measures a model (feature share,
FD of the rest, precision, recall; 2000 samples, latent seed 12345). The knobs are those that decide the
trade-off: the repulsion variant and γ, the stage-2 lr / batch / length, and the positives (the reference's
argmax screen, or confident positives below ``--max-prob``, optionally class-balanced, from ``--pool``
samples). Stage 1 runs as in the ``miniature`` preset (λ = 5·10⁶, 300 steps, lr 2·10⁻⁴, batch 64); its
adapted models are cached in ``--work`` per seed and stage-1 EMA setting. One JSON line per snapshot goes to
``--work/tradeoff.jsonl``. ``--positives-fd`` only prints the FD of 2000 of the selected positives (what a
stage 2 that copied them exactly would reach).

    python benchmarks/gan_tradeoff.py --variant nl2 --max-prob 0.1 --balance --pool 20000 --steps 3000 \\
        --every 500 --tag H
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import torch

from unlearnkit.diffusion.metrics import frechet_distance
from unlearnkit.engine import Hook, StepContext
from unlearnkit.gan.adapt_unlearn import (
    REFERENCE_EMA_DECAY,
    AdaptUnlearnConfig,
    EMAHook,
    RepulsionHook,
    adapt,
    classify_samples,
    negatives_of_class,
    positive_indices,
)
from unlearnkit.gan.metrics import evaluate_gan, evaluator_for, feature_probability, real_reference
from unlearnkit.gan.models import GAN
from unlearnkit.gan.train import AdversarialRecipe, GANTrainConfig, cached_gan, load_images, train_adversarial


class Snapshots(Hook):
    """Every ``every`` generator steps, a copy of the generator's weights and (with ``ema``) of its average."""

    def __init__(self, every: int, ema: EMAHook | None) -> None:
        self.every, self.ema, self.steps = every, ema, 0
        self.raw: dict[int, dict[str, torch.Tensor]] = {}
        self.average: dict[int, dict[str, torch.Tensor]] = {}

    def after_step(self, ctx: StepContext) -> None:
        if ctx.phase != "g":
            return
        if self.ema is not None:
            self.ema.after_step(ctx)
        self.steps += 1
        if self.steps % self.every == 0:
            self.raw[self.steps] = copy.deepcopy(ctx.model.generator.state_dict())
            if self.ema is not None:
                self.average[self.steps] = {n: t.clone() for n, t in self.ema.average.items()}


def decay(text: str) -> float | None:
    return None if text.lower() == "none" else float(text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--variant", default="nl2", choices=("finetune", "el2", "nl2", "il2"))
    ap.add_argument("--gamma", type=float, default=1.0)
    ap.add_argument("--steps", type=int, default=3000, help="stage-2 steps")
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--pool", type=int, default=5000, help="samples screened for positives")
    ap.add_argument("--max-prob", type=float, default=None, help="confident positives: p(feature) below this")
    ap.add_argument("--balance", action="store_true", help="class-balanced positives")
    ap.add_argument("--ema", type=decay, default=REFERENCE_EMA_DECAY, help="stage-2 average decay, or none")
    ap.add_argument("--adapt-ema", type=decay, default=None, help="stage-1 average decay (default none)")
    ap.add_argument("--every", type=int, default=500)
    ap.add_argument("--feature", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tag", default="")
    ap.add_argument("--work", default="runs/gan-tradeoff")
    ap.add_argument(
        "--positives-fd", action="store_true", help="only print the FD of 2000 of the positives and stop (no training)"
    )
    a = ap.parse_args()
    torch.set_num_threads(1)
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)

    data, test = load_images("digits"), load_images("digits", split="test")
    original, _, _ = cached_gan(data, GANTrainConfig(), progress=False)
    ev = evaluator_for(data, test, seed=0, progress=False)

    def predict(x: torch.Tensor) -> torch.Tensor:
        return ev.predict("object", x)

    reference = real_reference(ev, data, a.feature, 2000, seed=0)
    stage1 = AdaptUnlearnConfig(
        ewc_lambda=5e6,
        ema_decay=a.adapt_ema,
        adapt=AdversarialRecipe(steps=300, batch_size=64, lr=2e-4),
        seed=a.seed,
    )
    cache = work / f"adapted-f{a.feature}-s{a.seed}-ema{a.adapt_ema}.pt"
    if cache.exists():
        adapted = []
        for state in torch.load(cache):
            g = copy.deepcopy(original)
            g.load_state_dict(state)
            adapted.append(g.eval())
    else:
        negatives = negatives_of_class(original, predict, a.feature, 64, seed=a.seed + 1)
        adapted = adapt(original, negatives, stage1, progress=False)
        torch.save([g.state_dict() for g in adapted], cache)

    images, pred = classify_samples(original, predict, a.pool, a.seed + 2)
    prob = feature_probability(ev, images, a.feature)
    keep = positive_indices(pred, a.feature, feature_prob=prob, max_prob=a.max_prob, balance=a.balance, seed=a.seed)
    positives = images[keep]
    print(f"{len(positives)} positives of {a.pool} screened ({int((pred == a.feature).sum())} of the feature)")

    if a.positives_fd:
        pick = torch.randperm(len(positives), generator=torch.Generator().manual_seed(0))[:2000]
        fd = frechet_distance(ev.features("object", positives[pick]), reference.features)
        print(f"FD of {len(pick)} positives against the real images of the other classes: {fd:.3f}")
        return

    gan: GAN = copy.deepcopy(original).cpu()
    repulsion = RepulsionHook(adapted, None if a.variant == "finetune" else a.variant, a.gamma)
    snaps = Snapshots(a.every, EMAHook(gan.generator, a.ema) if a.ema is not None else None)
    recipe = AdversarialRecipe(steps=a.steps, batch_size=a.batch_size, lr=a.lr)
    start = time.perf_counter()
    train_adversarial(gan, positives, recipe, hooks=[repulsion, snaps], seed=a.seed, progress=False)
    seconds = time.perf_counter() - start

    base = evaluate_gan(original, ev, reference, a.feature)
    rows = []
    for kind, states in (("trained", snaps.raw), ("average", snaps.average)):
        for step, state in sorted(states.items()):
            g = copy.deepcopy(gan)
            g.generator.load_state_dict(state)
            r = evaluate_gan(g.eval(), ev, reference, a.feature)
            rows.append(
                {
                    "tag": a.tag,
                    "variant": a.variant,
                    "gamma": a.gamma,
                    "max_prob": a.max_prob,
                    "balance": a.balance,
                    "pool": a.pool,
                    "positives": len(positives),
                    "weights": kind,
                    "step": step,
                    "share": r["feature_share"],
                    "fd": r["fd_rest"],
                    "fd_ratio": r["fd_rest"] / base["fd_rest"],
                    "precision": r["precision"],
                    "recall": r["recall"],
                    "val": repulsion.history[step - 1],
                    "seconds": seconds,
                    "original_share": base["feature_share"],
                    "original_fd": base["fd_rest"],
                    "fd_floor": reference.floor,
                }
            )
    with open(work / "tradeoff.jsonl", "a") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    print(f"original: class {a.feature} {base['feature_share']:.2f} %, FD {base['fd_rest']:.3f}")
    print("weights  step  share%  FD     FD/orig  prec  rec   val")
    for r in rows:
        print(
            f"{r['weights']:8s} {r['step']:5d} {r['share']:6.2f} {r['fd']:6.3f} {r['fd_ratio']:6.3f} "
            f"{r['precision']:5.1f} {r['recall']:5.1f} {r['val']:.2e}"
        )


if __name__ == "__main__":
    main()
