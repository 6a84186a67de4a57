"""Only safetensors weights are loaded: a Hugging Face or diffusers model folder whose weights are pickle files
(``pytorch_model.bin``, ``diffusion_pytorch_model.bin``) is refused before ``from_pretrained`` runs, so a pickle
is never unpickled (the loaders are also called with ``use_safetensors=True``)."""

from __future__ import annotations

from pathlib import Path

from .errors import CheckpointError

#: weights formats that are not loaded: pickles (``.bin``, ``.pt``, ``.pth``, ``.ckpt``) and other frameworks'
UNSAFE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".h5", ".msgpack")


def check_safetensors_folder(folder: str | Path, what: str = "model") -> Path:
    """Raise :class:`CheckpointError` unless ``folder`` holds safetensors weights (``*.safetensors`` or a
    sharded ``*.safetensors.index.json``); the message says how to convert pickle weights found there."""
    root = Path(folder)
    if not root.is_dir():
        return root  # the loader's own check says what is missing
    names = sorted(p.name for p in root.iterdir() if p.is_file())
    if any(n.endswith((".safetensors", ".safetensors.index.json")) for n in names):
        return root
    unsafe = [n for n in names if n.endswith(UNSAFE_SUFFIXES) or n.endswith(".bin.index.json")]
    if unsafe:
        raise CheckpointError(
            f"{root} holds {what} weights only as {unsafe[0]} (a pickle, never loaded); unlearnkit loads only "
            "safetensors weights: convert it once with from_pretrained(DIR).save_pretrained(NEW, "
            "safe_serialization=True) in a trusted environment and pass NEW"
        )
    raise CheckpointError(
        f"{root} holds no {what} weights (no *.safetensors file); save the {what} with "
        "save_pretrained(DIR, safe_serialization=True)"
    )


__all__ = ["UNSAFE_SUFFIXES", "check_safetensors_folder"]
