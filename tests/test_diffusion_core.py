"""Miniature text-to-image pieces: concept data, model, sampler, metrics, PNG grids, the prompt attack, CLI."""

from __future__ import annotations

import json
import zlib

import numpy as np
import pytest
import torch

from unlearnkit.cli import main
from unlearnkit.diffusion import (
    ModelConfig,
    TextToImage,
    attack_success_rate,
    ddim_sample,
    diffusion_loss,
    frechet_distance,
    load_concept_data,
    parse_concept,
    retain_accuracy,
    save_grid,
    unlearndiffatk,
    unlearning_accuracy,
)
from unlearnkit.diffusion.attacks import RelaxedPrefix, SimplexHook, attack_round, attack_vocabulary, project_simplex
from unlearnkit.diffusion.concepts import STYLES
from unlearnkit.diffusion.evaluators import Evaluators
from unlearnkit.diffusion.metrics import changed_storage_mb
from unlearnkit.errors import ConfigError
from unlearnkit.models.cnn import CNN


@pytest.fixture(scope="session")
def data():
    return load_concept_data("digits", train_subset=40)


@pytest.fixture(scope="session")
def model(data):
    torch.manual_seed(0)
    model = TextToImage(ModelConfig(vocab_size=len(data.vocab), base=8, text_dim=16)).eval()
    torch.nn.init.normal_(model.unet.conv_out.weight, std=0.1)  # a zero output head would hide the prompt
    return model


def test_concept_data_has_both_axes_prompts_and_synonyms(data):
    assert len(data) == 40 * len(STYLES)
    assert data.images.min() >= -1 and data.images.max() <= 1
    assert set(data.styles.tolist()) == set(range(len(STYLES)))
    words = [data.vocab.decode(t) for t in data.tokens]
    assert all(w.endswith(" style") and " a " in f" {w}" for w in words)
    assert data.tokens.shape[1] == 8 and any(not w.startswith("a ") for w in words)  # some start with fillers
    assert any("trio" in w for w in words) and any("three" in w for w in words)  # synonyms are trained on
    i = int((data.objects == 3).nonzero()[0])
    assert data.names("object")[3] in data.vocab.decode(data.tokens[i]) or "trio" in data.vocab.decode(data.tokens[i])
    assert data.vocab.decode(data.prompt(3, 1, synonym=True)) == "a trio in negative style"
    inverted = data.images[data.styles == data.style_names.index("inverted")]
    plain = data.images[data.styles == data.style_names.index("plain")]
    assert torch.allclose(inverted, -plain)  # in [-1, 1], inversion is negation


def test_parse_concept(data):
    assert parse_concept("object:3", data).word == "three"
    assert parse_concept("style:inverted", data).index == data.style_names.index("inverted")
    with pytest.raises(ConfigError, match="object:NAME"):
        parse_concept("3", data)


def test_sampler_and_loss_shapes(model, data):
    gen = torch.Generator().manual_seed(0)
    x = ddim_sample(model, data.tokens[:5], steps=3, guidance=2.0, generator=gen)
    assert x.shape == (5, 1, 8, 8) and x.abs().max() <= 1.0 + 1e-5
    loss = diffusion_loss(model, (data.images[:8], data.tokens[:8]), null_prob=0.5)
    assert loss.ndim == 0 and loss > 0


def test_metrics_on_hand_made_inputs():
    pred = torch.tensor([3, 3, 1, 2])
    assert unlearning_accuracy(pred, 3) == 50.0
    assert attack_success_rate(pred, 3) == 50.0
    assert retain_accuracy(torch.tensor([1, 2, 0]), torch.tensor([1, 2, 2])) == pytest.approx(200 / 3)
    with pytest.raises(ConfigError):
        retain_accuracy(torch.tensor([1]), torch.tensor([1, 2]))
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4000, 3))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    # equal covariances: the distance is the squared distance of the means
    assert frechet_distance(a, a + np.array([1.0, 2.0, 0.0])) == pytest.approx(5.0, rel=1e-6)
    # 1-D, b vs 2b: means m, 2m and variances s², 4s² give m² + (s - 2s)² = m² + s²
    b = rng.normal(size=(2000, 1))
    assert frechet_distance(b, 2 * b) == pytest.approx(float(b.mean() ** 2 + np.var(b, ddof=1)), rel=1e-9)
    with pytest.raises(ConfigError):
        frechet_distance(a, a[:, :2])


def test_changed_storage_counts_only_edited_tensors(model):
    import copy

    edited = copy.deepcopy(model)
    assert changed_storage_mb(model, edited) == 0.0
    with torch.no_grad():
        edited.unet.conv_in.weight.add_(1.0)
    assert changed_storage_mb(model, edited) == pytest.approx(edited.unet.conv_in.weight.numel() * 4 / 2**20)


def test_changed_storage_of_a_one_step_generator_is_keyed_by_the_original_names(model):
    import copy

    from unlearnkit.diffusion.one_step import OneStepGenerator

    gen = OneStepGenerator(copy.deepcopy(model), t_init=10)
    assert changed_storage_mb(model, gen) == 0.0  # the ``net.`` prefix is not a change
    with torch.no_grad():
        gen.net.unet.conv_in.weight.add_(1.0)
    assert changed_storage_mb(model, gen) == pytest.approx(gen.net.unet.conv_in.weight.numel() * 4 / 2**20)


