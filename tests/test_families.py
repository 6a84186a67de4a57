"""One ``unlearnkit.unlearn`` for every family of models (:mod:`unlearnkit.family`): the same call shape
unlearns a classifier, a GPT-2-style LM folder, a diffusers pipeline folder and the bundled GAN; an option of
another family is refused in each; the method registry answers for every family without importing it first."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import unlearnkit as uk
from unlearnkit.errors import ConfigError, ModelError
from unlearnkit.family import family_of
from unlearnkit.result import UnlearnResult

pytest.importorskip("transformers")
pytest.importorskip("diffusers")

TEXTS = ["the cat sat on the mat", "a dog ran in the park", "birds sing in the morning", "rain falls on the roof"]


def _changed(before: nn.Module, after: nn.Module) -> set[str]:
    old = dict(before.named_parameters())
    return {n for n, p in after.named_parameters() if n in old and not torch.equal(old[n].cpu(), p.detach().cpu())}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """One small model of each family, with forget and retain data and a quick method; folders for LM and
    diffusion (a Hugging Face model folder and a diffusers pipeline folder)."""
    from unlearnkit.diffusion import build_concept_data, tiny_pipeline
    from unlearnkit.gan.models import GAN, GANConfig
    from unlearnkit.lm import TinyLMConfig, build_tiny_lm, save_causal_lm, train_tokenizer

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("families")
    torch.manual_seed(0)
    x = torch.randn(60, 4)
    y = (x[:, 0] > 0).long()
    classifier = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    tok = train_tokenizer(TEXTS, vocab_size=300)
    lm = build_tiny_lm(TinyLMConfig(arch="gpt2", d_model=32, n_layers=1, n_heads=2), tok, seed=0)
    lm_folder = save_causal_lm(lm, tok, root / "gpt2")
    images = torch.rand(8, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    concepts = build_concept_data(
        images, torch.arange(8) % 4, ["ant", "bee", "cat", "dog"], styles=("plain", "inverted"), synonyms={}
    )
    pipe_folder = tiny_pipeline(concepts.vocab.words[1:], root / "pipe", latent=True, width=8)
    gan = GAN(GANConfig((1, 8, 8), z_dim=8, width=4)).eval()
    return {
        "classifier": (classifier, (x[:10], y[:10]), (x[10:], y[10:]), "ga", {"epochs": 1, "lr": 0.1}),
        "lm": (lm_folder, TEXTS[:2], TEXTS[2:], "ga", {"epochs": 1, "lr": 1e-2}),
        "diffusion": (pipe_folder, "object:cat", concepts, "esd-x", {"steps": 1, "lr": 1e-2, "ddim_steps": 2}),
        "gan": (
            gan,
            gan.sample(8, seed=1),
            gan.sample(16, seed=2),
            "adapt-unlearn",
            {"adapt_steps": 2, "unlearn_steps": 2, "n_adapted": 1, "batch_size": 4},
        ),  # fmt: skip
    }


@pytest.mark.parametrize("family", ["classifier", "lm", "diffusion", "gan"])
def test_the_same_call_unlearns_every_family(models, family):
    model, forget, retain, method, hparams = models[family]
    assert family_of(model).name == family
    res = uk.unlearn(model, forget, retain, method, seed=0, device="cpu", progress=False, callbacks=[], **hparams)
    assert isinstance(res, UnlearnResult) and res.method == method and res.seconds > 0
    assert res.hparams["seed"] == 0 and all(res.hparams[k] == v for k, v in hparams.items())
    if isinstance(model, nn.Module):  # the model passed in is untouched, the result's model moved
        before = {n: p.detach().clone() for n, p in model.named_parameters()}
        assert res.model is not model and _changed(model, res.model) != set()
        assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())
    else:  # a folder: loaded, unlearned, handed back as a model
        assert isinstance(res.model, nn.Module) and not res.model.training
    if family == "lm":
        assert len(res.losses) == 1
    if family == "gan":
        assert len(res.report["repulsion_distance"]) == 2


def test_a_language_model_folder_loads_quietly_with_progress_off(models, capsys):
    model, forget, retain, method, hparams = models["lm"]
    uk.unlearn(model, forget, retain, method, progress=False, **hparams)
    err = capsys.readouterr().err
    assert "Loading" not in err and "%|" not in err  # no progress bar of any kind, transformers' included


@pytest.mark.parametrize(
    ("family", "option", "value"),
    [
        ("classifier", "tokenizer", "tok"),
        ("lm", "budget", "published"),
        ("lm", "collapse_threshold", 50.0),
        ("diffusion", "task", "classification"),
        ("gan", "max_length", 16),
    ],
)
def test_an_option_of_another_family_is_refused(models, family, option, value):
    model, forget, retain, method, hparams = models[family]
    with pytest.raises(ConfigError, match=rf"^{option}= does not apply to the {family} family \(an option of the"):
        uk.unlearn(model, forget, retain, method, progress=False, **{option: value}, **hparams)


def test_a_language_model_takes_a_method_instance_of_its_family(models):
    folder, forget, retain, _, _ = models["lm"]
    algo = uk.make_method("ga", family="lm", epochs=1, lr=1e-2)
    assert uk.unlearn(folder, forget, retain, algo, progress=False).hparams == algo.hparams()
    with pytest.raises(ConfigError, match="'ga' is for classifier models; pick a lm method"):
        uk.unlearn(folder, forget, retain, uk.make_method("ga"), progress=False)
    where = r"\('salun' is a method of the classifier and diffusion families\)"
    with pytest.raises(ConfigError, match=f"unknown method 'salun' for the lm family {where}; choose one of .*npo"):
        uk.unlearn(folder, forget, retain, "salun", progress=False)


def test_a_model_of_no_family_names_the_families():
    with pytest.raises(ModelError, match="torch.nn.Module, got list .*lm: a Hugging Face causal LM"):
        uk.unlearn([1, 2], (torch.zeros(2, 1), torch.zeros(2)), (torch.zeros(2, 1), torch.zeros(2)))
    with pytest.raises(ModelError, match="got PosixPath"):
        uk.unlearn(Path("/no/such/folder"), [], [])


def test_the_registry_answers_for_every_family_in_a_fresh_interpreter():
    """No family module imported first, and ``import unlearnkit`` pulls in neither transformers nor diffusers."""
    code = (
        "import sys, unlearnkit as uk\n"
        "heavy = [m for m in ('transformers', 'diffusers') if m in sys.modules]\n"
        "print(heavy, uk.make_method('npo', domain='lm').name, uk.make_method('esd-x', family='diffusion').name,\n"
        "      uk.available_methods(family='gan'), 'ga' in uk.available_methods(family='lm'))\n"
    )
    src = str(Path(uk.__file__).resolve().parents[1])
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={"PYTHONPATH": src})
    assert out.stdout.split("\n")[0] == "[] npo esd-x ['adapt-unlearn'] True", out.stderr


def test_family_is_the_name_and_domain_its_alias():
    assert uk.available_methods(family="lm") == uk.available_methods(domain="lm")
    assert "salun" in uk.available_methods() and "salun" not in uk.available_methods(family="lm")
    with pytest.raises(ConfigError, match="unknown family 'audio'; choose one of classifier"):
        uk.available_methods(family="audio")
    with pytest.raises(ConfigError, match="disagree"):
        uk.make_method("npo", domain="lm", family="diffusion")
    with pytest.raises(ConfigError, match=r"'npo' is a method of the lm family"):
        uk.make_method("npo")
