"""Adapt-then-Unlearn: stop a pretrained GAN from generating a feature without its training data.

Tiwary, Guha, Panda & Prathosh, "Adapt then Unlearn: Exploring Parameter Space Semantics for Unlearning in
Generative Adversarial Networks" (TMLR 2025, arXiv:2309.14054); public code atriguha/Adapt_Unlearn. Followed
line by line:

Stage 1, *negative adaptation* (``Negative_Adaptation/EWC_ADAPT_MNIST/stylegan2_ewc.py`` with
``estimate_fisher``, ``consolidate`` and ``ewc_loss`` of ``Negative_Adaptation/EWC_ADAPT_MNIST/model.py``):
the pretrained GAN (generator and discriminator) is trained adversarially on the user's few negative samples
(images that show the feature) with the elastic-weight-consolidation penalty added to the generator loss,
``λ/2 · Σ_i F_i (θ_i − θ*_i)²`` with λ = 5·10⁸, θ* the pretrained generator and F the diagonal Fisher
information ``mean_n (∂D(G(z_n))/∂θ)²`` over 32 latent codes, computed once before adapting. Reference
trains two adapted models (``no_models=2``), 2000 iterations, batch 16; each gives a θ_N.

Stage 2, *unlearning* (``Unlearning/Unlearning_MNIST/train_different_losses.py``): the *pretrained* GAN is
trained adversarially on positive samples — its own samples that a classifier says do not show the feature
(``FeedbackData_pos``: 5000 samples, keep the others) — with a repulsion term added to the generator loss.
With ``val = (K / 2P) · Σ_p Σ_k mean((θ_N,k[p] − θ[p])²)`` over the P generator parameter tensors and the K
adapted models (``calc_difference_param_new``; note the reference *multiplies* by K), the three variants the
paper compares are (``--loss_type``, ``val_factor = 1/γ``):

- ``el2`` — exponential, ``100 · exp(−γ · val)`` (``"exp"``);
- ``nl2`` — negative L2, ``−γ · val`` (``"l2"``);
- ``il2`` — inverse L2, ``γ / val`` (``"reci"``).

The baseline the paper compares against is the same stage 2 without the repulsion term (``--repel`` off):
fine-tuning on positives only (``"finetune"`` here).

Deviations, named: a DCGAN-style miniature replaces StyleGAN2, so the EWC penalty covers every generator
parameter (the reference restricts it to the synthesis convolutions ``generator.convs``; the miniature has no
mapping network); the adversarial details are those of :mod:`unlearnkit.gan.train`. All adapted models see
the same negative set (different seeds), where the reference draws new negatives for each.

Both stages keep, as the reference does, an exponential moving average of the generator (``accumulate(g_ema,
generator, accum)`` after every generator step, ``accum = 0.5 ** (32 / 10000)``, starting from the pretrained
weights) and hand back that average: the adapted models θ_N and the unlearned GAN are the ``g_ema`` copies,
while the repulsion is computed on the trained generator (``calc_difference_param_new(list_of_models,
generator)``). ``ema_decay=None`` hands back the trained weights instead.

Positives beyond the reference's argmax screen, each named and off by default: *confident positives* (drop
samples the classifier gives the feature a probability of at least ``max_prob``) and *class-balanced
positives* (restore the argmax positives' class mix afterwards); see :func:`positive_indices`.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data.arrays import read_array_file
from ..engine import Hook, StepContext
from ..errors import ConfigError, DataError, require
from ..runtime import timed
from .models import GAN
from .train import REFERENCE_EMA_DECAY, AdversarialRecipe, check_ema_decay, train_adversarial

#: repulsion variants of the paper: name -> reference ``--loss_type``
REPULSIONS = {"el2": "exp", "nl2": "l2", "il2": "reci"}


def repulsion_distance(generator: nn.Module, adapted: Sequence[dict[str, torch.Tensor]]) -> torch.Tensor:
    """``val`` of ``calc_difference_param_new``: for every generator parameter tensor p, the sum over the K
    adapted models of the mean squared difference, divided by the number P of tensors, times K/2; summed."""
    params = dict(generator.named_parameters())
    total = None
    for name, p in params.items():
        diff = sum(F.mse_loss(theta_n[name].to(p.device), p) for theta_n in adapted)
        term = diff / len(params) / 2 * len(adapted)
        total = term if total is None else total + term
    if total is None:
        raise ConfigError("the generator has no parameters to repel")
    return total


def repulsion_loss(val: torch.Tensor, kind: str, gamma: float) -> torch.Tensor:
    """The repulsion term of variant ``kind`` (``el2``, ``nl2`` or ``il2``) for distance ``val``."""
    if kind == "el2":
        return 100 * torch.exp(-gamma * val)
    if kind == "nl2":
        return -gamma * val
    if kind == "il2":
        return gamma / val
    raise ConfigError(f"unknown repulsion {kind!r}; choose one of {', '.join(REPULSIONS)}")


class RepulsionHook(Hook):
    """Adds the repulsion term to every generator step (phase ``"g"``) and records ``val`` as it goes."""

    def __init__(self, adapted: Sequence[GAN], kind: str | None, gamma: float) -> None:
        if kind is not None and kind not in REPULSIONS:
            raise ConfigError(f"unknown repulsion {kind!r}; choose one of {', '.join(REPULSIONS)} (or None)")
        self.adapted = [{n: p.detach().clone() for n, p in a.generator.named_parameters()} for a in adapted]
        self.kind, self.gamma = kind, gamma
        self.history: list[float] = []

    def extra_loss(self, ctx: StepContext) -> torch.Tensor | None:
        if ctx.phase != "g":
            return None
        val = repulsion_distance(ctx.model.generator, self.adapted)
        self.history.append(float(val.detach()))
        return None if self.kind is None else repulsion_loss(val, self.kind, self.gamma)


def generator_fisher_diagonal(gan: GAN, samples: int = 32, seed: int = 0) -> dict[str, torch.Tensor]:
    """Diagonal Fisher of the generator under the discriminator (``estimate_fisher``): the mean over ``samples``
    latent codes of the squared gradient of the discriminator's logit D(G(z_n)) with respect to each generator
    parameter (no data and no task loss, unlike SSD's :func:`unlearnkit.methods.ssd.empirical_fisher_diagonal`)."""
    if samples < 1:
        raise ConfigError(f"fisher_samples must be >= 1, got {samples}")
    params = dict(gan.generator.named_parameters())
    z = gan.noise(samples, seed=seed)
    logits = gan.discriminator(gan.generator(z))
    sums = {n: torch.zeros_like(p) for n, p in params.items()}
    for i in range(samples):
        grads = torch.autograd.grad(logits[i], list(params.values()), retain_graph=i < samples - 1)
        for n, g in zip(params, grads, strict=True):
            sums[n] += g.detach() ** 2
    return {n: s / samples for n, s in sums.items()}


class EWCHook(Hook):
    """``ewc_loss``: ``λ/2 · Σ F (θ − θ*)²`` over the generator parameters, added to every generator step."""

    def __init__(self, gan: GAN, lam: float, samples: int = 32, seed: int = 0) -> None:
        self.lam = lam
        self.fisher = generator_fisher_diagonal(gan, samples, seed)
        self.anchor = {n: p.detach().clone() for n, p in gan.generator.named_parameters()}

    def penalty(self, generator: nn.Module) -> torch.Tensor:
        terms = [(self.fisher[n] * (p - self.anchor[n]) ** 2).sum() for n, p in generator.named_parameters()]
        return self.lam / 2 * torch.stack(terms).sum()

    def extra_loss(self, ctx: StepContext) -> torch.Tensor | None:
        return self.penalty(ctx.model.generator) if ctx.phase == "g" and self.lam > 0 else None


@dataclass
class AdaptUnlearnConfig:
    """Hyper-parameters with the reference's defaults (steps shortened where it says so in the docs)."""

    repulsion: str | None = "el2"
    gamma: float = 1.0
    ewc_lambda: float = 5e8
    fisher_samples: int = 32
    n_adapted: int = 2
    #: decay of the generator's moving average handed back by both stages (None: the trained weights)
    ema_decay: float | None = REFERENCE_EMA_DECAY
    adapt: AdversarialRecipe = field(default_factory=lambda: AdversarialRecipe(steps=2000, batch_size=16))
    unlearn: AdversarialRecipe = field(default_factory=lambda: AdversarialRecipe(steps=3000, batch_size=16))
    seed: int = 0

    def __post_init__(self) -> None:
        if self.repulsion is not None and self.repulsion not in REPULSIONS:
            raise ConfigError(
                f"unknown repulsion {self.repulsion!r}; choose one of {', '.join(REPULSIONS)}, or none for the "
                "fine-tuning baseline"
            )
        if not math.isfinite(self.gamma) or self.gamma <= 0:
            raise ConfigError(f"gamma must be a finite number > 0, got {self.gamma}")
        if not math.isfinite(self.ewc_lambda) or self.ewc_lambda < 0:
            raise ConfigError(f"ewc_lambda must be a finite number >= 0, got {self.ewc_lambda}")
        if self.n_adapted < 1 or self.fisher_samples < 1:
            raise ConfigError("n_adapted and fisher_samples must be >= 1")
        check_ema_decay(self.ema_decay)

    @property
    def name(self) -> str:
        return "finetune" if self.repulsion is None else f"adapt-unlearn-{self.repulsion}"


@dataclass
class AdaptUnlearnResult:
    """The unlearned GAN, the adapted models θ_N, the repulsion distance at every generator step of stage 2
    and the seconds each stage took."""

    gan: GAN
    adapted: list[GAN]
    distance: list[float]
    seconds: dict[str, float]


def as_images(images: Any, what: str) -> Any:
    """A Hugging Face ``datasets.Dataset`` of images (one-split ``DatasetDict``) rescaled to the GAN's [-1, 1],
    or the images of a torch ``Dataset`` (items that are images or ``(image, ...)`` tuples), stacked."""
    from torch.utils.data import Dataset

    from ..data.hf_datasets import hf_images, is_hf_dataset, is_hf_dataset_dict

    if is_hf_dataset(images) or is_hf_dataset_dict(images):
        return hf_images(images, what) * 2 - 1
    if isinstance(images, Dataset):
        items = [images[i] for i in range(len(images))]  # type: ignore[arg-type]
        return torch.stack([torch.as_tensor(it[0] if isinstance(it, tuple | list) else it) for it in items])
    return images


def _check_images(images: torch.Tensor, gan: GAN, what: str) -> torch.Tensor:
    images = as_images(images, what)
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        raise DataError(f"{what} must be an image tensor shaped (N, C, H, W)")
    if tuple(images.shape[1:]) != tuple(gan.config.image_shape):
        raise DataError(
            f"{what} are shaped {tuple(images.shape[1:])} but the GAN makes {tuple(gan.config.image_shape)}"
        )
    if len(images) < 2:
        raise DataError(f"{what}: need at least 2 images, got {len(images)}")
    if not bool(torch.isfinite(images).all()):
        raise DataError(f"{what} hold non-finite values")
    return images.float()


def adapt(
    original: GAN,
    negatives: torch.Tensor,
    config: AdaptUnlearnConfig,
    *,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> list[GAN]:
    """Stage 1: ``config.n_adapted`` copies of ``original`` adapted to ``negatives`` under the EWC penalty."""
    negatives = _check_images(negatives, original, "the negative samples")
    out = []
    for i in range(config.n_adapted):
        gan = copy.deepcopy(original).cpu()
        seed = config.seed + 1000 * (i + 1)
        train_adversarial(
            gan,
            negatives,
            config.adapt,
            hooks=[EWCHook(gan, config.ewc_lambda, config.fisher_samples, seed=seed)],
            ema_decay=config.ema_decay,
            seed=seed,
            device=device,
            progress=progress,
            desc=f"adapt {i}",
        )
        out.append(gan.eval())
    return out


def unlearn_stage(
    original: GAN,
    positives: torch.Tensor,
    adapted: Sequence[GAN],
    config: AdaptUnlearnConfig,
    *,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> tuple[GAN, list[float]]:
    """Stage 2: a copy of ``original`` trained on ``positives`` with the repulsion from ``adapted`` (none for
    the fine-tuning baseline). Returns the GAN and the repulsion distance at each generator step."""
    positives = _check_images(positives, original, "the positive samples")
    if not adapted:
        raise ConfigError("stage 2 needs at least one adapted model (run stage 1 first)")
    gan = copy.deepcopy(original).cpu()
    hook = RepulsionHook(adapted, config.repulsion, config.gamma)
    train_adversarial(
        gan,
        positives,
        config.unlearn,
        hooks=[hook],
        ema_decay=config.ema_decay,
        seed=config.seed,
        device=device,
        progress=progress,
        desc="unlearn",
    )
    return gan.eval(), hook.history


def adapt_then_unlearn(
    original: GAN,
    negatives: torch.Tensor,
    positives: torch.Tensor,
    config: AdaptUnlearnConfig | None = None,
    *,
    adapted: Sequence[GAN] | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> AdaptUnlearnResult:
    """Both stages (stage 1 is skipped when ``adapted`` models are given). ``original`` is not changed.
    ``negatives`` and ``positives`` are image tensors in the GAN's [-1, 1], torch ``Dataset`` s of them, or
    Hugging Face ``datasets.Dataset`` s with an image column (rescaled from [0, 255])."""
    cfg = config or AdaptUnlearnConfig()
    seconds = {"adapt": 0.0}
    if adapted is None:
        with timed() as t1:
            adapted = adapt(original, negatives, cfg, device=device, progress=progress)
        seconds["adapt"] = t1.seconds
    with timed() as t2:
        gan, history = unlearn_stage(original, positives, adapted, cfg, device=device, progress=progress)
    seconds["unlearn"] = t2.seconds
    return AdaptUnlearnResult(gan, list(adapted), history, seconds)


# --- choosing the samples ----------------------------------------------------------------------------------


def classify_samples(gan: GAN, predict, n: int, seed: int, batch_size: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` samples of ``gan`` (latent seed ``seed``) and the classes ``predict(images)`` gives them."""
    images = gan.cpu().sample(n, seed=seed, batch_size=batch_size)
    return images, predict(images).cpu()


def positive_indices(
    pred: torch.Tensor,
    feature: int,
    *,
    feature_prob: torch.Tensor | None = None,
    max_prob: float | None = None,
    balance: bool = False,
    seed: int = 0,
) -> torch.Tensor:
    """Indices of the samples kept as positives, in increasing order.

    ``max_prob=None, balance=False`` is the reference's ``FeedbackData_pos``: every sample whose predicted class
    ``pred`` is not ``feature``. Two named deviations tighten it:

    - *confident positives* (``max_prob``): also drop samples whose classifier probability of the feature,
      ``feature_prob``, is ``max_prob`` or more — the ambiguous, feature-like samples the argmax lets through,
      which a GAN trained on them keeps reproducing;
    - *class-balanced positives* (``balance``): that filter removes more samples of the classes that resemble
      the feature (e.g. 9s and 2s for a 3), which moves the class mix away from the original's and costs FD;
      so every predicted class c is subsampled (seeded) to ``s · h_c``, with h_c its count among the argmax
      positives and s the smallest kept fraction over the classes, restoring the argmax positives' mix.
    """
    pred = torch.as_tensor(pred).long().flatten()
    argmax_pos = pred != feature
    keep = argmax_pos.clone()
    if max_prob is not None:
        if not 0 < max_prob <= 1:
            raise ConfigError(f"max_prob must be in (0, 1], got {max_prob}")
        if feature_prob is None or len(feature_prob) != len(pred):
            raise ConfigError("max_prob needs the classifier's feature probability of every sample (feature_prob)")
        keep &= torch.as_tensor(feature_prob).flatten() < max_prob
    if balance:
        classes = int(pred.max()) + 1 if len(pred) else 0
        ref = torch.bincount(pred[argmax_pos], minlength=classes).double()
        kept = torch.bincount(pred[keep], minlength=classes).double()
        present = ref > 0
        if bool(present.any()):
            scale = float((kept[present] / ref[present]).min())
            gen = torch.Generator().manual_seed(seed)
            chosen = []
            for c in torch.nonzero(present).flatten().tolist():
                cand = torch.nonzero(keep & (pred == c)).flatten()
                m = int(math.floor(scale * float(ref[c]) + 1e-9))
                chosen.append(cand[torch.randperm(len(cand), generator=gen)[:m]])
            keep = torch.zeros_like(keep)
            keep[torch.cat(chosen)] = True
    return torch.nonzero(keep).flatten()


def select_positives(
    gan: GAN,
    predict,
    feature: int,
    n: int = 5000,
    seed: int = 0,
    *,
    feature_prob=None,
    max_prob: float | None = None,
    balance: bool = False,
) -> torch.Tensor:
    """``FeedbackData_pos``: of ``n`` samples of ``gan``, those the classifier does *not* assign to ``feature``
    (``predict(images)`` gives the classes); with ``max_prob`` (and ``feature_prob(images)``, the classifier's
    probability of the feature) or ``balance``, the stricter selections of :func:`positive_indices`."""
    images, pred = classify_samples(gan, predict, n, seed)
    prob = None
    if max_prob is not None:
        if feature_prob is None:
            raise ConfigError("max_prob needs feature_prob, a function giving the feature's probability per image")
        prob = torch.as_tensor(feature_prob(images)).detach().cpu()
    pos = images[positive_indices(pred, feature, feature_prob=prob, max_prob=max_prob, balance=balance, seed=seed)]
    if len(pos) < 2:
        raise DataError(
            f"fewer than 2 of {n} samples avoid class {feature}; the classifier sees it everywhere (screen more "
            "samples, or raise max_prob)"
        )
    return pos


def negatives_of_class(
    gan: GAN, predict, feature: int, n: int = 64, seed: int = 0, max_draws: int = 20000
) -> torch.Tensor:
    """``FeedbackData_neg``: samples of ``gan`` that the classifier assigns to ``feature``, ``n`` of them (drawn
    in rounds until found or ``max_draws`` samples were tried)."""
    found: list[torch.Tensor] = []
    count, drawn, r = 0, 0, 0
    while count < n and drawn < max_draws:
        step = min(2000, max_draws - drawn)
        images, pred = classify_samples(gan, predict, step, seed + 7 * r)
        hit = images[pred == feature]
        found.append(hit)
        count += len(hit)
        drawn += step
        r += 1
    out = torch.cat(found)[:n] if found else torch.empty(0)
    if len(out) < 2:
        raise DataError(
            f"the GAN generated {len(out)} samples of class {feature} in {drawn} draws; nothing to adapt to — "
            "pass the negative samples as a folder of images instead"
        )
    return out


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")


def load_negative_images(path: str | Path, image_shape: Sequence[int]) -> torch.Tensor:
    """Negative samples from a folder of image files (greyscale or RGB, resized to the GAN's size), or from one
    ``.pt`` / ``.npy`` file holding an (N, C, H, W) or (N, H, W) array; pixel values are rescaled to [-1, 1]
    (from [0, 255] for image files, from the array's own min and max otherwise)."""
    root = Path(path)
    c, h, w = (int(v) for v in image_shape)
    if root.is_file() and root.suffix in (".pt", ".npy"):
        arr = torch.from_numpy(read_array_file(root, what="negative images"))
        x = arr.float()
        if x.ndim == 3:
            x = x.unsqueeze(1)
        if x.ndim != 4 or x.shape[1] != c:
            raise DataError(f"{root} holds shape {tuple(arr.shape)}; expected (N, {c}, H, W) or (N, H, W)")
        lo, hi = float(x.min()), float(x.max())
        if hi <= lo:
            raise DataError(f"{root}: the images are constant")
        x = (x - lo) / (hi - lo)
    elif root.is_dir():
        files = sorted(p for p in root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise DataError(
                f"{root} holds no image files ({', '.join(IMAGE_SUFFIXES)}); put the negative samples there"
            )
        image_mod = require("PIL.Image", extra="gan")
        mode = "L" if c == 1 else "RGB"
        rows = []
        for f in files:
            try:
                with image_mod.open(f) as im:
                    arr = np.asarray(im.convert(mode), dtype=np.float32) / 255.0
            except OSError as exc:
                raise DataError(f"could not read image {f}: {exc}") from exc
            t = torch.from_numpy(arr)
            rows.append(t.unsqueeze(0) if t.ndim == 2 else t.permute(2, 0, 1))
        x = torch.stack([F.interpolate(r[None], size=(h, w), mode="bilinear", antialias=True)[0] for r in rows])
    else:
        raise DataError(f"{root} is neither a folder of images nor a .pt/.npy file of images")
    if tuple(x.shape[2:]) != (h, w):
        x = F.interpolate(x, size=(h, w), mode="bilinear", antialias=True, align_corners=False)
    return (x.clamp(0, 1) * 2 - 1).contiguous()


def resolve_negatives(
    spec: str,
    gan: GAN,
    predict,
    *,
    n: int = 64,
    feature: int | None = None,
    num_classes: int | None = None,
    seed: int = 0,
) -> tuple[torch.Tensor, int]:
    """The negative samples and the feature's class index from ``spec``: ``class:N`` (the GAN's own samples the
    classifier assigns to class N) or a folder / ``.pt`` / ``.npy`` of images (their class is ``feature`` when
    given, else the class the classifier assigns to most of them)."""
    if spec.startswith("class:"):
        value = spec.split(":", 1)[1]
        if not value.lstrip("-").isdigit():
            raise ConfigError(f"bad --negatives {spec!r}; write class:N with a class index, e.g. class:3")
        cls = int(value)
        if cls < 0 or (num_classes is not None and cls >= num_classes):
            raise ConfigError(f"class {cls} is out of range; the classes are 0..{(num_classes or 1) - 1}")
        if feature is not None and feature != cls:
            raise ConfigError(f"--negatives {spec} and --feature {feature} disagree; give one of them")
        return negatives_of_class(gan, predict, cls, n, seed=seed), cls
    if not Path(spec).exists():
        raise DataError(f"--negatives {spec!r} is neither class:N nor an existing folder or .pt/.npy file")
    images = load_negative_images(spec, gan.config.image_shape)
    if feature is None:
        pred = predict(images).cpu()
        feature = int(torch.bincount(pred).argmax())
    elif num_classes is not None and not 0 <= feature < num_classes:
        raise ConfigError(f"feature {feature} is out of range; the classes are 0..{num_classes - 1}")
    return images, feature
