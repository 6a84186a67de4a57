"""The method contract (:mod:`unlearnkit.contract`) on every registered method; the lists are read from the
registry when the tests are collected, so a newly registered method is checked with no edit here."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from unlearnkit.contract import CHECKS, ContractError, check_method, family_methods
from unlearnkit.errors import ConfigError
from unlearnkit.methods import make_method


@pytest.mark.parametrize("name", family_methods("classifier"))
def test_classifier_method_keeps_the_contract(name):
    report = check_method(name, "classifier")
    assert tuple(report) == CHECKS


@pytest.mark.parametrize("name", family_methods("lm"))
def test_lm_method_keeps_the_contract(name):
    assert tuple(check_method(name, "lm")) == CHECKS


@pytest.mark.slow
@pytest.mark.parametrize("name", family_methods("diffusion"))
def test_diffusion_method_keeps_the_contract(name):
    assert tuple(check_method(name, "diffusion")) == CHECKS


def test_methods_are_frozen_and_replace_makes_variants():
    salun = make_method("salun")
    with pytest.raises(dataclasses.FrozenInstanceError):
        salun.lr = 0.1
    faster = dataclasses.replace(salun, lr=0.1)
    assert (salun.lr, faster.lr, faster.mask_ratio) == (0.013, 0.1, 0.5)
    with pytest.raises(ConfigError, match="out of range"):
        dataclasses.replace(salun, mask_ratio=2.0)


def test_check_method_refuses_a_family_mismatch_and_unknown_names():
    with pytest.raises(ConfigError, match="family='lm'"):
        check_method(make_method("ga", "lm"), "classifier")
    with pytest.raises(ConfigError, match="unknown method"):
        check_method("no-such-method")
    with pytest.raises(ConfigError, match="family"):
        check_method("ga", "audio")


def test_the_budget_check_sees_a_budget_that_is_not_applied(monkeypatch):
    """With the budget no longer applied by the context, a ceiling is exceeded (small batches, so that part of a
    pass fits under it) and a minimum of steps is missed; the check says which."""
    from unlearnkit.methods import context

    monkeypatch.setattr(context, "stretch", lambda phases, epochs, budget, train_size=None: (list(phases), 1))
    with pytest.raises(ContractError, match=r"\[budgeted\]: engine run 1 processed 120 examples under a ceiling"):
        check_method("ga", hparams={"batch_size": 4})
    with pytest.raises(ContractError, match=r"\[budgeted\]: engine run 1 took 10 optimiser steps under a minimum"):
        check_method("ft")


def test_global_random_state_is_restored():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    check_method("ga")
    assert torch.equal(torch.rand(3), expected)
