"""Parameter groups of a text-to-image model chosen by module *names*, so that every method trains the same
tensors on the bundled miniature and on a diffusers ``UNet2DConditionModel`` + ``CLIPTextModel``.

Both models expose ``model.unet`` and ``model.text_encoder``; inside the UNet, cross-attention lives in modules
named ``attn2`` (``attn2.to_q``, ``attn2.to_k``, ``attn2.to_v``, ``attn2.to_out``), the timestep MLP in
``time_embedding`` and the output head in ``conv_norm_out`` / ``conv_out`` (``out.`` in CompVis checkpoints).

- ``xattn``: UNet names containing ``attn2`` — ESD-x, ``train_method == 'xattn'`` in rohitgandikota/erasing
  ``train-scripts/train-esd.py`` (``'esd-x'`` in ``esd_sd.py``);
- ``xattn-kv``: ``attn2.to_k`` and ``attn2.to_v`` only — ``'esd-x-strict'`` in ``esd_sd.py``; Concept Ablation
  and DoCo ``parameter_group cross-attn``;
- ``noxattn``: the UNet minus ``attn2``, ``time_embed*`` and the output head — ESD-u, ``train_method ==
  'noxattn'`` in ``train-esd.py``;
- ``unet``: the whole UNet — GA / RL / SalUn (OPTML-Group/Unlearn-Saliency ``SD/train-scripts``, ``full``);
- ``text_encoder_full``: the text encoder's transformer layers and final layer norm, not its token and
  position embeddings — AdvUnlearn ``train_method == 'text_encoder_full'`` with ``component='all'``
  (OPTML-Group/AdvUnlearn ``train-scripts/AdvUnlearn.py``, ``param_choices``: names starting with
  ``encoder`` or ``final_layer_norm`` of ``text_encoder.text_model``); on the miniature ``layers.`` and ``norm.``;
- ``text_encoder``: the whole text encoder, embeddings included.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from ..errors import ConfigError, ModelError

OUTPUT_HEAD = ("conv_out.", "conv_norm_out.", "out.")


def _xattn(name: str) -> bool:
    return "attn2" in name


def _xattn_kv(name: str) -> bool:
    return "attn2.to_k" in name or "attn2.to_v" in name


#: the text encoder's transformer layers and final norm: ``CLIPTextModel`` names (under ``text_model.`` in
#: older transformers releases), then the miniature's
TEXT_LAYERS = ("encoder.", "final_layer_norm.", "layers.", "norm.")


def _text_layers(name: str) -> bool:
    return name.removeprefix("text_model.").startswith(TEXT_LAYERS)


def _noxattn(name: str) -> bool:
    return not ("attn2" in name or "time_embed" in name or name.startswith(OUTPUT_HEAD))


#: group name -> (component, predicate on the parameter's name inside that component)
GROUPS: dict[str, tuple[str, Callable[[str], bool]]] = {
    "xattn": ("unet", _xattn),
    "xattn-kv": ("unet", _xattn_kv),
    "noxattn": ("unet", _noxattn),
    "unet": ("unet", lambda name: True),
    "text_encoder_full": ("text_encoder", _text_layers),
    "text_encoder": ("text_encoder", lambda name: True),
}


def named_group(model: nn.Module, group: str) -> list[tuple[str, nn.Parameter]]:
    """``(component.name, parameter)`` of every parameter in ``group`` (see the module table)."""
    if group not in GROUPS:
        raise ConfigError(f"unknown parameter group {group!r}; choose one of {', '.join(GROUPS)}")
    component, keep = GROUPS[group]
    part = getattr(model, component, None)
    if not isinstance(part, nn.Module):
        raise ModelError(
            f"the model has no `{component}` module; pass the miniature TextToImage or a diffusers pipeline "
            "loaded with unlearnkit.diffusion.load_pipeline / from_pipeline"
        )
    out = [(f"{component}.{n}", p) for n, p in part.named_parameters() if keep(n)]
    if not out:
        raise ModelError(f"no parameters of group {group!r} in the model's {component}; check its module names")
    return out


def group_parameters(model: nn.Module, group: str) -> list[nn.Parameter]:
    """The parameters of ``group`` (the list a method hands to the engine)."""
    return [p for _, p in named_group(model, group)]


def freeze_all_but(model: nn.Module, params: list[nn.Parameter]) -> None:
    """``requires_grad`` only on ``params``: the text encoder and every other tensor stay out of autograd."""
    keep = {id(p) for p in params}
    for p in model.parameters():
        p.requires_grad_(id(p) in keep)
