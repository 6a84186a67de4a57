"""Adversarial training of the bundled GAN through the shared engine, the image data it is trained on, and the
on-disk cache of trained originals.

The losses follow the StyleGAN2 trainer that Adapt-then-Unlearn builds on (atriguha/Adapt_Unlearn,
``Unlearning/Unlearning_MNIST/train_different_losses.py`` and
``Negative_Adaptation/EWC_ADAPT_MNIST/stylegan2_ewc.py``): the logistic discriminator loss
``softplus(-D(x)) + softplus(D(G(z)))`` (``d_logistic_loss``), the non-saturating generator loss
``softplus(-D(G(z)))`` (``g_nonsaturating_loss``), and the lazy R1 penalty ``r1/2 · ‖∇_x D(x)‖² · d_reg_every``
on real images every ``d_reg_every`` discriminator steps (``d_r1_loss``), with Adam betas (0, 0.99).

One engine run alternates a discriminator step and a generator step (``train(..., interleave=True)`` with a
``"d"`` and a ``"g"`` phase). Deviations, named: the R1 term is added to the discriminator step it falls on
instead of taking a separate optimiser step; StyleGAN2's path-length regulariser and style mixing are not used
(the DCGAN generator has no mapping network).

Every run keeps the reference's moving average of the generator (:class:`EMAHook`, ``accumulate(g_ema,
generator, 0.5 ** (32/10000))`` after each generator step). The bundled original's generator is that average
(``GANTrainConfig.ema_decay``), the ``g_ema`` of a StyleGAN2 checkpoint, from which the reference's stage 1
loads the generator it adapts (``stylegan2_ewc.py``: ``generator.load_state_dict(ckpt["g_ema"])``). A GAN here
holds one generator, so stage 2 also trains from, and draws its positives from, those averaged weights
(deviation, named: the reference's stage 2 resumes from the raw ``ckpt["g"]``, samples its positives from it,
and only its average starts from ``ckpt["g_ema"]``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..cache import usable_entry
from ..checkpoint import load, read_meta, save
from ..data.tensors import Batches, Cycle, TensorData
from ..engine import Hook, Phase, Recipe, StepContext, TrainLog, train
from ..errors import CheckpointError, ConfigError, DataError
from ..runtime import cache_root, environment, resolve_device, timed
from .models import GAN, GANConfig

KIND = "unlearnkit.gan"
DATASETS = ("digits", "fashion-mnist")
#: class names of the bundled datasets
CLASS_NAMES = {
    "digits": [str(i) for i in range(10)],
    "fashion-mnist": [
        "tshirt",
        "trouser",
        "pullover",
        "dress",
        "coat",
        "sandal",
        "shirt",
        "sneaker",
        "bag",
        "boot",
    ],
}


@dataclass
class ImageData:
    """Images in [-1, 1] shaped (N, C, H, W) with integer class labels."""

    name: str
    images: torch.Tensor
    labels: torch.Tensor
    class_names: list[str]

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    def without(self, cls: int) -> torch.Tensor:
        """The images of every class but ``cls``."""
        return self.images[self.labels != cls]


def load_images(
    dataset: str = "digits",
    *,
    split: str = "train",
    train_subset: int | None = None,
    data_dir: str | None = None,
    seed: int = 0,
) -> ImageData:
    """A bundled dataset's images rescaled to [-1, 1]: ``digits`` (1×8×8) or ``fashion-mnist`` (1×28×28,
    when its IDX files are present, e.g. in /usr/share/datasets/fashion-mnist)."""
    from ..data.registry import load_dataset

    if dataset not in DATASETS:
        raise ConfigError(f"the GAN supports the datasets {', '.join(DATASETS)}, not {dataset!r}")
    bundle = load_dataset(dataset, data_dir=data_dir, train_subset=train_subset, subset_seed=seed, download=False)
    part = bundle.train if split == "train" else bundle.test
    x = part.x.float()
    lo, hi = float(x.min()), float(x.max())
    if hi <= lo:
        raise DataError(f"{dataset}: the images are constant; cannot train a GAN on them")
    return ImageData(dataset, ((x - lo) / (hi - lo) * 2 - 1).contiguous(), part.y.long(), CLASS_NAMES[dataset])


@dataclass
class AdversarialRecipe:
    """How one adversarial run optimises (shared by the original's training and both unlearning stages)."""

    steps: int = 3000
    batch_size: int = 64
    lr: float = 2e-3
    betas: tuple[float, float] = (0.0, 0.99)
    r1: float = 10.0
    d_reg_every: int = 16

    def __post_init__(self) -> None:
        self.betas = tuple(float(b) for b in self.betas)  # type: ignore[assignment]
        if self.steps < 1 or self.batch_size < 1 or self.d_reg_every < 1:
            raise ConfigError("steps, batch_size and d_reg_every must be >= 1")
        if not self.lr > 0 or self.r1 < 0:
            raise ConfigError(f"lr must be > 0 and r1 >= 0, got lr={self.lr} and r1={self.r1}")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ConfigError(f"betas must be two numbers in [0, 1), got {self.betas}")


class StepStream:
    """Exactly ``steps`` tuples ``(real, z)``: a seeded reshuffled batch of ``images`` and as many latent codes
    (``z`` only, when ``images`` is None)."""

    def __init__(self, images: torch.Tensor | None, steps: int, batch_size: int, z_dim: int, seed: int) -> None:
        if images is not None and len(images) == 0:
            raise DataError("no images to train the discriminator on")
        self.cycle = None
        if images is not None:
            data = TensorData(images, torch.zeros(len(images), dtype=torch.long))
            self.cycle = Cycle(Batches(data, min(batch_size, len(images)), shuffle=True, seed=seed))
        self.steps, self.batch_size, self.z_dim, self.seed = steps, batch_size, z_dim, seed

    def __len__(self) -> int:
        return self.steps

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        gen = torch.Generator().manual_seed(self.seed + 7919)
        for _ in range(self.steps):
            if self.cycle is None:
                yield (torch.randn(self.batch_size, self.z_dim, generator=gen),)
            else:
                real = self.cycle.next()[0]
                yield real, torch.randn(len(real), self.z_dim, generator=gen)


@contextmanager
def frozen(module: nn.Module) -> Iterator[None]:
    """Run a forward pass through ``module`` without recording gradients for its parameters (the graph still
    reaches its inputs): the generator step must not move the discriminator."""
    flags = [p.requires_grad for p in module.parameters()]
    for p in module.parameters():
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, f in zip(module.parameters(), flags, strict=True):
            p.requires_grad_(f)


def d_logistic_loss(real_pred: torch.Tensor, fake_pred: torch.Tensor) -> torch.Tensor:
    """``softplus(-D(x)).mean() + softplus(D(G(z))).mean()`` (``d_logistic_loss`` of the reference)."""
    return F.softplus(-real_pred).mean() + F.softplus(fake_pred).mean()


def g_nonsaturating_loss(fake_pred: torch.Tensor) -> torch.Tensor:
    """``softplus(-D(G(z))).mean()`` (``g_nonsaturating_loss`` of the reference)."""
    return F.softplus(-fake_pred).mean()


def r1_penalty(discriminator: nn.Module, real: torch.Tensor) -> torch.Tensor:
    """Mean over images of ‖∇_x D(x)‖² (``d_r1_loss`` of the reference)."""
    real = real.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(discriminator(real).sum(), real, create_graph=True)
    return grad.pow(2).reshape(len(grad), -1).sum(1).mean()


class AdamBetas(Hook):
    """Set the optimiser's Adam betas at the start of a run (the engine's Adam uses PyTorch's defaults)."""

    def __init__(self, betas: tuple[float, float]) -> None:
        self.betas = betas

    def on_start(self, ctx: StepContext) -> None:
        for group in ctx.optimizer.param_groups:
            group["betas"] = self.betas


class EMAHook(Hook):
    """``accumulate(g_ema, generator, decay)`` after every generator step: ``g_ema ← decay · g_ema + (1 − decay)
    · θ`` for each generator parameter, starting from the generator's weights when the hook is made."""

    def __init__(self, generator: nn.Module, decay: float) -> None:
        if not 0 <= decay < 1:
            raise ConfigError(f"ema_decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.average = {n: p.detach().clone() for n, p in generator.named_parameters()}

    def after_step(self, ctx: StepContext) -> None:
        if ctx.phase != "g":
            return
        with torch.no_grad():
            for n, p in ctx.model.generator.named_parameters():
                avg = self.average[n]
                avg.mul_(self.decay).add_(p.detach().to(avg.device), alpha=1 - self.decay)

    def copy_to(self, generator: nn.Module) -> None:
        """Write the average into ``generator``'s parameters."""
        with torch.no_grad():
            for n, p in generator.named_parameters():
                p.copy_(self.average[n].to(p.device))


#: the reference's ``accum``: the average's half-life is 10 000 images at batch 32
REFERENCE_EMA_DECAY = 0.5 ** (32 / 10_000)


def adversarial_phases(gan: GAN, real: torch.Tensor, recipe: AdversarialRecipe, seed: int) -> list[Phase]:
    """The discriminator phase ``"d"`` (real images against generated ones, lazy R1) and the generator phase
    ``"g"`` (non-saturating loss through a frozen discriminator), ``recipe.steps`` batches each."""
    d_steps = [0]

    def d_loss(model: nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        x, z = batch
        with torch.no_grad():
            fake = model.generator(z)
        loss = d_logistic_loss(model.discriminator(x), model.discriminator(fake))
        if recipe.r1 > 0 and d_steps[0] % recipe.d_reg_every == 0:
            loss = loss + recipe.r1 / 2 * r1_penalty(model.discriminator, x) * recipe.d_reg_every
        d_steps[0] += 1
        return loss

    def g_loss(model: nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        (z,) = batch
        fake = model.generator(z)
        with frozen(model.discriminator):
            pred = model.discriminator(fake)
        return g_nonsaturating_loss(pred)

    return [
        Phase("d", StepStream(real, recipe.steps, recipe.batch_size, gan.z_dim, seed), d_loss),
        Phase("g", StepStream(None, recipe.steps, recipe.batch_size, gan.z_dim, seed + 1), g_loss),
    ]


def train_adversarial(
    gan: GAN,
    real: torch.Tensor,
    recipe: AdversarialRecipe,
    *,
    hooks: Sequence[Hook] = (),
    ema_decay: float | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
    progress: bool = True,
    desc: str = "gan",
) -> TrainLog:
    """Train ``gan`` in place on the images ``real`` for ``recipe.steps`` alternating D/G steps through the
    engine (``hooks`` may add terms to the generator loss: they see ``ctx.phase == "g"``). With ``ema_decay``,
    the generator's moving average (:class:`EMAHook`, after ``hooks``, from the weights ``gan`` starts with)
    replaces the trained generator weights at the end; the discriminator keeps its trained weights."""
    if real.ndim != 4 or tuple(real.shape[1:]) != tuple(gan.config.image_shape):
        raise DataError(
            f"the images are shaped {tuple(real.shape[1:])} but the GAN makes {tuple(gan.config.image_shape)}; "
            "resize them or use a GAN of that shape"
        )
    ema = EMAHook(gan.generator, ema_decay) if ema_decay is not None else None
    engine_recipe = Recipe(epochs=1, lr=recipe.lr, optimizer="adam", weight_decay=0.0, batch_size=recipe.batch_size)
    phases = adversarial_phases(gan, real, recipe, seed)
    log = train(
        gan,
        phases,
        engine_recipe,
        hooks=[AdamBetas(recipe.betas), *hooks, *([ema] if ema else [])],
        device=device,
        seed=seed,
        progress=progress,
        desc=desc,
        interleave=True,
    )
    if ema is not None:
        ema.copy_to(gan.generator)
    return log


def check_ema_decay(decay: float | None) -> None:
    """Raise :class:`ConfigError` unless ``decay`` is None (no moving average) or in [0, 1)."""
    if decay is not None and not 0 <= decay < 1:
        raise ConfigError(f"ema_decay must be in [0, 1) or None, got {decay}")


@dataclass
class GANTrainConfig:
    """The bundled original: its architecture, its adversarial recipe, its seed, and the decay of the generator's
    moving average it hands back (the reference's ``g_ema`` checkpoint; ``None``: the trained weights)."""

    z_dim: int = 32
    width: int = 32
    recipe: AdversarialRecipe = field(default_factory=lambda: AdversarialRecipe(steps=3000, lr=1e-3))
    seed: int = 0
    ema_decay: float | None = REFERENCE_EMA_DECAY

    def __post_init__(self) -> None:
        check_ema_decay(self.ema_decay)


def train_gan(
    data: ImageData,
    config: GANTrainConfig | None = None,
    *,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> GAN:
    """A new GAN trained on ``data``'s images, in eval mode; its generator is the moving average of the trained
    one (``config.ema_decay``, from the initial weights) unless that is ``None``."""
    cfg = config or GANTrainConfig()
    torch.manual_seed(cfg.seed)
    gan = GAN(GANConfig(data.image_shape, cfg.z_dim, cfg.width))
    train_adversarial(
        gan,
        data.images,
        cfg.recipe,
        ema_decay=cfg.ema_decay,
        seed=cfg.seed,
        device=device,
        progress=progress,
        desc="gan",
    )
    return gan.eval()


def default_cache_dir() -> Path:
    return cache_root() / "gan"


def cache_key(data: ImageData, config: GANTrainConfig, device: str | torch.device | None = None) -> str:
    payload = {
        "data": data.name,
        "n": len(data),
        "shape": list(data.image_shape),
        "checksum": float(data.images.double().sum()),
        "config": asdict(config),
        "env": environment(device),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def save_gan(gan: GAN, path: str | Path, meta: dict | None = None, *, overwrite: bool = False) -> Path:
    """Write ``gan`` as a checkpoint folder whose ``meta.json`` says how to rebuild it."""
    info = {"kind": KIND, "gan_config": gan.config.to_dict(), **(meta or {})}
    return save(gan, path, info, overwrite=overwrite)


def load_gan(path: str | Path) -> tuple[GAN, dict]:
    """The GAN saved in folder ``path`` (by ``gan-train``, ``gan-unlearn`` or :func:`save_gan`)."""
    meta = read_meta(path)
    if meta.get("kind") != KIND:
        raise CheckpointError(f"{path} is not a GAN checkpoint; train one with `unlearnkit gan-train`")
    gan, meta = load(path, model=GAN(GANConfig(**meta["gan_config"])))
    return gan.eval(), meta


def cached_gan(
    data: ImageData,
    config: GANTrainConfig | None = None,
    *,
    cache_dir: str | Path | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> tuple[GAN, dict, Path]:
    """The original GAN trained on ``data`` from the cache (``<cache_dir>/<hash of data, config, environment>``),
    trained and cached first when missing or damaged. Returns (gan, meta, folder)."""
    cfg = config or GANTrainConfig()
    root = Path(cache_dir) if cache_dir else default_cache_dir()
    folder = root / cache_key(data, cfg, device)
    hit = usable_entry(folder, lambda: GAN(GANConfig(data.image_shape, cfg.z_dim, cfg.width)))
    if hit is not None:
        gan, meta = hit
        return gan.to(resolve_device(device)).eval(), meta, folder  # type: ignore[return-value]
    with timed() as clock:
        gan = train_gan(data, cfg, device=device, progress=progress)
    meta = {
        "dataset": data.name,
        "train_config": asdict(cfg),
        "seconds": clock.seconds,
        "device": str(resolve_device(device)),
        "class_names": data.class_names,
    }
    save_gan(gan, folder, meta, overwrite=True)
    return gan, {"kind": KIND, "gan_config": gan.config.to_dict(), **meta}, folder