def test_png_grid_is_a_valid_png(tmp_path):
    rows = [torch.linspace(-1, 1, 2 * 64).view(2, 1, 8, 8), torch.zeros(1, 1, 8, 8)]
    path = save_grid(tmp_path / "g.png", rows, scale=2)
    raw = path.read_bytes()
    assert raw[:8] == b"\x89PNG\r\n\x1a\n"
    w, h = int.from_bytes(raw[16:20], "big"), int.from_bytes(raw[20:24], "big")
    assert (w, h) == (2 * (16 + 2) + 2, 2 * (16 + 2) + 2)
    idat = raw.index(b"IDAT")
    length = int.from_bytes(raw[idat - 4 : idat], "big")
    pixels = np.frombuffer(zlib.decompress(raw[idat + 4 : idat + 4 + length]), dtype=np.uint8)
    assert pixels.size == h * (w + 1)
    assert pixels.reshape(h, w + 1)[2 + 0, 1 + 2] == 0  # first pixel of the first image is black (-1)


def test_simplex_projection():
    v = torch.tensor([[0.3, 2.0, -1.0], [0.2, 0.2, 0.2], [5.0, 5.0, 5.0]])
    p = project_simplex(v)
    assert torch.allclose(p.sum(-1), torch.ones(3))
    assert (p >= 0).all()
    assert torch.allclose(p[0], torch.tensor([0.0, 1.0, 0.0]))
    assert torch.allclose(p[1], torch.full((3,), 1 / 3))


def test_attack_prefix_tokens_are_valid_vocabulary_tokens(model, data):
    concept = parse_concept("object:three", data)
    allowed = attack_vocabulary(data, concept)
    banned = {0, data.vocab.index["three"], data.vocab.index["trio"]}
    assert banned.isdisjoint(allowed.tolist())
    prefix = RelaxedPrefix(3, allowed, seed=0)
    imgs = data.images[data.objects == 3][:8]
    toks = data.prompts([3] * 8, [0] * 8)
    start = prefix.weights.detach().clone()
    assert torch.allclose(start, torch.full_like(start, 1 / len(allowed)))  # uniform start, as the reference
    attack_round(model, prefix, imgs, toks, 500, steps=5, lr=0.05, weight_decay=0.1, hooks=[SimplexHook()])
    assert not torch.equal(start, prefix.weights), "the relaxed prefix must be optimised"
    w = prefix.weights.detach()
    assert torch.allclose(w.sum(-1), torch.ones(3), atol=1e-5) and (w >= 0).all()
    ids = prefix.token_ids()
    assert set(ids.tolist()) <= set(allowed.tolist())
    assert all(p.requires_grad for p in model.parameters()), "the attacked model's flags are restored"
    ev = Evaluators(CNN((1, 8, 8), 10).eval(), CNN((1, 8, 8), 6).eval())
    res = unlearndiffatk(model, data, concept, ev, k=3, rounds=2, iterations=2, seeds_per_prompt=1, ddim_steps=2)
    assert 0 <= res.asr_plain <= res.asr <= 100
    assert res.instances == len(data.style_names)  # one instance per prompt and seed
    assert all(0 <= r <= 2 for r in res.rounds_used)
    for prompt in res.prompts:
        words = prompt.split()
        assert len(words) == 3 + 5 and words[3:] == ["a", "three", "in", words[6], "style"]
        assert all(w in data.vocab.index and w not in ("three", "trio") for w in words[:3])


