"""Shared fixtures: the digits data and a small trained original model, built once per test session."""

from __future__ import annotations

import copy

import pytest
import torch

import unlearnkit as uk
from unlearnkit.engine import Recipe

FAST_RECIPE = Recipe(epochs=12, lr=0.05, batch_size=64, schedule="cosine")


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory):
    """Point every default cache of the project at a fresh folder: tests never read or fill the user's."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("UNLEARNKIT_CACHE", str(tmp_path_factory.mktemp("unlearnkit-cache")))
        yield


@pytest.fixture(scope="session")
def digits() -> uk.DatasetBundle:
    return uk.load_dataset("digits")


@pytest.fixture(scope="session")
def _digits_original(digits) -> torch.nn.Module:
    torch.manual_seed(0)
    model = uk.create_model("cnn", digits.input_shape, digits.num_classes, width=8, hidden=32)
    uk.train_model(model, digits.train, FAST_RECIPE, seed=0, progress=False)
    return model


@pytest.fixture
def original(_digits_original) -> torch.nn.Module:
    """A private copy of the session's trained digits CNN (tests may not share mutations)."""
    return copy.deepcopy(_digits_original)


@pytest.fixture(scope="session")
def class_split(digits) -> uk.ForgetSplit:
    return uk.parse_forget("class:3", digits.train.y, class_names=digits.class_names)


@pytest.fixture(scope="session")
def random_split(digits) -> uk.ForgetSplit:
    return uk.parse_forget("random:0.1", digits.train.y, seed=0)


def state_equal(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def signed_sisa(tmp_path_factory, name: str, *, epochs: int):
    """A small SISA model (digits, 2 shards × 2 slices, trained by the CLI) and an Ed25519 key beside it."""
    from unlearnkit.cli import main

    out = tmp_path_factory.mktemp(name) / "sisa"
    args = ["exact-train", "--dataset", "digits", "--train-subset", "300", "--model-kw", "hidden=[16]"]
    args += ["--shards", "2", "--slices", "2", "--epochs", str(epochs), "--lr", "0.1", "--executor", "serial"]
    assert main([*args, "--out", str(out), "--no-progress"]) == 0
    key = out.parent / "owner.pem"
    assert main(["keygen", "--out", str(key)]) == 0
    return out, key


def exact_audit(folder, capsys) -> tuple[int, str]:
    """``unlearnkit exact-audit --model FOLDER``: its exit code and what it printed."""
    from unlearnkit.cli import main

    capsys.readouterr()
    rc = main(["exact-audit", "--model", str(folder)])
    return rc, capsys.readouterr().out
