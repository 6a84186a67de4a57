"""The GAN part: adversarial training through the engine, Adapt-then-Unlearn's terms and stages, the k-NN
precision/recall metric, the CLI, and bad inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from unlearnkit.cli import main
from unlearnkit.errors import CheckpointError, ConfigError, DataError, UnlearnkitError
from unlearnkit.gan.adapt_unlearn import (
    AdaptUnlearnConfig,
    RepulsionHook,
    adapt,
    load_negative_images,
    negatives_of_class,
    positive_indices,
    repulsion_distance,
    repulsion_loss,
    resolve_negatives,
    select_positives,
    unlearn_stage,
)
from unlearnkit.gan.metrics import precision_recall
from unlearnkit.gan.models import GAN, GANConfig
from unlearnkit.gan.train import AdversarialRecipe, EMAHook, load_gan, save_gan, train_adversarial


def tiny_gan(seed: int = 0) -> GAN:
    torch.manual_seed(seed)
    return GAN(GANConfig((1, 8, 8), z_dim=8, width=4)).eval()


class Pair(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Parameter(torch.tensor([1.0, 2.0]))
        self.b = nn.Parameter(torch.tensor([3.0]))


def test_repulsion_distance_and_variants_follow_the_reference_formulas():
    # calc_difference_param_new: per tensor (sum over models of the MSE) / P / 2 * K, summed over tensors.
    # a: MSEs 0.5 and 2.0 -> 2.5 / 2 / 2 * 2 = 1.25; b: MSEs 4.0 and 0.0 -> 4 / 2 / 2 * 2 = 2.0; val = 3.25
    adapted = [
        {"a": torch.tensor([0.0, 2.0]), "b": torch.tensor([1.0])},
        {"a": torch.tensor([1.0, 0.0]), "b": torch.tensor([3.0])},
    ]
    val = repulsion_distance(Pair(), adapted).detach()
    assert float(val) == pytest.approx(3.25)
    assert float(repulsion_loss(val, "el2", 0.5)) == pytest.approx(100 * math.exp(-1.625))
    assert float(repulsion_loss(val, "nl2", 0.5)) == pytest.approx(-1.625)
    assert float(repulsion_loss(val, "il2", 0.5)) == pytest.approx(0.5 / 3.25)
    # every variant, minimised, pushes the parameters away from the adapted ones
    for kind in ("el2", "nl2", "il2"):
        m = Pair()
        opt = torch.optim.SGD(m.parameters(), lr=0.01)
        repulsion_loss(repulsion_distance(m, adapted), kind, 0.5).backward()
        opt.step()
        assert float(repulsion_distance(m, adapted)) > 3.25, kind


def test_engine_interleaves_phases_and_moves_only_the_parameters_each_loss_touches():
    from unlearnkit.engine import Hook, Phase, Recipe, train

    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))
    seen: list[str] = []

    class Record(Hook):
        def extra_loss(self, ctx):
            seen.append(ctx.phase)

    before = [p.detach().clone() for p in model.parameters()]
    batches = [(torch.randn(4, 2),) for _ in range(3)]
    phases = [
        Phase("first", batches, lambda m, b: m[0](b[0]).pow(2).mean()),
        Phase("second", batches[:2], lambda m, b: m[1](b[0]).pow(2).mean()),
    ]
    train(
        model,
        phases,
        Recipe(epochs=1, lr=0.1, optimizer="adam", weight_decay=0.0),
        hooks=[Record()],
        progress=False,
        interleave=True,
    )
    assert seen == ["first", "second", "first", "second", "first"]
    after = list(model.parameters())
    assert all(not torch.equal(b, a) for b, a in zip(before, after))
    # one phase alone: the other layer never gets a gradient, so Adam leaves it exactly as it was
    model2 = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))
    frozen = [p.detach().clone() for p in model2[1].parameters()]
    train(model2, phases[:1], Recipe(epochs=1, lr=0.1, optimizer="adam", weight_decay=0.01), progress=False)
    assert all(torch.equal(f, p) for f, p in zip(frozen, model2[1].parameters()))


def test_adversarial_step_keeps_the_discriminator_out_of_the_generator_step():
    gan = tiny_gan()
    d_before = [p.detach().clone() for p in gan.discriminator.parameters()]
    real = torch.rand(32, 1, 8, 8) * 2 - 1
    recipe = AdversarialRecipe(steps=1, batch_size=16, r1=0.0)
    from unlearnkit.gan.train import adversarial_phases

    g_phase = adversarial_phases(gan, real, recipe, seed=0)[1]
    from unlearnkit.engine import Recipe, train

    train(gan, g_phase, Recipe(epochs=1, lr=0.01, optimizer="adam", weight_decay=0.0), progress=False)
    assert all(torch.equal(a, b) for a, b in zip(d_before, gan.discriminator.parameters()))
    log = train_adversarial(gan, real, AdversarialRecipe(steps=3, batch_size=16), progress=False)
    assert set(log.epoch_losses[0]) == {"d", "g"}
    assert log.steps == 6


@pytest.fixture(scope="module")
def toy_run():
    """A tiny random GAN whose "feature" is a bright image (mean pixel above the 70th percentile of its own
    samples, 30 % of them); adapted to its bright samples, then stage 2 with and without repulsion (trained on
    its bright samples instead, the same stage 2 makes 95 % of the samples bright: the data drive the share)."""
    torch.set_num_threads(1)
    gan = tiny_gan()
    with torch.no_grad():  # latent codes drive the brightness strongly, so the data decide where it goes
        gan.generator.project.weight.mul_(20)
    thr = float(gan.sample(2000, seed=5).mean((1, 2, 3)).quantile(0.7))

    def predict(x: torch.Tensor) -> torch.Tensor:
        return (x.mean((1, 2, 3)) > thr).long()

    positives = select_positives(gan, predict, 1, 400, seed=1)
    negatives = negatives_of_class(gan, predict, 1, 32, seed=2)
    cfg = AdaptUnlearnConfig(
        repulsion="nl2",
        gamma=1.0,
        ewc_lambda=0.0,
        n_adapted=1,
        ema_decay=None,
        adapt=AdversarialRecipe(steps=40, batch_size=16),
        unlearn=AdversarialRecipe(steps=60, batch_size=32),
    )
    adapted = adapt(gan, negatives, cfg, progress=False)
    runs = {}
    for kind in ("nl2", None):
        runs[kind] = unlearn_stage(
            gan, positives, adapted, AdaptUnlearnConfig(**{**cfg.__dict__, "repulsion": kind}), progress=False
        )

    def share(g: GAN) -> float:
        return float(predict(g.sample(2000, seed=5)).float().mean())

    return {"gan": gan, "adapted": adapted, "runs": runs, "share": share}


def test_stage1_adapts_towards_the_negatives(toy_run):
    assert toy_run["share"](toy_run["gan"]) == pytest.approx(0.30, abs=0.01)
    assert toy_run["share"](toy_run["adapted"][0]) > 0.6


def test_repulsion_increases_the_distance_to_the_adapted_model_during_stage2(toy_run):
    _, hist = toy_run["runs"]["nl2"]
    _, base = toy_run["runs"][None]
    # with the repulsion the distance grows; fine-tuning alone drifts towards θ_N (the same generated data)
    assert hist[-1] > 1.2 * hist[0]
    assert base[-1] < base[0]
    assert hist[-1] > 2 * base[-1]


def test_class_share_falls(toy_run):
    for kind in ("nl2", None):
        gan, _ = toy_run["runs"][kind]
        assert toy_run["share"](gan) < 0.05, kind
    assert toy_run["share"](toy_run["gan"]) > 0.25  # the original is untouched


def test_precision_recall_matches_the_prdc_reference():
    # Reference values: prdc 0.2 (clovaai/generative-evaluation-prdc, prdc/prdc.py, the Kynkäänniemi et al.
    # precision/recall) run outside the repository on these inputs: compute_prdc(real, fake, nearest_k=k)
    rng = np.random.default_rng(0)
    real = torch.from_numpy(rng.standard_normal((200, 8)))
    fake = torch.from_numpy(rng.standard_normal((150, 8)) * 1.3 + 0.4)
    assert precision_recall(real, fake, 3) == pytest.approx((0.5733333333333334, 0.985))
    assert precision_recall(real, fake, 5) == pytest.approx((0.7066666666666667, 0.985))
    assert precision_recall(real, real, 3) == (1.0, 1.0)


def test_positive_selection_reference_confident_and_class_balanced():
    # classes 0, 1, 2 (80 samples each) and the feature 3 (40); the feature's probability is high for half of
    # class 2 (the feature-like ones) and for one sample of class 0
    pred = torch.tensor([0] * 80 + [1] * 80 + [2] * 80 + [3] * 40)
    prob = torch.zeros(len(pred))
    prob[160:200] = 0.3
    prob[0] = 0.5
    prob[240:] = 0.9
    ref = positive_indices(pred, 3)  # the reference: every sample not predicted as the feature
    assert torch.equal(ref, torch.arange(240))
    strict = positive_indices(pred, 3, feature_prob=prob, max_prob=0.2)
    assert torch.equal(torch.bincount(pred[strict], minlength=4), torch.tensor([79, 80, 40, 0]))
    assert not bool((prob[strict] >= 0.2).any())
    assert torch.equal(positive_indices(pred, 3, feature_prob=prob, max_prob=0.4), torch.arange(1, 240))
    balanced = positive_indices(pred, 3, feature_prob=prob, max_prob=0.2, balance=True, seed=1)
    # the mix of the reference's positives (equal thirds) comes back, at class 2's kept fraction (1/2)
    assert torch.equal(torch.bincount(pred[balanced], minlength=4), torch.tensor([40, 40, 40, 0]))
    assert not bool((prob[balanced] >= 0.2).any()) and len(set(balanced.tolist())) == 120
    assert not torch.equal(balanced, positive_indices(pred, 3, feature_prob=prob, max_prob=0.2, balance=True, seed=2))
    with pytest.raises(ConfigError, match="feature_prob"):
        positive_indices(pred, 3, max_prob=0.2)
    with pytest.raises(ConfigError, match="max_prob"):
        positive_indices(pred, 3, feature_prob=prob, max_prob=1.5)
    with pytest.raises(ConfigError, match="feature_prob"):
        select_positives(tiny_gan(), lambda x: torch.zeros(len(x), dtype=torch.long), 3, 20, max_prob=0.2)


def test_ema_hook_is_the_reference_accumulate_and_stage2_hands_back_the_average():
    from types import SimpleNamespace

    pair = Pair()
    hook = EMAHook(pair, 0.75)
    ctx = SimpleNamespace(phase="g", model=SimpleNamespace(generator=pair))
    for value in (5.0, 9.0):
        with torch.no_grad():
            pair.a.fill_(value)
        hook.after_step(ctx)
    hook.after_step(SimpleNamespace(phase="d", model=SimpleNamespace(generator=pair)))  # D steps leave it alone
    # accumulate: 0.75 * (0.75 * [1, 2] + 0.25 * 5) + 0.25 * 9
    expected = 0.75 * (0.75 * torch.tensor([1.0, 2.0]) + 0.25 * 5.0) + 0.25 * 9.0
    assert torch.allclose(hook.average["a"], expected) and torch.allclose(hook.average["b"], torch.tensor([3.0]))
    hook.copy_to(pair)
    assert torch.allclose(pair.a, expected)

    torch.set_num_threads(1)
    gan, adapted = tiny_gan(), [tiny_gan(1)]
    pos = gan.sample(64, seed=3)
    runs = {}
    for decay in (None, 0.0, 0.9):
        cfg = AdaptUnlearnConfig(repulsion="nl2", ema_decay=decay, unlearn=AdversarialRecipe(steps=8, batch_size=16))
        runs[decay] = unlearn_stage(gan, pos, adapted, cfg, progress=False)
    same = zip(runs[None][0].parameters(), runs[0.0][0].parameters(), strict=True)
    assert all(torch.equal(a, b) for a, b in same)  # decay 0: the average is the last step
    assert runs[None][1] == runs[0.9][1]  # the repulsion sees the trained generator either way

    def dist(g: GAN) -> float:
        return sum(float((p - q).pow(2).sum()) for p, q in zip(g.generator.parameters(), gan.generator.parameters()))

    # eight steps of decay 0.9 keep the average much nearer the start than the trained weights
    assert 0 < dist(runs[0.9][0]) < 0.5 * dist(runs[None][0])
    with pytest.raises(ConfigError, match="ema_decay"):
        AdaptUnlearnConfig(ema_decay=1.0)


def test_original_is_the_moving_average_of_its_training():
    from unlearnkit.gan.train import REFERENCE_EMA_DECAY, GANTrainConfig, ImageData, cache_key, train_gan

    torch.set_num_threads(1)
    data = ImageData("digits", torch.rand(64, 1, 8, 8) * 2 - 1, torch.arange(64) % 10, [str(i) for i in range(10)])
    recipe = AdversarialRecipe(steps=8, batch_size=16, lr=1e-2)

    def trained(decay):
        return train_gan(data, GANTrainConfig(z_dim=8, width=4, recipe=recipe, seed=3, ema_decay=decay), progress=False)

    start = tiny_gan(3)  # train_gan's initial weights: the same seed and shapes
    raw, last, average = trained(None), trained(0.0), trained(0.9)
    assert all(torch.equal(a, b) for a, b in zip(raw.parameters(), last.parameters(), strict=True))

    def dist(g: GAN, h: GAN) -> float:
        return sum(float((p - q).pow(2).sum()) for p, q in zip(g.generator.parameters(), h.generator.parameters()))

    # eight steps of decay 0.9 keep the average near the start; the discriminator is trained either way
    assert 0 < dist(average, start) < 0.5 * dist(raw, start)
    assert all(torch.equal(a, b) for a, b in zip(raw.discriminator.parameters(), average.discriminator.parameters()))
    assert GANTrainConfig().ema_decay == REFERENCE_EMA_DECAY
    assert cache_key(data, GANTrainConfig()) != cache_key(data, GANTrainConfig(ema_decay=None))
    with pytest.raises(ConfigError, match="ema_decay"):
        GANTrainConfig(ema_decay=1.0)


class _Probe(nn.Module):
    """A stand-in evaluator: class = which quarter of the image is brightest, features = 4 quarter means."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(10.0))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        q = x.reshape(len(x), 1, 2, 4, 2, 4).mean((1, 3, 5))
        return q.reshape(len(x), 4).float()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x) * self.scale


