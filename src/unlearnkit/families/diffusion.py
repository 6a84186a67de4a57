"""The text-to-image family: a miniature or wrapped diffusers model, a diffusers Stable Diffusion-style pipeline
object, or a pipeline folder (``model_index.json``, ``unet/``, ``text_encoder/``).

``forget`` is the concept to erase (``"object:three"``, ``"style:inverted"``, ``"text:PROMPT"`` or a
:class:`~unlearnkit.diffusion.concepts.ConceptSpec`); ``retain`` is the
:class:`~unlearnkit.diffusion.concepts.ConceptData` (images with prompts: everything not of the concept is
retained; a Hugging Face ``datasets.Dataset`` with image and ``ClassLabel`` label columns is taken as one) or,
for ``"text:PROMPT"``, a list of contrast prompts (``None``: the defaults of
:mod:`unlearnkit.diffusion.text_concepts`). A pipeline (object or folder) is wrapped as a
:class:`~unlearnkit.diffusion.hf.DiffusersTextToImage`, which is the result's ``model`` (write it with
``save_pipeline``). No options of its own. The diffusion modules are imported only when such a model arrives.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from ..errors import ConfigError, DataError
from ..family import Call, Family, register_family
from ..methods.base import Method, UnlearnRequest

PIPELINE_PARTS = ("unet", "text_encoder", "tokenizer", "scheduler")


def detect(model: object) -> bool:
    if isinstance(model, str | Path):
        from ..diffusion.hf import is_pipeline_folder

        return is_pipeline_folder(model)
    if isinstance(model, nn.Module):
        from ..diffusion.hf import DiffusersTextToImage
        from ..diffusion.model import TextToImage

        return isinstance(model, TextToImage | DiffusersTextToImage)
    return all(getattr(model, p, None) is not None for p in PIPELINE_PARTS)


def request(call: Call, algo: Method) -> UnlearnRequest:
    from ..diffusion.concepts import ConceptData, ConceptSpec
    from ..diffusion.hf import from_pipeline, load_pipeline
    from ..diffusion.request import concept_request
    from ..diffusion.text_concepts import TextConceptData, is_text_concept, text_concept_data, with_images

    forget, retain = call.forget, call.retain
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
    if not isinstance(forget, str | ConceptSpec):
        raise ConfigError(
            "for a text-to-image model pass forget='object:NAME', 'style:NAME' or 'text:PROMPT' (the concept to erase)"
        )
    model = call.model
    if isinstance(model, str | Path):
        model = load_pipeline(model, retain)
    elif not isinstance(model, nn.Module):
        model = from_pipeline(model, retain)
    if isinstance(retain, TextConceptData) and not retain.has_images:
        retain = with_images(retain, model, generate=getattr(algo, "needs_images", True), seed=algo.seed)
    req = concept_request(model, retain, forget, device=call.device, progress=call.progress, seed=algo.seed)
    req.callbacks = call.callbacks
    return req


def _concept_data_from_dataset(retain: Any) -> Any:
    """A Hugging Face ``datasets.Dataset`` with image and ``ClassLabel`` label columns (or a one-split
    ``DatasetDict``) as :class:`~unlearnkit.diffusion.concepts.ConceptData` (its class names are the objects);
    anything else unchanged."""
    from ..data.hf_datasets import class_names, hf_tensors, is_hf_dataset, is_hf_dataset_dict

    if not (is_hf_dataset(retain) or is_hf_dataset_dict(retain)):
        return retain
    from ..diffusion.concepts import build_concept_data

    images, labels = hf_tensors(retain, "retain")
    names = class_names(retain, "retain")
    if names is None:
        raise DataError(
            "retain: the label column of a text-to-image dataset must be a ClassLabel (its names are the objects "
            "of the prompts); cast it with ds.cast_column('label', datasets.ClassLabel(names=[...]))"
        )
    return build_concept_data(images, labels.long(), names, name="dataset")


def working_copy(call: Call, request: UnlearnRequest) -> nn.Module:
    """A copy whose VAE never trains (the methods then pick their group: :mod:`unlearnkit.diffusion.groups`)."""
    import copy

    work = copy.deepcopy(request.original).to(request.device)
    for name, p in work.named_parameters():
        p.requires_grad_(not name.startswith("vae."))
    return work


FAMILY = register_family(
    Family(
        name="diffusion",
        methods_module="unlearnkit.diffusion.methods",
        default_method="esd-x",
        detect=detect,
        request=request,
        working_copy=working_copy,
        describes="a diffusers text-to-image pipeline (object or folder) or a wrapped one",
    )
)
