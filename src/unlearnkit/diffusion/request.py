"""The unlearning request for text-to-image models and :func:`unlearn_concept`, the entry point of every
diffusion method."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..data.tensors import TensorData
from ..errors import ConfigError, ModelError
from ..family import get_family, run
from ..methods.base import Method, UnlearnRequest
from ..result import UnlearnResult
from ..runtime import resolve_device
from .concepts import ConceptData, ConceptSpec, parse_concept


@dataclass
class DiffusionRequest(UnlearnRequest):
    """An :class:`UnlearnRequest` whose ``forget``/``retain`` are (images, token ids) pairs, plus the concept
    data (vocabulary, prompts) and the concept to erase. Forget prompts are the plain template naming the
    concept by its canonical word only ("a three in thick style"), so synonyms stay unseen by the method."""

    task: str = "generation"
    data: ConceptData | None = None
    concept: ConceptSpec | None = None
    guidance: float = 2.0
    _gen: torch.Generator = field(default_factory=torch.Generator, repr=False)

    def __post_init__(self) -> None:
        if self.data is None or self.concept is None:
            raise ConfigError("a DiffusionRequest needs the concept data and the concept to erase")

    def other_labels(self, n: int) -> torch.Tensor:
        """``n`` random labels of the concept's axis, never the erased one (seeded per request)."""
        k = len(self.data.names(self.concept.axis))
        draw = torch.randint(0, k - 1, (n,), generator=self._gen)
        return draw + (draw >= self.concept.index).long()

    def relabel(self, tokens: torch.Tensor) -> torch.Tensor:
        """Prompts with the erased concept's word replaced by a random other concept of the same axis."""
        return self.data.with_word(tokens, self.concept.axis, self.other_labels(tokens.shape[0]))

    def with_label(self, tokens: torch.Tensor, label: int) -> torch.Tensor:
        """Prompts with the concept slot set to ``label``'s canonical word."""
        return self.data.with_word(tokens, self.concept.axis, torch.full((tokens.shape[0],), label))

    def null(self, tokens: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(tokens)

    def latents(self, images: torch.Tensor) -> torch.Tensor:
        """Images of the concept data → what the model denoises (VAE latents for a latent pipeline)."""
        return to_latents(self.original, images)


def to_latents(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """``model.to_latents(images)`` when the model has a VAE (or any image encoder), else the images."""
    encode = getattr(model, "to_latents", None)
    return images if encode is None else encode(images)


def concept_request(
    model: nn.Module,
    data: ConceptData,
    concept: ConceptSpec | str,
    *,
    device: str | torch.device | None = None,
    progress: bool = True,
    guidance: float = 2.0,
    seed: int = 0,
) -> DiffusionRequest:
    """Split ``data`` into the erased concept (forget) and everything else (retain); images are turned into
    the model's sample space once here (VAE latents for a latent diffusers pipeline)."""
    spec = parse_concept(concept, data) if isinstance(concept, str) else concept
    mask = data.labels(spec.axis) == spec.index
    if not bool(mask.any()):
        raise ConfigError(f"no training images of {spec.axis} {spec.word!r}; choose a concept present in the data")
    forget, retained = data.subset(mask), data.subset(~mask)
    canonical = data.prompts(forget.objects.tolist(), forget.styles.tolist())
    req = DiffusionRequest(
        original=model,
        forget=TensorData(to_latents(model, forget.images), canonical),
        retain=TensorData(to_latents(model, retained.images), retained.tokens),
        num_classes=len(data.names(spec.axis)),
        device=resolve_device(device),
        progress=progress,
        data=data,
        concept=spec,
        guidance=guidance,
    )
    req._gen.manual_seed(seed)
    return req


def unlearn_concept(
    model: nn.Module,
    data: ConceptData,
    concept: ConceptSpec | str,
    method: str | Method = "esd-x",
    *,
    device: str | torch.device | None = None,
    progress: bool = True,
    callbacks: Any = None,
    **hparams: Any,
) -> UnlearnResult:
    """Erase ``concept`` (``"object:three"``, ``"style:inverted"``, or ``"text:PROMPT"`` with ``data`` from
    :func:`~unlearnkit.diffusion.text_concepts.text_concept_data`) from a text-to-image ``model`` with a
    registered diffusion method; the model passed in is never modified. ``callbacks``
    (:class:`~unlearnkit.callbacks.Callback`) watch, log or stop the method's training runs. The same run as
    ``unlearnkit.unlearn(model, concept, data, method, ...)`` (the ``diffusion`` family)."""
    if not isinstance(model, nn.Module):
        raise ModelError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    family = get_family("diffusion")
    return run(family, model, concept, data, method, device=device, progress=progress, callbacks=callbacks, **hparams)