def test_evaluate_gan_averages_draws_and_reports_the_fd_spread():
    from unlearnkit.diffusion.evaluators import Evaluators
    from unlearnkit.gan.metrics import RealReference, evaluate_gan

    probe = _Probe()
    ev = Evaluators(object=probe, style=probe)
    real = torch.randn(300, 4)
    ref = RealReference(real, 1.0, 0.1)
    gan = tiny_gan()
    single = [evaluate_gan(gan, ev, ref, 1, n_samples=200, seed=7 + i) for i in range(3)]
    three = evaluate_gan(gan, ev, ref, 1, n_samples=200, seed=7, draws=3)
    fds = [r["fd_rest"] for r in single]
    assert three["fd_rest"] == pytest.approx(float(np.mean(fds)))
    assert three["fd_sd"] == pytest.approx(float(np.std(fds, ddof=1))) and three["fd_sd"] > 0
    assert three["feature_share"] == pytest.approx(float(np.mean([r["feature_share"] for r in single])))
    assert three["precision"] == single[0]["precision"] and math.isnan(single[0]["fd_sd"])


def test_preset_fills_only_the_options_left_at_their_defaults():
    from unlearnkit.cli import build_parser
    from unlearnkit.gan.presets import PRESETS, apply_preset

    args = build_parser().parse_args(["gan-bench", "--preset", "miniature", "--unlearn-steps", "7"])
    changed = apply_preset(args, args.preset, args.option_defaults)
    assert args.unlearn_steps == 7 and "unlearn_steps" not in changed  # given on the command line: kept
    assert args.method_lr == 2e-4 and args.positive_max_prob == 0.1 and args.balance_positives is True
    assert args.variants == "finetune,nl2" and args.fd_draws == 5 and args.ewc_lambda == 5e6
    unlearn_args = build_parser().parse_args(["gan-unlearn", "--negatives", "class:3", "--out", "x"])
    apply_preset(unlearn_args, "miniature", unlearn_args.option_defaults)
    assert unlearn_args.repulsion == "nl2" and not hasattr(unlearn_args, "fd_draws")
    assert set(PRESETS["miniature"]) <= set(args.option_defaults) | {"repulsion"}
    plain = build_parser().parse_args(["gan-bench"])
    assert apply_preset(plain, None, plain.option_defaults) == [] and plain.method_lr == 2e-3
    with pytest.raises(ConfigError, match="unknown preset"):
        apply_preset(plain, "huge", plain.option_defaults)


