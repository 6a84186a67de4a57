"""Every diffusion method on a Hugging Face diffusers Stable Diffusion pipeline (a tiny random one built from
configs and saved in the save_pretrained layout, VAE included): which tensors each method may change, the
prompt codec, prefix splicing, saving and loading, and the diff-unlearn / diff-eval commands."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("diffusers")

from unlearnkit.cli import main  # noqa: E402
from unlearnkit.diffusion import build_concept_data, ddim_sample, load_concept_data, unlearn_concept  # noqa: E402
from unlearnkit.diffusion.hf import DiffusersTextToImage, load_pipeline, save_pipeline, tiny_pipeline  # noqa: E402


@pytest.fixture(scope="module")
def sd(tmp_path_factory):
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(8, 1, 8, 8, generator=gen)
    data = build_concept_data(
        images, torch.arange(8) % 4, ["ant", "bee", "cat", "dog"], styles=("plain", "inverted"), synonyms={}
    )
    folder = tiny_pipeline(data.vocab.words[1:], tmp_path_factory.mktemp("sd") / "pipe", latent=True, width=8)
    return data, load_pipeline(folder, data), folder


def _changed(before: torch.nn.Module, after: torch.nn.Module) -> set[str]:
    old, new = dict(before.named_parameters()), dict(after.named_parameters())
    return {n for n in old if not torch.equal(old[n], new[n])}


def _kv(n: str) -> bool:
    return ".attn2.to_k." in n or ".attn2.to_v." in n


HEAD = ("unet.time_embedding.", "unet.conv_out.", "unet.conv_norm_out.")
#: method -> (extra hyper-parameters, predicate every changed tensor name must satisfy)
EXPECTED = {
    "esd-x": ({"ddim_steps": 2}, lambda n: ".attn2." in n),
    "esd-x-strict": ({"ddim_steps": 2}, _kv),
    "esd-u": ({"ddim_steps": 2}, lambda n: n.startswith("unet.") and ".attn2." not in n and not n.startswith(HEAD)),
    "ga": ({}, lambda n: n.startswith("unet.")),
    "rl": ({}, lambda n: n.startswith("unet.")),
    "salun": ({}, lambda n: n.startswith("unet.")),
    "concept-correction": ({"warmup": 1}, _kv),
    "concept-correction-mse": ({}, lambda n: ".attn2." in n),
    "advunlearn": ({"ddim_steps": 2, "warmup": 1, "attack_steps": 2, "retain_batch": 2}, lambda n: "text_encoder" in n),
}
#: one method per parameter group runs in the default suite, the rest with ``-m slow``
FAST = {"esd-x", "esd-u", "salun", "concept-correction", "advunlearn"}


@pytest.mark.parametrize(
    "method", [m if m in FAST else pytest.param(m, marks=pytest.mark.slow) for m in sorted(EXPECTED)]
)
def test_every_method_changes_only_its_parameter_group_on_a_latent_sd_pipeline(sd, method):
    data, model, _ = sd
    extra, allowed = EXPECTED[method]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    res = unlearn_concept(
        model, data, "object:cat", method, device="cpu", progress=False, steps=2, lr=1e-2, batch_size=4, **extra
    )
    assert isinstance(res.model, DiffusersTextToImage)
    changed = _changed(model, res.model)
    assert changed, f"{method} must move some weights"
    bad = sorted(n for n in changed if not allowed(n))
    assert not bad, f"{method} changed tensors outside its group: {bad[:5]}"
    assert not any(n.startswith("vae.") for n in changed)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items()), "the input must not change"


def test_esd_x_reaches_every_cross_attention_projection(sd):
    data, model, _ = sd
    x = unlearn_concept(model, data, "object:cat", "esd-x", progress=False, steps=2, lr=1e-2, ddim_steps=2)
    names = {n for n, _ in model.named_parameters() if ".attn2." in n}
    assert _changed(model, x.model) == names  # to_q, to_k, to_v and to_out of every attn2 (train-esd.py xattn)


def test_prompt_codec_and_prefix_splice_match_a_prepended_word(sd):
    data, model, _ = sd
    tok = model.tokenizer
    prompt = data.prompt(2, 1).unsqueeze(0)  # "a cat in inverted style" + padding
    ids = model.codec.ids(prompt)[0].tolist()
    assert ids[: ids.index(tok.eos_token_id) + 1] == tok("a cat in inverted style").input_ids
    assert (
        model.codec.ids(torch.zeros(1, 4, dtype=torch.long))[0].tolist()
        == tok("", padding="max_length", max_length=tok.model_max_length).input_ids
    )  # the empty prompt of classifier-free guidance
    word = data.vocab.index["picture"]
    with torch.no_grad():
        spliced = model.encode(prompt, prefix=model.word_embeddings(torch.tensor([word])))
        written = model.encode(torch.cat([torch.tensor([[word]]), prompt[:, :-1]], dim=1))
    assert torch.allclose(spliced, written, atol=1e-5)


def test_latent_sampling_decodes_to_data_images_and_save_load_round_trip(sd, tmp_path):
    data, model, _ = sd
    z = ddim_sample(model, data.prompts([0, 1], [0, 1]), steps=2)
    assert z.shape == (2, *model.sample_shape) and model.sample_shape[0] == 4
    imgs = model.from_latents(z)
    assert imgs.shape == (2, *data.image_shape) and imgs.abs().max() <= 1
    res = unlearn_concept(model, data, "object:cat", "esd-x", progress=False, steps=1, lr=1e-2, ddim_steps=2)
    out = save_pipeline(res.model, tmp_path / "erased")
    again = load_pipeline(out, data)
    for (n, p), (_, q) in zip(res.model.named_parameters(), again.named_parameters()):
        assert torch.equal(p, q), n
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(out, safety_checker=None, requires_safety_checker=False)
    assert torch.equal(pipe.unet.conv_in.weight, res.model.unet.conv_in.weight)


@pytest.mark.slow
def test_cli_diff_unlearn_and_diff_eval_on_a_pipeline_folder(tmp_path, capsys):
    data = load_concept_data("digits", train_subset=10)
    folder = tiny_pipeline(data.vocab.words[1:], tmp_path / "sd", latent=False)
    common = ["--train-subset", "10", "--no-progress"]
    argv = ["diff-unlearn", "--model", str(folder), "--concept", "object:three", "--method", "esd-x",
            "--hp", "steps=1", "--hp", "ddim_steps=2", "--out", str(tmp_path / "out"), *common]  # fmt: skip
    assert main(argv) == 0
    assert "esd-x erased object 'three'" in capsys.readouterr().out
    model = load_pipeline(tmp_path / "out", data)
    assert isinstance(model, DiffusersTextToImage) and model.vae is None
    argv = ["diff-eval", "--model", str(tmp_path / "out"), "--ddim-steps", "2", "--per-prompt", "1",
            "--cache-dir", str(tmp_path / "cache"), "--json", str(tmp_path / "m.json"), *common]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    for key in ("ua_replaced", "ua_destroyed", "ua_any", "quality", "fd_floor", "cra"):
        assert key in out
    assert main(["diff-unlearn", "--model", str(tmp_path / "nope"), "--concept", "object:three", "--out", "x"]) == 2


def test_one_api_unlearns_a_diffusers_pipeline_object(sd):
    from diffusers import StableDiffusionPipeline

    import unlearnkit

    data, _, folder = sd
    pipe = StableDiffusionPipeline.from_pretrained(folder, safety_checker=None, requires_safety_checker=False)
    res = unlearnkit.unlearn(pipe, forget="object:cat", retain=data, method="esd-x", steps=1, lr=1e-2, ddim_steps=2)
    changed = {n for n, p in res.model.unet.named_parameters() if not torch.equal(p, pipe.unet.get_parameter(n))}
    assert changed and all(".attn2." in n for n in changed)
    assert all(torch.equal(p, q) for p, q in zip(res.model.text_encoder.parameters(), pipe.text_encoder.parameters()))
    with pytest.raises(unlearnkit.errors.ConfigError, match="ConceptData"):
        unlearnkit.unlearn(pipe, forget="object:cat", retain=None, method="esd-x")


def test_word_level_tokenizer_gives_every_word_one_token(tmp_path):
    from unlearnkit.diffusion.concepts import FASHION_OBJECTS, STYLES
    from unlearnkit.diffusion.hf import word_level_clip_tokenizer

    # "at" cuts the chain of "cat", "in" those of "thin" and "plain"; the bundled names cut each other too
    words = ["a", "in", "style", "at", "cat", *FASHION_OBJECTS, *STYLES]
    tok = word_level_clip_tokenizer(words, tmp_path)
    assert {w: tok.tokenize(w) for w in words} == {w: [w + "</w>"] for w in words}
    ids = [tok(w, add_special_tokens=False).input_ids for w in words]
    assert len({i[0] for i in ids}) == len(set(words))  # no two words share a token
