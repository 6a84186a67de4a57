"""``unlearnkit.unlearn`` for text-to-image models: a diffusers pipeline (or a wrapped model) and a concept."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from .concepts import ConceptData, ConceptSpec
from .hf import DiffusersTextToImage, from_pipeline
from .model import TextToImage


def is_text_to_image(model: object) -> bool:
    """A miniature or wrapped diffusers model, or a diffusers Stable Diffusion-style pipeline object."""
    if isinstance(model, (TextToImage, DiffusersTextToImage)):
        return True
    parts = ("unet", "text_encoder", "tokenizer", "scheduler")
    return not isinstance(model, nn.Module) and all(getattr(model, p, None) is not None for p in parts)


def unlearn_text_to_image(
    model: Any,
    forget: object,
    retain: object,
    method: Any = "esd-x",
    *,
    device: str | torch.device | None = None,
    progress: bool = True,
    **hparams: Any,
):
    """Erase the concept ``forget`` (``"object:three"``, ``"style:inverted"`` or a :class:`ConceptSpec`) from
    ``model``; ``retain`` is the :class:`ConceptData` (images with prompts — everything not of the concept is
    retained). For a free-text ``forget="text:PROMPT"``, ``retain`` is a list of contrast prompts (``None``: the
    defaults of :mod:`unlearnkit.diffusion.text_concepts`). ``retain`` may also be a Hugging Face
    ``datasets.Dataset`` with image and ``ClassLabel`` label columns. A diffusers pipeline is wrapped with
    :func:`from_pipeline`; the result's ``model`` is the edited
    :class:`DiffusersTextToImage` (write it with ``save_pipeline``)."""
    from .request import unlearn_concept
    from .text_concepts import TextConceptData, is_text_concept, text_concept_data

    if is_text_concept(forget) and not isinstance(retain, TextConceptData):
        if retain is not None and (isinstance(retain, str) or not all(isinstance(r, str) for r in retain)):
            raise ConfigError("with forget='text:PROMPT' pass retain=None or a list of contrast prompts (strings)")
        retain = text_concept_data(forget, None if retain is None else list(retain))
    retain = _concept_data_from_dataset(retain)
    if not isinstance(retain, ConceptData):
        raise ConfigError(
            "for a text-to-image model pass retain=<ConceptData> (e.g. unlearnkit.diffusion.load_concept_data"
            "('digits')): the images and prompts whose concepts are kept"
        )
    if not isinstance(forget, (str, ConceptSpec)):
        raise ConfigError(
            "for a text-to-image model pass forget='object:NAME', 'style:NAME' or 'text:PROMPT' (the concept to erase)"
        )
    if not isinstance(model, nn.Module):
        model = from_pipeline(model, retain)
    return unlearn_concept(model, retain, forget, method, device=device, progress=progress, **hparams)


def _concept_data_from_dataset(retain: Any) -> Any:
    """A Hugging Face ``datasets.Dataset`` with image and ``ClassLabel`` label columns (or a one-split
    ``DatasetDict``) as :class:`ConceptData` (its class names are the objects); anything else unchanged."""
    from ..data.hf_datasets import class_names, hf_tensors, is_hf_dataset, is_hf_dataset_dict

    if not (is_hf_dataset(retain) or is_hf_dataset_dict(retain)):
        return retain
    from ..errors import DataError
    from .concepts import build_concept_data

    images, labels = hf_tensors(retain, "retain")
    names = class_names(retain, "retain")
    if names is None:
        raise DataError(
            "retain: the label column of a text-to-image dataset must be a ClassLabel (its names are the objects "
            "of the prompts); cast it with ds.cast_column('label', datasets.ClassLabel(names=[...]))"
        )
    return build_concept_data(images, labels.long(), names, name="dataset")
