"""Train the miniature text-to-image model through the shared engine, and cache trained models on disk."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from ..checkpoint import META, load, save
from ..data.tensors import Batches, Cycle, TensorData
from ..engine import Phase, Recipe, train
from ..errors import CheckpointError, ConfigError
from ..runtime import cache_root, resolve_device, seed_everything, timed
from .concepts import ConceptData, ConceptSpec
from .model import ModelConfig, TextToImage
from .schedule import diffusion_loss


class StepBatches:
    """Exactly ``steps`` mini-batches drawn from ``data``, reshuffling (seeded) whenever it runs out."""

    def __init__(self, data: TensorData, batch_size: int, steps: int, seed: int = 0) -> None:
        if steps < 1:
            raise ConfigError(f"steps must be >= 1, got {steps}")
        if len(data) == 0:
            raise ConfigError("cannot draw batches from an empty set")
        self.cycle = Cycle(Batches(data, min(batch_size, len(data)), shuffle=True, seed=seed))
        self.steps = steps

    def __len__(self) -> int:
        return self.steps

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        for _ in range(self.steps):
            yield self.cycle.next()


ARCHES = ("unlearnkit", "diffusers")


@dataclass
class DiffusionTrainConfig:
    """How the text-to-image model is trained: DDPM loss, 10 % null prompts for classifier-free guidance."""

    steps: int = 3000
    lr: float = 2e-3
    batch_size: int = 64
    null_prob: float = 0.1
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    base: int = 16
    mults: tuple[int, ...] = (1, 2)
    text_dim: int = 32
    text_layers: int = 1
    seed: int = 0
    #: "unlearnkit": the toolkit's own UNet and text encoder (a checkpoint folder); "diffusers": a
    #: ``UNet2DConditionModel`` + ``CLIPTextModel`` + ``DDIMScheduler`` built from configs, kept as a diffusers
    #: pipeline folder (see :func:`unlearnkit.diffusion.hf.miniature_pipeline`)
    arch: str = "unlearnkit"
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.arch not in ARCHES:
            raise ConfigError(f"arch must be one of {', '.join(ARCHES)}, got {self.arch!r}")
        if not 0 <= self.null_prob < 1:
            raise ConfigError(f"null_prob must be in [0, 1), got {self.null_prob}")
        if self.steps < 1 or self.batch_size < 1:
            raise ConfigError("steps and batch_size must be >= 1")
        self.mults = tuple(self.mults)

    def model_config(self, data: ConceptData) -> ModelConfig:
        return ModelConfig(
            vocab_size=len(data.vocab),
            image_shape=data.image_shape,
            base=self.base,
            mults=self.mults,
            text_dim=self.text_dim,
            text_layers=self.text_layers,
        )

    def build(self, data: ConceptData) -> torch.nn.Module:
        """A new, randomly initialised model of this architecture for ``data``."""
        if self.arch == "diffusers":
            from .hf import miniature_pipeline

            mc = self.model_config(data)
            return miniature_pipeline(
                data.vocab.words,
                data.image_shape,
                base=mc.base,
                mults=mc.mults,
                text_dim=mc.text_dim,
                text_layers=mc.text_layers,
                heads=mc.heads,
                timesteps=mc.timesteps,
                beta_start=mc.beta_start,
                beta_end=mc.beta_end,
            )
        return TextToImage(self.model_config(data))


def train_diffusion(
    data: ConceptData,
    config: DiffusionTrainConfig | None = None,
    *,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> torch.nn.Module:
    """Train a new model of ``config.arch`` (:class:`TextToImage`, or a diffusers
    :class:`~unlearnkit.diffusion.hf.DiffusersTextToImage`) on ``data`` (images with prompts) from scratch and
    return it in eval mode."""
    cfg = config or DiffusionTrainConfig()
    seed_everything(cfg.seed)
    model = cfg.build(data)
    null_prob = cfg.null_prob

    def loss(m: torch.nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        return diffusion_loss(m, batch, null_prob=null_prob)

    recipe = Recipe(
        epochs=1,
        lr=cfg.lr,
        optimizer="adamw",
        weight_decay=cfg.weight_decay,
        schedule="cosine",
        batch_size=cfg.batch_size,
        grad_clip=cfg.grad_clip,
    )
    batches = StepBatches(data.as_tensor_data(), cfg.batch_size, cfg.steps, seed=cfg.seed)
    train(
        model, Phase("ddpm", batches, loss), recipe, device=device, seed=cfg.seed, progress=progress, desc="diffusion"
    )
    return model.eval()


def default_cache_dir() -> Path:
    return cache_root() / "diffusion"


def cache_key(data: ConceptData, config: DiffusionTrainConfig, exclude: ConceptSpec | None) -> str:
    payload = {
        "data": data.name,
        "n": len(data),
        "shape": list(data.image_shape),
        "vocab": data.vocab.words,
        "checksum": float(data.images.double().sum()),
        "tokens": [list(data.tokens.shape), int(data.tokens.sum())],
        "config": _key_config(config),
        "exclude": None if exclude is None else [exclude.axis, exclude.index],
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _key_config(config: DiffusionTrainConfig) -> dict:
    cfg = asdict(config)
    if cfg["arch"] == "unlearnkit":
        del cfg["arch"]  # the keys of models cached before the diffusers option stay valid
    return cfg


def without_concept(data: ConceptData, concept: ConceptSpec) -> ConceptData:
    """The data with every image of ``concept`` removed (the retrain set)."""
    return data.subset(data.labels(concept.axis) != concept.index)


def cached_model(
    data: ConceptData,
    config: DiffusionTrainConfig | None = None,
    *,
    exclude: ConceptSpec | None = None,
    cache_dir: str | Path | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> tuple[torch.nn.Module, dict]:
    """Load the model trained on ``data`` (minus ``exclude``, for retraining) from the cache, or train and
    cache it under ``<cache_dir>/<hash>`` (a checkpoint folder, or for ``arch="diffusers"`` a diffusers pipeline
    folder with the same ``meta.json``). Returns (model, meta) where meta has the training seconds."""
    cfg = config or DiffusionTrainConfig()
    root = Path(cache_dir) if cache_dir else default_cache_dir()
    path = root / cache_key(data, cfg, exclude)
    diffusers = cfg.arch == "diffusers"
    if (path / ("model_index.json" if diffusers else "model.safetensors")).is_file():
        try:
            if diffusers:
                from .hf import load_pipeline

                meta = json.loads((path / META).read_text())
                return load_pipeline(path, data, device=resolve_device(device)), meta
            model = TextToImage(cfg.model_config(data))
            model, meta = load(path, model=model)
            return model.to(resolve_device(device)).eval(), meta
        except (CheckpointError, OSError, ValueError):
            pass  # unreadable cache entry: train again and replace it
    train_data = data if exclude is None else without_concept(data, exclude)
    with timed() as clock:
        model = train_diffusion(train_data, cfg, device=device, progress=progress)
    meta = {
        "kind": "unlearnkit.diffusion",
        "arch": cfg.arch,
        "model_config": cfg.model_config(data).to_dict(),
        "train_config": asdict(cfg),
        "dataset": data.name,
        "exclude": None if exclude is None else f"{exclude.axis}:{exclude.word}",
        "seconds": clock.seconds,
        "device": str(resolve_device(device)),
    }
    if diffusers:
        from .hf import save_pipeline

        save_pipeline(model.cpu(), path, extra={META: json.dumps(meta, indent=2, default=str) + "\n"}, replace=True)
        model.to(resolve_device(device))
    else:
        save(model, path, meta, overwrite=True)
    return model, meta


def load_diffusion(path: str | Path) -> tuple[TextToImage, dict]:
    """Load a model saved by :func:`cached_model` or ``unlearnkit diff-train`` from its folder."""
    from ..checkpoint import read_meta

    meta = read_meta(path)
    if meta.get("kind") != "unlearnkit.diffusion":
        raise CheckpointError(f"{path} is not a diffusion checkpoint; train one with `unlearnkit diff-train`")
    model = TextToImage(ModelConfig(**meta["model_config"]))
    return load(path, model=model)[0].eval(), meta
