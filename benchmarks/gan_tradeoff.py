"""Adapt-then-Unlearn on digits: the forgotten-class share against FD along one stage-2 run.

The set-up is the one ``unlearnkit gan-bench --preset miniature --seed S`` builds: the seed's own original
(``cached_gan``, the moving average of its training; ``--original-ema none``: its trained weights) and
evaluator, 64 negatives, stage 1 as in the preset (λ = 5·10⁶, 300 steps, lr 2·10⁻⁴, batch 64, the reference's
moving average; cached in ``--work`` per seed and original), and positives screened from ``--pool`` samples of
the original (latent seed S + 2, as ``select_positives`` draws them). Then one stage 2 runs, and every
``--every`` generator steps a snapshot of what stage 2 hands back (the moving average ``g_ema``, or the trained
weights with ``--ema none``) is measured as ``gan-bench --fd-draws`` measures a model: feature share and FD of
the rest averaged over ``--draws`` sets of 2000 samples, precision and recall of the first. With the defaults
(3000 steps, one stretch past the preset's 2000), the step-2000 snapshot *is* the preset's
``adapt-unlearn-nl2`` row of ``gan-bench``.

The options are the knobs of the trade-off: the repulsion variant and γ, stage-2 lr / batch / length / R1
weight / moving-average decay, and the positives (``--max-prob``, ``--no-balance``, ``--pool``). Two more
levers are tried here only, each off by default and not part of the method:

- ``--anchor W`` (*output anchoring*, not in the reference): adds ``W · mean((G(z_i) − x_i)²)`` over a batch
  of the positives' own latent codes ``z_i`` and images ``x_i`` (the original's outputs) to every generator
  step, holding the samples that never showed the feature where they were;
- ``--train-only PREFIX``: stage 2 moves only the generator parameters whose names start with ``PREFIX``
  (``project``: the latent projection, leaving the convolutions that draw the strokes).

One JSON line per snapshot goes to ``--work/tradeoff.jsonl``. ``--positives-fd`` only prints the FD of the
positives themselves (what a stage 2 that copied them exactly would reach) and the original's, both averaged
over ``--draws`` sets of 2000.

    python benchmarks/gan_tradeoff.py --seed 0                    # the preset's stage 2 and 1000 steps more
    python benchmarks/gan_tradeoff.py --seed 0 --anchor 0.1 --gamma 3
    python benchmarks/gan_tradeoff.py --seed 0 --positives-fd --max-prob 0.2
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
    AdaptUnlearnConfig,
    RepulsionHook,
    adapt,
    classify_samples,
    negatives_of_class,
    positive_indices,
)
from unlearnkit.gan.metrics import evaluate_gan, evaluator_for, feature_probability, real_reference
from unlearnkit.gan.models import GAN
from unlearnkit.gan.train import (
    REFERENCE_EMA_DECAY,
    AdversarialRecipe,
    EMAHook,
    GANTrainConfig,
    cached_gan,
    load_images,
    train_adversarial,
)


class Snapshots(Hook):
    """Every ``every`` generator steps, a copy of what stage 2 hands back: the moving average when ``ema`` is
    given (which this hook then advances, as :class:`EMAHook` does), else the trained weights."""

    def __init__(self, every: int, ema: EMAHook | None) -> None:
        self.every, self.ema, self.steps = every, ema, 0
        self.states: dict[int, dict[str, torch.Tensor]] = {}

    def after_step(self, ctx: StepContext) -> None:
        if ctx.phase != "g":
            return
        if self.ema is not None:
            self.ema.after_step(ctx)
        self.steps += 1
        if self.steps % self.every == 0:
            source = self.ema.average if self.ema is not None else dict(ctx.model.generator.named_parameters())
            self.states[self.steps] = {n: t.detach().clone() for n, t in source.items()}


class OutputAnchor(Hook):
    """``weight · mean((G(z_i) − x_i)²)`` over ``batch_size`` of the pairs (``codes``, ``images``), drawn
    (seeded) anew at every generator step."""

    def __init__(self, codes: torch.Tensor, images: torch.Tensor, weight: float, batch_size: int, seed: int) -> None:
        self.codes, self.images, self.weight, self.batch_size = codes, images, weight, batch_size
        self.gen = torch.Generator().manual_seed(seed)

    def extra_loss(self, ctx: StepContext) -> torch.Tensor | None:
        if ctx.phase != "g" or self.weight <= 0:
            return None
        i = torch.randint(len(self.codes), (self.batch_size,), generator=self.gen)
        dev = next(ctx.model.generator.parameters()).device
        out = ctx.model.generator(self.codes[i].to(dev))
        return self.weight * ((out - self.images[i].to(dev)) ** 2).mean()


def decay(text: str) -> float | None:
    return None if text.lower() == "none" else float(text)


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=0, help="as gan-bench --seed: original, evaluator, samples")
    ap.add_argument("--feature", type=int, default=3)
    ap.add_argument("--variant", default="nl2", choices=("finetune", "el2", "nl2", "il2"))
    ap.add_argument("--gamma", type=float, default=1.0)
    ap.add_argument("--steps", type=int, default=3000, help="stage-2 steps")
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--r1", type=float, default=10.0, help="R1 weight of the stage-2 discriminator")
    ap.add_argument("--ema", type=decay, default=REFERENCE_EMA_DECAY, help="stage-2 average decay, or none")
    ap.add_argument(
        "--original-ema",
        type=decay,
        default=REFERENCE_EMA_DECAY,
        help="the original's moving-average decay (as gan-bench --original-ema-decay), or none: its trained weights",
    )
    ap.add_argument("--pool", type=int, default=20000, help="samples screened for positives")
    ap.add_argument("--max-prob", type=float, default=0.1, help="confident positives: p(feature) below this")
    ap.add_argument("--no-balance", action="store_true", help="do not class-balance the positives")
    ap.add_argument("--anchor", type=float, default=0.0, help="output-anchoring weight (0: off)")
    ap.add_argument("--train-only", default="", help="stage 2 moves only generator parameters with this prefix")
    ap.add_argument("--every", type=int, default=500)
    ap.add_argument("--draws", type=int, default=5, help="sets of 2000 samples averaged per snapshot")
    ap.add_argument("--tag", default="")
    ap.add_argument("--work", default="runs/gan-tradeoff")
    ap.add_argument("--positives-fd", action="store_true", help="only print the positives' FD and stop")
    return ap.parse_args()


def main() -> None:
    a = parse_args()
    torch.set_num_threads(1)
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)

    data, test = load_images("digits", seed=a.seed), load_images("digits", split="test", seed=a.seed)
    original, _, _ = cached_gan(data, GANTrainConfig(seed=a.seed, ema_decay=a.original_ema), progress=False)
    ev = evaluator_for(data, test, seed=a.seed, progress=False)

    def predict(x: torch.Tensor) -> torch.Tensor:
        return ev.predict("object", x)

    reference = real_reference(ev, data, a.feature, 2000, seed=a.seed)
    stage1 = AdaptUnlearnConfig(ewc_lambda=5e6, adapt=AdversarialRecipe(steps=300, batch_size=64, lr=2e-4), seed=a.seed)
    cache = work / f"adapted-f{a.feature}-s{a.seed}-original{a.original_ema}.pt"
    if cache.exists():
        adapted = []
        for state in torch.load(cache, weights_only=True):
            g = copy.deepcopy(original)
            g.load_state_dict(state)
            adapted.append(g.eval())
    else:
        negatives = negatives_of_class(original, predict, a.feature, 64, seed=a.seed + 1)
        adapted = adapt(original, negatives, stage1, progress=False)
        torch.save([g.state_dict() for g in adapted], cache)

    # select_positives' draw, keeping the latent codes for --anchor
    images, pred = classify_samples(original, predict, a.pool, a.seed + 2)
    prob = feature_probability(ev, images, a.feature)
    keep = positive_indices(
        pred, a.feature, feature_prob=prob, max_prob=a.max_prob, balance=not a.no_balance, seed=a.seed + 2
    )
    positives, codes = images[keep], original.noise(a.pool, seed=a.seed + 2)[keep]
    print(f"{len(positives)} positives of {a.pool} screened ({int((pred == a.feature).sum())} of the feature)")
    base = evaluate_gan(original, ev, reference, a.feature, draws=a.draws)

    if a.positives_fd:
        fds = []
        for d in range(a.draws):
            pick = torch.randperm(len(positives), generator=torch.Generator().manual_seed(d))[:2000]
            fds.append(frechet_distance(ev.features("object", positives[pick]), reference.features))
        mean = sum(fds) / len(fds)
        print(
            f"FD of {min(2000, len(positives))} positives against the real images of the other classes "
            f"(mean of {a.draws}): {mean:.3f}; the original's rest: {base['fd_rest']:.3f}; "
            f"ratio {mean / base['fd_rest']:.3f}"
        )
        return

    gan: GAN = copy.deepcopy(original).cpu()
    if a.train_only:
        names = [n for n, _ in gan.generator.named_parameters()]
        if not any(n.startswith(a.train_only) for n in names):
            raise SystemExit(f"--train-only {a.train_only!r} matches none of the generator's parameters {names}")
        for n, p in gan.generator.named_parameters():
            p.requires_grad_(n.startswith(a.train_only))
    repulsion = RepulsionHook(adapted, None if a.variant == "finetune" else a.variant, a.gamma)
    anchor = OutputAnchor(codes, positives, a.anchor, a.batch_size, seed=a.seed + 5)
    snaps = Snapshots(a.every, EMAHook(gan.generator, a.ema) if a.ema is not None else None)
    recipe = AdversarialRecipe(steps=a.steps, batch_size=a.batch_size, lr=a.lr, r1=a.r1)
    start = time.perf_counter()
    train_adversarial(gan, positives, recipe, hooks=[repulsion, anchor, snaps], seed=a.seed, progress=False)
    seconds = time.perf_counter() - start

    rows = []
    for step, state in sorted(snaps.states.items()):
        g = copy.deepcopy(gan)
        g.generator.load_state_dict(state)
        r = evaluate_gan(g.eval(), ev, reference, a.feature, draws=a.draws)
        rows.append(
            {
                **{k: v for k, v in vars(a).items() if k not in ("work", "positives_fd")},
                "positives": len(positives),
                "weights": "trained" if a.ema is None else "average",
                "step": step,
                "share": r["feature_share"],
                "fd": r["fd_rest"],
                "fd_sd": r["fd_sd"],
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
    print(
        f"original: class {a.feature} {base['feature_share']:.2f} %, FD {base['fd_rest']:.3f}; stage 2 {seconds:.0f} s"
    )
    print("step  share%  FD     FD sd  FD/orig  prec  rec   val")
    for r in rows:
        print(
            f"{r['step']:5d} {r['share']:6.2f} {r['fd']:6.3f} {r['fd_sd']:5.2f} {r['fd_ratio']:7.3f} "
            f"{r['precision']:5.1f} {r['recall']:5.1f} {r['val']:.2e}"
        )


if __name__ == "__main__":
    main()