def test_cli_diff_train_and_bench(tmp_path, capsys):
    cache = str(tmp_path / "cache")
    common = ["--train-subset", "30", "--steps", "4", "--base", "8", "--cache-dir", cache, "--no-progress"]
    assert main(["diff-train", *common]) == 0
    assert "model:" in capsys.readouterr().out
    out = tmp_path / "bench"
    argv = ["diff-bench", *common, "--methods", "ga,esd-x", "--hp", "ga.steps=2", "--hp", "esd-x.steps=2",
            "--hp", "esd-x.ddim_steps=2", "--ddim-steps", "2", "--per-prompt", "1", "--attack-steps", "1",
            "--attack-rounds", "1", "--attack-seeds", "1", "--no-retrain", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    res = json.loads((out / "results.json").read_text())
    names = [r["model"] for r in res["rows"]]
    assert names == ["original", "ga", "esd-x"]  # --no-retrain: no retrain reference is trained
    for r in res["rows"]:
        assert {"ua", "ua_replaced", "ua_destroyed", "ira", "cra", "fd_eval", "fd_floor", "asr_attack"} <= set(r)
        assert r["ua"] == r["ua_replaced"] and r["quality"] in ("ok", "degraded", "broken")
        assert r["ua_any"] == pytest.approx(r["ua_replaced"] + r["ua_destroyed"])
        assert r["asr_attack_before"] <= r["asr_attack"] and r["attack_instances"] == len(STYLES)
    assert (out / "samples-overview.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["diff-bench", "--concept", "object:eleven", *common, "--out", str(out)]) == 2


def test_methods_run_unchanged_on_a_deeper_unet_and_larger_images():
    from unlearnkit.diffusion import DiffusionTrainConfig, build_concept_data, train_diffusion, unlearn_concept

    gen = torch.Generator().manual_seed(0)
    images = torch.rand(20, 1, 28, 28, generator=gen)
    labels = torch.arange(20) % 4
    data = build_concept_data(images, labels, ["ant", "bee", "cat", "dog"], image_size=16, synonyms={"cat": "kitty"})
    assert data.image_shape == (1, 16, 16)
    cfg = DiffusionTrainConfig(steps=2, batch_size=16, base=8, mults=(1, 2, 2), text_dim=16)
    model = train_diffusion(data, cfg, device="cpu", progress=False)
    for name, extra in (("esd-x", {"ddim_steps": 2}), ("salun", {})):
        res = unlearn_concept(model, data, "object:cat", name, device="cpu", progress=False, steps=1, **extra)
        assert res.model.unet.conv_in.weight.shape == model.unet.conv_in.weight.shape
    x = ddim_sample(res.model, data.prompts([2], [0], synonym=True), steps=2)
    assert x.shape == (1, 1, 16, 16)


def test_ua_split_and_fd_noise_floor():
    from unlearnkit.diffusion.metrics import fd_noise_floor, unlearning_split

    pred = torch.tensor([3, 3, 1, 10, 10, 2, 10, 3])  # concept 3, "unrecognisable" = 10
    replaced, destroyed = unlearning_split(pred, 3, 10)
    assert (replaced, destroyed) == (25.0, 37.5)
    assert replaced + destroyed == unlearning_accuracy(pred, 3)
    assert unlearning_split(pred, 3, None) == (unlearning_accuracy(pred, 3), 0.0)
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(4000, 3))
    small, small_sd = fd_noise_floor(feats, 30, draws=5)
    large, _ = fd_noise_floor(feats, 1000, draws=5)
    assert small > large > 0 and small_sd > 0  # the floor shrinks with the sample size
    assert large < 0.05


def test_unlearndiffatk_stops_at_the_first_success_and_counts_per_prompt(model, data):
    concept = parse_concept("object:three", data)

    class Fixed(torch.nn.Module):
        def __init__(self, label: int, k: int) -> None:
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))
            self.label, self.k = label, k

        def forward(self, x):
            return torch.nn.functional.one_hot(torch.full((len(x),), self.label), self.k).float() + 0 * self.w

    always = Evaluators(Fixed(3, 11), Fixed(0, 7), none_label={"object": 10, "style": 6})
    never = Evaluators(Fixed(10, 11), Fixed(0, 7), none_label={"object": 10, "style": 6})
    kw = dict(k=2, rounds=3, iterations=1, seeds_per_prompt=2, ddim_steps=2)
    hit = unlearndiffatk(model, data, concept, always, **kw)
    assert hit.asr_plain == hit.asr == 100.0 and set(hit.rounds_used) == {0} and not hit.prompts
    miss = unlearndiffatk(model, data, concept, never, **kw)
    assert miss.asr == miss.asr_plain == 0.0 and set(miss.rounds_used) == {3}  # every round tried, no success
    assert miss.instances == 2 * len(data.style_names)


def test_forward_takes_tokens_or_a_ready_context(model, data):
    tokens = data.prompts([3, 4], [0, 1])
    x, t = torch.randn(2, 1, 8, 8), torch.tensor([10, 500])
    with torch.no_grad():
        ctx = model.encode(tokens)
        assert torch.equal(model(x, t, tokens), model(x, t, context=ctx))
        assert not torch.equal(model(x, t, context=ctx), model(x, t, context=torch.zeros_like(ctx)))
    with pytest.raises(ConfigError, match="token ids or a ready text context"):
        model(x, t)


def test_diff_unlearn_overwrite_replaces_an_earlier_result_but_never_its_input(tmp_path, capsys):
    cache = tmp_path / "cache"
    assert main(["diff-train", "--train-subset", "30", "--steps", "1", "--base", "8", "--cache-dir", str(cache)]) == 0
    [model] = [p for p in cache.iterdir() if (p / "model.safetensors").is_file()]
    out = tmp_path / "o"
    argv = ["diff-unlearn", "--model", str(model), "--concept", "object:three", "--method", "ga",
            "--hp", "steps=1", "--train-subset", "30", "--no-progress", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    first = (out / "model.safetensors").read_bytes()
    capsys.readouterr()
    assert main(argv) == 2
    assert "pass --overwrite" in capsys.readouterr().err
    assert main([*argv, "--overwrite", "--seed", "1"]) == 0
    assert (out / "model.safetensors").read_bytes() != first
    before = (model / "model.safetensors").read_bytes()
    assert main([*argv[:-1], str(model), "--overwrite"]) == 2  # the input is never replaced
    assert (model / "model.safetensors").read_bytes() == before
