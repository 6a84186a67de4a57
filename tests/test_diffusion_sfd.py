"""SFD (Score Forgetting Distillation): the forgetting term of the teacher target, one-step sampling, a short run
that moves the erased concept's samples away from it, saving/loading, and a diffusers UNet2DConditionModel."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from unlearnkit.diffusion import (
    ModelConfig,
    TextToImage,
    build_concept_data,
    concept_request,
    ddim_sample,
    load_model,
    save_model,
    unlearn_concept,
)
from unlearnkit.diffusion.methods.sfd import SFD, SFDLoss
from unlearnkit.diffusion.one_step import OneStepGenerator, sampling_speed
from unlearnkit.errors import ConfigError

NAMES = ["dark", "grey", "bright"]
LEVELS = {"dark": -0.8, "grey": 0.0, "bright": 0.8}


def _data():
    labels = torch.arange(12) % 3
    images = torch.rand(12, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    return build_concept_data(images, labels, NAMES, styles=("plain",), synonyms={})


class _Levels(nn.Module):
    """The brightness m(c) a prompt asks for: the sum of its words' entries (only the concept words are set)."""

    def __init__(self, data) -> None:
        super().__init__()
        self.level = nn.Embedding(len(data.vocab), 1)
        with torch.no_grad():
            self.level.weight.zero_()
            for word, value in LEVELS.items():
                self.level.weight[data.vocab.words.index(word)] = value

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.level(ids).sum(dim=(1, 2))


class ShadeModel(nn.Module):
    """An exact ε-predictor for data where concept c is the constant image m(c): ε(x_t, t, c) =
    (x_t − √ᾱ_t·m(c)) / √(1−ᾱ_t), so its x̂_0 is m(c) for every x_t. The parameters (m per word) sit under
    ``unet`` like a UNet's, so SFD trains them; the distillation then has a known answer."""

    clip_sample = True

    def __init__(self, data) -> None:
        super().__init__()
        self.unet = _Levels(data)
        betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
        self.register_buffer("alphas_cumprod", torch.cumprod(1.0 - betas, 0).float())

    @property
    def num_timesteps(self) -> int:
        return 1000

    @property
    def sample_shape(self) -> tuple[int, int, int]:
        return (1, 8, 8)

    def encode(self, tokens: torch.Tensor) -> torch.Tensor:
        return tokens.float()

    def null_tokens(self, batch: int, length: int, device=None) -> torch.Tensor:
        return torch.zeros(batch, length, dtype=torch.long)

    def forward(self, x, t, tokens=None, *, context=None):
        ctx = self.encode(tokens) if context is None else context
        m = self.unet(ctx.long()).view(-1, 1, 1, 1)
        ab = self.alphas_cumprod[t].view(-1, 1, 1, 1)
        return (x - ab.sqrt() * m) / (1 - ab).sqrt()


def _shade(images: torch.Tensor) -> torch.Tensor:
    """The concept each image shows: nearest of the three brightness levels."""
    levels = torch.tensor(list(LEVELS.values()))
    return (images.mean(dim=(1, 2, 3))[:, None] - levels).abs().argmin(1)


def _share(model, data, label: int, n: int = 32) -> float:
    tokens = data.prompts([label] * n, [0] * n)
    out = ddim_sample(model, tokens, steps=10, guidance=1.0, generator=torch.Generator().manual_seed(1))
    return float((_shade(out) == label).float().mean())


@pytest.fixture(scope="module")
def mini():
    """A randomly initialised miniature (its zero-initialised output head given random weights, so every prompt
    has its own ε)."""
    data = _data()
    torch.manual_seed(0)
    model = TextToImage(ModelConfig(vocab_size=len(data.vocab), base=8, text_dim=16))
    with torch.no_grad():
        model.unet.conv_out.weight.normal_(0, 0.3)
    return data, model.eval()


