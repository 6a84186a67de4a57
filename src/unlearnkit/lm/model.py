"""Tiny ``transformers`` causal LMs and local checkpoints.

The embedded default is a small Llama-style model trained from scratch; any causal LM a user has on disk
(``AutoModelForCausalLM.from_pretrained(path)``) works the same way. Checkpoints are Hugging Face folders
(``config.json``, ``model.safetensors``, tokenizer files) written to a temporary folder and renamed into place.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from torch import nn

from ..checkpoint import write_json
from ..errors import CheckpointError, ConfigError, ModelError, require
from .tokenizer import ensure_pad_token

ARCHS = ("llama", "gpt2")
META_FILE = "unlearnkit.json"


@dataclass
class TinyLMConfig:
    """Size of the embedded model: a few layers, d_model 128–256."""

    arch: str = "llama"
    d_model: int = 128
    n_layers: int = 2
    n_heads: int = 4
    ff_mult: int = 4
    max_length: int = 256

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise ConfigError(f"unknown arch {self.arch!r}; choose one of {', '.join(ARCHS)}")
        if self.d_model % self.n_heads:
            raise ConfigError(f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})")
        if min(self.d_model, self.n_layers, self.n_heads, self.ff_mult, self.max_length) < 1:
            raise ConfigError("every TinyLMConfig size must be >= 1")

    def to_dict(self) -> dict:
        return asdict(self)


def is_causal_lm(model: Any) -> bool:
    """Whether ``model`` looks like a Hugging Face causal LM (a ``config`` and ``generate``)."""
    return isinstance(model, nn.Module) and hasattr(model, "config") and callable(getattr(model, "generate", None))


def build_tiny_lm(cfg: TinyLMConfig, tokenizer, seed: int = 0) -> nn.Module:
    """A freshly initialised causal LM of size ``cfg`` for ``tokenizer``'s vocabulary."""
    transformers = require("transformers", extra="lm")
    from ..runtime import seed_everything

    common = {
        "vocab_size": len(tokenizer),
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    if cfg.arch == "llama":
        config = transformers.LlamaConfig(
            hidden_size=cfg.d_model,
            intermediate_size=cfg.ff_mult * cfg.d_model,
            num_hidden_layers=cfg.n_layers,
            num_attention_heads=cfg.n_heads,
            num_key_value_heads=cfg.n_heads,
            max_position_embeddings=cfg.max_length,
            tie_word_embeddings=True,
            **common,
        )
    else:
        config = transformers.GPT2Config(
            n_embd=cfg.d_model,
            n_layer=cfg.n_layers,
            n_head=cfg.n_heads,
            n_inner=cfg.ff_mult * cfg.d_model,
            n_positions=cfg.max_length,
            resid_pdrop=0.0,
            embd_pdrop=0.0,
            attn_pdrop=0.0,
            **common,
        )
    seed_everything(seed)
    return transformers.AutoModelForCausalLM.from_config(config)


def load_causal_lm(path: str | Path, device=None, device_map: str | dict | None = None):
    """Load ``(model, tokenizer)`` from a local folder with ``AutoModelForCausalLM`` / ``AutoTokenizer``, or from
    a hub id ``org/name`` found in the local Hugging Face cache (:mod:`unlearnkit.hub`; nothing is downloaded);
    ``device_map`` (``"auto"``, ``"balanced"``, ``"sequential"`` or a dict; needs ``accelerate``) splits the layers
    over the available devices as ``from_pretrained`` does (then ``device`` is ignored)."""
    from ..hub import in_hub_cache, resolve_model_source
    from ..outputs import recover
    from ..safe_weights import check_safetensors_folder

    transformers = require("transformers", extra="lm")
    p = resolve_model_source(path)
    if not in_hub_cache(p):
        recover(p)  # a save that a crash interrupted is finished (or undone) before reading
    if not (p / "config.json").is_file():
        raise CheckpointError(
            f"{p} is not a Hugging Face model folder (no config.json); pass a folder saved with save_pretrained "
            "or train one with `unlearnkit lm-train`"
        )
    check_safetensors_folder(p, "model")  # a pickle is never unpickled
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(p))
        placement = {} if device_map is None else {"device_map": device_map}
        model = transformers.AutoModelForCausalLM.from_pretrained(str(p), use_safetensors=True, **placement)
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"could not load a causal LM from {p}: {exc}") from exc
    ensure_pad_token(tokenizer)
    model.eval()
    if device is not None and device_map is None:
        model.to(device)
    return model, tokenizer


