"""The bundled miniature with the diffusers architecture (``arch="diffusers"``): a UNet2DConditionModel +
CLIPTextModel + DDPMScheduler built from configs, trained from scratch through the shared training path, cached
as a diffusers pipeline folder, read back through the diffusers loader, and erased by a method unchanged."""

from __future__ import annotations

import json

import pytest
import torch

pytest.importorskip("diffusers")

from unlearnkit.cli import main  # noqa: E402
from unlearnkit.diffusion import build_concept_data, unlearn_concept  # noqa: E402
from unlearnkit.diffusion.hf import DiffusersTextToImage, is_pipeline_folder  # noqa: E402
from unlearnkit.diffusion.io import load_model  # noqa: E402
from unlearnkit.diffusion.model import ModelConfig, TextToImage  # noqa: E402
from unlearnkit.diffusion.schedule import q_sample  # noqa: E402
from unlearnkit.diffusion.training import DiffusionTrainConfig, cache_key, cached_model  # noqa: E402
from unlearnkit.errors import ConfigError  # noqa: E402

CFG = DiffusionTrainConfig(steps=3, batch_size=4, lr=1e-2, base=8, text_dim=16, arch="diffusers")


@pytest.fixture(scope="module")
def mini(tmp_path_factory):
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(8, 1, 8, 8, generator=gen) * 2 - 1
    data = build_concept_data(
        images, torch.arange(8) % 4, ["ant", "bee", "cat", "dog"], styles=("plain", "inverted"), synonyms={}
    )
    cache = tmp_path_factory.mktemp("cache")
    model, meta = cached_model(data, CFG, cache_dir=cache, progress=False)
    return data, model, meta, cache / cache_key(data, CFG, None), cache


def test_diffusers_miniature_is_built_from_configs_with_the_miniature_schedule(mini):
    data, model, meta, _, _ = mini
    from diffusers import DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel

    assert isinstance(model, DiffusersTextToImage)
    assert isinstance(model.unet, UNet2DConditionModel) and isinstance(model.text_encoder, CLIPTextModel)
    assert isinstance(model.scheduler, DDIMScheduler) and model.vae is None
    assert model.sample_shape == data.image_shape and tuple(model.unet.config.block_out_channels) == (8, 16)
    assert model.unet.mid_block is None and meta["arch"] == "diffusers"
    own = TextToImage(ModelConfig(vocab_size=len(data.vocab), base=8, text_dim=16))
    assert torch.allclose(model.alphas_cumprod, own.alphas_cumprod, atol=1e-6)
    # the training noise of the shared loss is the diffusers scheduler's forward process
    x0, noise, t = torch.randn(3, 1, 8, 8), torch.randn(3, 1, 8, 8), torch.tensor([0, 500, 999])
    assert torch.allclose(q_sample(model, x0, t, noise), model.scheduler.add_noise(x0, noise, t), atol=1e-5)
    # the empty prompt of classifier-free guidance training is the tokenizer's ""
    empty = model.codec.ids(torch.zeros(1, 4, dtype=torch.long))[0].tolist()
    assert empty == model.tokenizer("", padding="max_length", max_length=model.tokenizer.model_max_length).input_ids


def test_training_from_scratch_moves_both_parts_and_the_cache_is_a_pipeline_folder(mini):
    data, model, meta, path, cache = mini
    from unlearnkit.runtime import seed_everything

    seed_everything(CFG.seed)
    init = CFG.build(data)  # the same seed gives the initial weights the training started from
    moved = {n for n, p in init.named_parameters() if not torch.equal(p, dict(model.named_parameters())[n])}
    assert any(n.startswith("unet.") for n in moved) and any(n.startswith("text_encoder.") for n in moved)
    assert is_pipeline_folder(path) and json.loads((path / "meta.json").read_text())["arch"] == "diffusers"
    again, meta2 = cached_model(data, CFG, cache_dir=cache, progress=False)  # a cache hit: no retraining
    assert meta2["seconds"] == meta["seconds"]
    loaded = load_model(path, data)  # the generic loader takes the diffusers path
    assert isinstance(loaded, DiffusersTextToImage)
    x, t, tok = torch.randn(2, 1, 8, 8), torch.tensor([10, 700]), data.prompts([0, 1], [0, 1])
    with torch.no_grad():
        assert torch.allclose(loaded(x, t, tok), model(x, t, tok), atol=1e-6)
        assert torch.allclose(again(x, t, tok), model(x, t, tok), atol=1e-6)
    own = DiffusionTrainConfig(steps=3, batch_size=4, lr=1e-2, base=8, text_dim=16)
    assert cache_key(data, own, None) != cache_key(data, CFG, None)


def test_esd_x_on_the_reloaded_diffusers_miniature_changes_only_cross_attention(mini):
    data, _, _, path, _ = mini
    model = load_model(path, data)
    res = unlearn_concept(model, data, "object:cat", "esd-x", progress=False, steps=2, lr=1e-2, ddim_steps=2)
    old, new = dict(model.named_parameters()), dict(res.model.named_parameters())
    changed = {n for n in old if not torch.equal(old[n], new[n])}
    assert changed == {n for n in old if ".attn2." in n}  # to_q/k/v/out of the one cross-attention level


def test_cli_diff_train_arch_diffusers_writes_a_pipeline_folder(tmp_path, capsys):
    argv = ["diff-train", "--arch", "diffusers", "--train-subset", "10", "--steps", "1", "--batch-size", "4",
            "--base", "8", "--cache-dir", str(tmp_path), "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    folder = capsys.readouterr().out.split("model: ")[1].split()[0]
    assert is_pipeline_folder(folder) and (tmp_path / folder.rsplit("/", 1)[1] / "unet").is_dir()
    with pytest.raises(ConfigError, match="arch"):
        DiffusionTrainConfig(arch="sd")