def test_bad_inputs_raise_unlearnkit_errors(tmp_path):
    gan = tiny_gan()
    with pytest.raises(ConfigError, match="repulsion"):
        AdaptUnlearnConfig(repulsion="l3")
    with pytest.raises(ConfigError, match="gamma"):
        AdaptUnlearnConfig(gamma=0.0)
    with pytest.raises(ConfigError, match="steps"):
        AdversarialRecipe(steps=0)
    with pytest.raises(ConfigError, match="betas"):
        AdversarialRecipe(betas=(0.5, 1.0))
    with pytest.raises(ConfigError, match="repulsion"):
        RepulsionHook([gan], "exp", 1.0)
    with pytest.raises(DataError, match="shaped"):
        adapt(gan, torch.zeros(4, 1, 16, 16), AdaptUnlearnConfig(n_adapted=1))
    with pytest.raises(DataError, match="non-finite"):
        unlearn_stage(gan, torch.full((4, 1, 8, 8), float("nan")), [gan], AdaptUnlearnConfig())
    with pytest.raises(DataError, match="no image files"):
        load_negative_images(tmp_path, (1, 8, 8))
    with pytest.raises(ConfigError, match="class:N"):
        resolve_negatives("class:x", gan, lambda x: torch.zeros(len(x), dtype=torch.long))
    with pytest.raises(ConfigError, match="out of range"):
        resolve_negatives("class:12", gan, lambda x: torch.zeros(len(x), dtype=torch.long), num_classes=10)
    with pytest.raises(DataError, match="neither"):
        resolve_negatives(str(tmp_path / "missing"), gan, lambda x: torch.zeros(len(x), dtype=torch.long))
    with pytest.raises(DataError, match="nothing to adapt"):
        negatives_of_class(gan, lambda x: torch.zeros(len(x), dtype=torch.long), 3, 8, max_draws=500)
    with pytest.raises(CheckpointError, match="not a GAN"):
        save_gan(gan, tmp_path / "g")
        (tmp_path / "g" / "meta.json").write_text('{"kind": "original"}')
        load_gan(tmp_path / "g")
    with pytest.raises(UnlearnkitError):
        GANConfig((1, 10, 10))