def check_lm_output(
    path: str | Path, *, overwrite: bool, source: str | Path | None = None, inputs: Iterable[str | Path | None] = ()
) -> Path:
    """Validate the folder a causal LM is to be saved in, *before* any work (:mod:`unlearnkit.outputs`): never
    the ``source`` model folder or another input, nor a folder containing or inside one (the model unlearning
    started from is never replaced), an existing model only with ``overwrite``, and a parent that can be
    written."""
    from ..outputs import check_output_folder

    return check_output_folder(path, overwrite=overwrite, inputs=[source, *inputs])


def save_causal_lm(
    model: nn.Module | None,
    tokenizer,
    path: str | Path,
    *,
    meta: dict[str, Any] | None = None,
    overwrite: bool = False,
    adapter_only: bool = False,
) -> Path:
    """Save model (if given), tokenizer and ``meta`` (as ``unlearnkit.json``) with ``save_pretrained`` into a
    temporary folder, then rename it to ``path``; with ``overwrite`` an existing folder is swapped out
    (:func:`unlearnkit.outputs.staged_folder`: a crash leaves the old or the new model, never none).

    A ``peft.PeftModel`` (``lora=True, adapter_only=True``) is saved whole (a merged copy) unless
    ``adapter_only``: then only its adapter is written (``adapter_config.json``, ``adapter_model.safetensors``),
    which ``peft.PeftModel.from_pretrained(base, path)`` puts back on the base model."""
    from ..outputs import staged_folder

    p = Path(path)
    if adapter_only and not is_peft_model(model):
        raise ConfigError(
            "adapter_only saves a LoRA adapter, but the model has none; unlearn with lora=True, adapter_only=True "
            "(lm-unlearn --adapter-only) to keep the adapter apart from the weights"
        )
    if p.exists() and (not p.is_dir() or any(p.iterdir())) and not overwrite:
        raise CheckpointError(f"{path} already exists; choose a new folder or pass --overwrite (overwrite=True)")
    if model is not None and is_peft_model(model) and not adapter_only:
        import copy

        model = copy.deepcopy(model).merge_and_unload()  # the whole model; the caller's keeps its adapter
    with staged_folder(p, replace=True) as tmp:
        if model is not None:
            model.save_pretrained(str(tmp))
        if tokenizer is not None:
            tokenizer.save_pretrained(str(tmp))
        if meta is not None:
            write_json(tmp / META_FILE, meta)
    return p


def is_peft_model(model: object) -> bool:
    """Whether ``model`` is a ``peft.PeftModel`` (a base model with an unmerged adapter)."""
    if model is None:
        return False
    try:
        import peft
    except ImportError:
        return False
    return isinstance(model, peft.PeftModel)


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The list of transformer blocks of a causal LM (Llama/Mistral/Qwen ``model.layers``, GPT-2 ``transformer.h``,
    GPT-NeoX ``gpt_neox.layers``), also through a PEFT wrapper."""
    base = model
    if hasattr(base, "get_base_model"):
        base = base.get_base_model()
    for path in ("model.layers", "transformer.h", "gpt_neox.layers", "model.decoder.layers"):
        obj = base
        for part in path.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                break
        if isinstance(obj, nn.ModuleList):
            return obj
    raise ModelError(f"cannot find the transformer blocks of {type(base).__name__}; RMU needs model.layers-like blocks")