def test_teacher_target_is_the_safe_score_for_the_erased_concept_and_the_own_score_otherwise(mini):
    data, teacher = mini
    req = concept_request(teacher, data, "object:bright", device="cpu")
    for w in (1.0, 2.0):
        method = SFD(anchor=0, teacher_guidance=w)  # safe concept c_s = "dark"
        loss = SFDLoss(method, req, teacher, copy.deepcopy(teacher), method.anchor_label(req))
        tokens = data.prompts([2, 1, 2, 0, 1], [0] * 5)
        forget = torch.tensor([True, False, True, False, False])
        x_t = torch.randn(5, 1, 8, 8, generator=torch.Generator().manual_seed(2))
        t = torch.tensor([100, 300, 500, 700, 400])
        with torch.no_grad():
            got = loss.teacher_score(x_t, t, tokens, forget)
            null = teacher.null_tokens(5, tokens.shape[1])
            safe = data.prompts([0, 1, 0, 0, 1], [0] * 5)  # rows 0 and 2 asked for "bright": the target is "dark"

            uncond = teacher(x_t, t, null)
            want_safe = uncond + w * (teacher(x_t, t, safe) - uncond)
            want_own = uncond + w * (teacher(x_t, t, tokens) - uncond)
        # float32 batched in another composition than the reference rows: the reduction order differs (~1e-6);
        # a wrong prompt for a row differs by the score itself (order 0.1-1)
        torch.testing.assert_close(got[forget], want_safe[forget], rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(got[~forget], want_own[~forget], rtol=1e-4, atol=1e-5)
        assert (want_safe[forget] - want_own[forget]).abs().max() > 1e-2  # the two targets really differ
        # the two targets really differ where the concept was swapped
        assert float((want_safe[forget] - want_own[forget]).abs().max()) > 1e-3


def test_generator_is_the_teachers_x0_estimate_at_t_init(mini):
    data, teacher = mini
    gen = OneStepGenerator(teacher, 440)
    tokens = data.prompts([0, 1, 2], [0, 0, 0])
    z = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    ab = teacher.alphas_cumprod[440]
    x_t = (1 - ab).sqrt() * z
    with torch.no_grad():
        eps = teacher(x_t, torch.full((3,), 440), tokens)
        want = (x_t - (1 - ab).sqrt() * eps) / ab.sqrt()
        torch.testing.assert_close(gen.generate(z, teacher.encode(tokens)), want)


def test_short_sfd_run_moves_the_erased_concept_to_the_safe_one_and_samples_in_one_step(tmp_path):
    data = _data()
    teacher = ShadeModel(data)
    assert _share(teacher, data, 2) == 1.0, "the teacher draws the concept to be erased"
    res = unlearn_concept(
        teacher,
        data,
        "object:bright",
        "sfd",
        device="cpu",
        progress=False,
        steps=30,
        batch_size=8,
        lr=0.1,
        fake_lr=0.1,
        g_forget_coef=1.0,
        sg_forget_coef=1.0,
        anchor=0,
        ema_decay=0.0,  # the last iterate: a 30-step average at the reference's 0.9999 barely moves
    )
    gen = res.model
    assert isinstance(gen, OneStepGenerator)
    calls = []
    handle = gen.net.unet.register_forward_hook(lambda *_: calls.append(1))
    bright = _share(gen, data, 2)
    handle.remove()
    assert len(calls) == 1, "one network evaluation for the whole batch"
    assert bright <= 0.1, f"the erased concept is still drawn in {bright:.0%} of samples"
    assert _share(gen, data, 0) == 1.0 and _share(gen, data, 1) >= 0.9, "retained concepts stay"
    tokens = data.prompts([2] * 8, [0] * 8)
    erased = ddim_sample(gen, tokens, generator=torch.Generator().manual_seed(0))
    assert float((_shade(erased) == 0).float().mean()) >= 0.9, "the erased concept is drawn as the safe one"
    speed = sampling_speed(gen, teacher, data.prompts([0] * 16, [0] * 16), steps=10, repeats=1)
    assert speed["speedup"] > 1


def test_one_step_generator_is_saved_and_loaded_like_other_diffusion_outputs(mini, tmp_path):
    data, teacher = mini
    gen = OneStepGenerator(copy.deepcopy(teacher), 300)
    save_model(gen, tmp_path / "sfd", {"dataset": "custom"})
    back = load_model(tmp_path / "sfd", data)
    assert isinstance(back, OneStepGenerator) and back.t_init == 300
    tokens = data.prompts([2, 1], [0, 0])
    a = ddim_sample(gen, tokens, generator=torch.Generator().manual_seed(5))
    b = ddim_sample(back, tokens, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(a, b)


def test_sfd_on_a_diffusers_unet(tmp_path):
    pytest.importorskip("diffusers")
    from unlearnkit.diffusion.hf import DiffusersTextToImage, load_pipeline, tiny_pipeline

    gen = torch.Generator().manual_seed(0)
    images = torch.rand(8, 1, 8, 8, generator=gen)
    data = build_concept_data(
        images, torch.arange(8) % 4, ["ant", "bee", "cat", "dog"], styles=("plain", "inverted"), synonyms={}
    )
    folder = tiny_pipeline(data.vocab.words[1:], tmp_path / "pipe", latent=False, width=8)
    model = load_pipeline(folder, data)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    res = unlearn_concept(
        model, data, "object:bee", "sfd", device="cpu", progress=False, steps=2, batch_size=2, lr=1e-3
    )
    out = res.model
    assert isinstance(out, OneStepGenerator) and isinstance(out.net, DiffusersTextToImage)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items()), "the teacher must not change"
    changed = {n for n, p in out.net.named_parameters() if not torch.equal(p, dict(model.named_parameters())[n])}
    assert changed and all(n.startswith("unet.") for n in changed)
    samples = ddim_sample(out, data.prompts([0, 1], [0, 1]), generator=torch.Generator().manual_seed(0))
    assert samples.shape == (2, *model.sample_shape) and torch.isfinite(samples).all()
    save_model(out, tmp_path / "out")
    back = load_model(tmp_path / "out", data)
    assert isinstance(back, OneStepGenerator) and back.t_init == out.t_init


class _Toy(nn.Module):
    """ε(x, t, c) = tanh(x·(s0 + s1·c) + t/1000) with c the concept index of the prompt (0 for the empty one)."""

    def __init__(self, data, s0: float, s1: float) -> None:
        super().__init__()
        self.unet = nn.Linear(1, 1)  # a parameter for the method to train; unused by the score
        self.s0, self.s1 = s0, s1
        lut = torch.zeros(len(data.vocab))
        for i, word in enumerate(NAMES):
            lut[data.vocab.words.index(word)] = i
        self.register_buffer("lut", lut)
        betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64).float()
        self.register_buffer("alphas_cumprod", (1 - betas).cumprod(0))

    num_timesteps = 1000
    sample_shape = (1, 4, 4)

    def encode(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.lut[tokens].sum(1, keepdim=True)

    def null_tokens(self, batch: int, length: int, device=None) -> torch.Tensor:
        return torch.zeros(batch, length, dtype=torch.long)

    def forward(self, x, t, tokens=None, *, context=None):
        c = self.encode(tokens) if context is None else context
        return torch.tanh(x * (self.s0 + self.s1 * c).view(-1, 1, 1, 1) + t.view(-1, 1, 1, 1) / 1000)


def test_losses_agree_with_the_reference_code():
    """Reference values: tqch/score-forgetting-distillation ``DDPM/functions/losses.py`` run outside this
    repository on the same inputs (same toy score functions, x_0 and ε from ``torch.randn`` with seed 0, the
    timesteps below; remain labels (0, 1, 0), forget 2, override 0; published coefficients remain 1, forget
    0.01, α 1.2): generator 1.0·g_r + 0.01·g_f and fake-score 1.0·sg_r + 0.01·sg_f."""
    data = _data()
    teacher, fake = _Toy(data, 0.5, 0.1), _Toy(data, 0.3, 0.2)
    req = concept_request(teacher, data, "object:bright", device="cpu")
    method = SFD(anchor=0)
    loss = SFDLoss(method, req, teacher, fake, method.anchor_label(req))
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(6, 1, 4, 4, generator=g)
    eps = torch.randn(6, 1, 4, 4, generator=g)
    t = torch.tensor([40, 200, 450, 600, 700, 100])
    tokens = data.prompts([0, 1, 0, 2, 2, 2], [0] * 6)
    forget = torch.tensor([False, False, False, True, True, True])
    assert float(loss.sid_loss(x0, t, eps, tokens, forget)) == pytest.approx(-1.8738977909088135, rel=1e-4)
    assert float(loss.fake_loss(x0, t, eps, tokens, forget)) == pytest.approx(13.49979305267334, rel=1e-4)


def test_generator_is_the_references_moving_average(mini):
    """tqch/score-forgetting-distillation: ``model.ema_rate`` 0.9999 and ``FixedEMAHelper`` registered on the
    generator's starting weights, ``shadow = param.lerp(shadow, mu)`` after each generator step; the result is
    the average. After one step: mu·θ_0 + (1 − mu)·θ_1."""
    data, teacher = mini
    assert SFD().ema_decay == 0.9999
    kw = dict(device="cpu", progress=False, steps=1, batch_size=2, lr=1e-2, seed=3)
    last = unlearn_concept(teacher, data, "object:bright", "sfd", ema_decay=0.0, **kw).model
    avg = unlearn_concept(teacher, data, "object:bright", "sfd", **kw).model
    start, moved = dict(teacher.unet.named_parameters()), dict(last.net.unet.named_parameters())
    assert any(not torch.equal(start[n], moved[n]) for n in start), "the step moved the generator"
    mu = 0.9999
    for n, p in avg.net.unet.named_parameters():
        want = moved[n].detach().lerp(start[n].detach(), mu)
        torch.testing.assert_close(p.detach(), want, rtol=0, atol=1e-6)


def test_timestep_range_is_checked():
    data = _data()
    with pytest.raises(ConfigError, match="t_min < t_max"):
        unlearn_concept(
            ShadeModel(data), data, "object:bright", "sfd", device="cpu", progress=False, t_min=500, t_max=400
        )