def _write_pngs(folder, images: torch.Tensor) -> None:
    from unlearnkit.diffusion.images import png_bytes

    folder.mkdir()
    for i, img in enumerate(images):
        pixels = ((img[0].clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()
        (folder / f"{i}.png").write_bytes(png_bytes(pixels))


def test_cli_train_and_unlearn_end_to_end(tmp_path, capsys):
    from unlearnkit.checkpoint import read_meta
    from unlearnkit.gan.train import load_images

    torch.set_num_threads(1)
    cache = str(tmp_path / "cache")
    common = ["--train-subset", "120", "--cache-dir", cache, "--no-progress"]
    small = ["--steps", "6", "--width", "4", "--z-dim", "8", "--batch-size", "16"]
    assert main(["gan-train", *common, *small]) == 0
    assert "GAN:" in capsys.readouterr().out
    assert main(["gan-train", *common, *small, "--original-ema-decay", "none"]) == 0
    folder = capsys.readouterr().out.split("GAN: ")[1].split()[0]
    assert read_meta(folder)["train_config"]["ema_decay"] is None
    data = load_images("digits")
    negs = tmp_path / "negs"
    _write_pngs(negs, data.images[data.labels == 3][:6])
    loaded = load_negative_images(negs, (1, 8, 8))
    assert loaded.shape == (6, 1, 8, 8) and torch.allclose(loaded, data.images[data.labels == 3][:6], atol=0.01)
    out = tmp_path / "unlearned"
    args = [
        "gan-unlearn", "--negatives", str(negs), "--feature", "3", "--out", str(out), *common, *small,
        "--adapt-steps", "3", "--unlearn-steps", "3", "--n-adapted", "1", "--positive-pool", "60", "--n-samples", "40",
        "--repulsion", "nl2",
    ]  # fmt: skip
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "adapt-unlearn-nl2: class 3" in text and "feature share" in text
    gan, meta = load_gan(out)
    assert meta["unlearned_class"] == 3 and meta["n_negatives"] == 6
    assert set(meta["metrics_after"]) >= {"feature_share", "fd_rest", "precision", "recall"}
    assert main(args) == 2  # the output holds a checkpoint now: refused without --overwrite
    assert "already holds a checkpoint" in capsys.readouterr().err
    bad = [a if a != str(negs) else "class:nine" for a in args]
    assert main([a if a != str(out) else str(tmp_path / "other") for a in bad]) == 2
    assert "class:N" in capsys.readouterr().err
