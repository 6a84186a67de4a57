"""Load and save any text-to-image model the diffusion methods run on: the bundled miniature (a checkpoint
folder written by ``diff-train`` / :func:`cached_model`) or a diffusers Stable Diffusion folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..checkpoint import read_meta, save
from ..errors import CheckpointError
from ..hub import in_hub_cache, is_hub_id, resolve_model_source
from ..outputs import recover
from .concepts import ConceptData
from .hf import DiffusersTextToImage, is_pipeline_folder, load_pipeline, save_pipeline
from .one_step import OneStepGenerator
from .training import load_diffusion

#: a one-step generator (``sfd``) is its network plus this record: {"t_init": ...}, in ``meta.json`` of a
#: miniature checkpoint, or as this file in a diffusers folder
ONE_STEP_FILE = "one_step.json"


def load_model(path: str | Path, data: ConceptData, *, device: str | torch.device | None = None) -> nn.Module:
    """The model in ``path``: a diffusers pipeline folder (``model_index.json`` / ``unet/`` + ``text_encoder/``)
    bound to ``data``'s vocabulary, or a miniature checkpoint (``meta.json`` of kind ``unlearnkit.diffusion``); a
    hub id ``org/name`` is the pipeline in the local Hugging Face cache (:mod:`unlearnkit.hub`)."""
    root = resolve_model_source(path)
    if not in_hub_cache(root):  # nothing is ever written into the cache
        recover(root)  # a save that a crash interrupted is finished (or undone) before reading
    if not root.exists():
        raise CheckpointError(f"{root} does not exist; pass a diffusers pipeline folder or a diff-train checkpoint")
    if is_pipeline_folder(root):
        pipe = load_pipeline(root, data, device=device)
        record = root / ONE_STEP_FILE
        return OneStepGenerator(pipe, json.loads(record.read_text())["t_init"]) if record.is_file() else pipe
    model, meta = load_diffusion(root)
    if "one_step" in meta:
        model = OneStepGenerator(model, int(meta["one_step"]["t_init"]))
    vocab = meta.get("model_config", {}).get("vocab_size")
    if vocab is not None and vocab != len(data.vocab):
        raise CheckpointError(
            f"{root} was trained with a {vocab}-word vocabulary but the concept data has {len(data.vocab)}; "
            f"pass the --dataset it was trained on"
        )
    return model.to(device or "cpu")


def save_model(
    model: nn.Module, path: str | Path, meta: dict[str, Any] | None = None, *, overwrite: bool = False
) -> Path:
    """Write ``model`` in the form it was loaded from: a diffusers folder or a miniature checkpoint (a one-step
    generator: its network, plus its ``t_init``). ``overwrite`` replaces a model already in ``path`` (staged
    and swapped in as a whole)."""
    if isinstance(model, OneStepGenerator):
        record = {"t_init": model.t_init}
        if isinstance(model.net, DiffusersTextToImage):
            return save_pipeline(model.net, path, extra={ONE_STEP_FILE: json.dumps(record)}, replace=overwrite)
        return save_model(model.net, path, {**(meta or {}), "one_step": record}, overwrite=overwrite)
    if isinstance(model, DiffusersTextToImage):
        return save_pipeline(model, path, replace=overwrite)
    info = {"kind": "unlearnkit.diffusion", "model_config": model.config.to_dict(), **(meta or {})}
    save(model, path, info, overwrite=overwrite)
    return Path(path)


def describe(path: str | Path) -> str:
    """One line naming what ``path`` holds."""
    if is_hub_id(str(path)) and not Path(path).exists():
        return f"diffusers pipeline {path} (Hugging Face cache)"
    if is_pipeline_folder(path):
        return f"diffusers pipeline {path}"
    return f"miniature checkpoint {path} ({read_meta(path).get('dataset', '?')})"
