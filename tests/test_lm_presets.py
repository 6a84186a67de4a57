"""The ``tofu`` preset (open-unlearning's TOFU recipe) and the warm-up + linear-decay schedule it uses."""

import argparse

import pytest

from unlearnkit.engine import lr_factor
from unlearnkit.errors import ConfigError
from unlearnkit.lm import presets
from unlearnkit.lm.presets import preset_hparams


def test_warmup_linear_rises_over_the_first_tenth_then_decays_to_zero():
    got = [lr_factor("warmup-linear", p) for p in (0.0, 0.05, 0.1, 0.55, 0.9, 1.0)]
    assert got == pytest.approx([0.0, 0.5, 1.0, 0.5, 0.1 / 0.9, 0.0])


def test_tofu_preset_keeps_bf16_only_where_supported(monkeypatch):
    hps, note = preset_hparams("tofu", "cpu")
    assert hps == {"epochs": 10, "schedule": "warmup-linear", "precision": "fp32"}
    assert "bf16" in note and "fp32" in note
    monkeypatch.setattr(presets, "bf16_supported", lambda device: True)
    hps, note = preset_hparams("tofu", "cuda")
    assert hps["precision"] == "bf16" and note == ""
    with pytest.raises(ConfigError, match="tofu"):
        preset_hparams("muse")


def test_cli_preset_applies_to_every_method_and_hp_still_overrides(capsys):
    from unlearnkit.cli.lm import _scale_hparams
    from unlearnkit.methods.base import make_method

    args = argparse.Namespace(preset="tofu", device="cpu", precision=None, grad_accum=None)
    args.gradient_checkpointing, args.lora = False, False
    hps = _scale_hparams(args)
    assert "fp32" in capsys.readouterr().err
    method = make_method("npo", domain="lm", **{**hps, "epochs": 2})
    assert (method.epochs, method.schedule, method.precision) == (2, "warmup-linear", "fp32")
    assert method.recipe().schedule == "warmup-linear"
