"""A method defined and registered here gets the whole contract with no other edit, and broken methods are
caught by :func:`unlearnkit.contract.check_method` with the rule they break."""

from __future__ import annotations

import sys
from dataclasses import dataclass

import pytest
import torch
from torch import nn

from unlearnkit.contract import ContractError, check_method, family_methods
from unlearnkit.engine import Phase
from unlearnkit.losses import negated
from unlearnkit.methods import Method, Outcome, RunContext, UnlearnRequest, hp, register
from unlearnkit.methods import base as methods_base


@dataclass(kw_only=True, frozen=True)
class ToyAscent(Method):
    """Toy method of the tests: a few steps of gradient ascent on D_f, then seeded noise on every weight
    (reference: gradient ascent, Thudi et al., EuroS&P 2022; this file is its code)."""

    name = "toy-ascent"
    tasks = ("classification", "regression")
    reference_epochs = 1

    epochs: int = hp(2, low=1)
    lr: float = hp(0.01, low=0, low_open=True)
    batch_size: int = hp(8, low=1)
    noise: float = hp(1e-3, low=0, doc="standard deviation of the seeded noise")

    def run(self, model: nn.Module, request: UnlearnRequest, ctx: RunContext) -> Outcome:
        ctx.fit(self, model, Phase("forget", self.batches(request.forget), negated(request.task_loss)), request)
        gen = torch.Generator().manual_seed(self.seed)
        with torch.no_grad():
            for p in model.parameters():
                p.add_(self.noise * torch.randn(p.shape, generator=gen))
        return Outcome(model, report={"steps": ctx.fits[-1].log.steps})


@pytest.fixture
def toy_registered():
    register(ToyAscent)
    yield
    methods_base._METHODS.pop((ToyAscent.domain, ToyAscent.name), None)


def test_a_registered_toy_method_gets_the_contract(toy_registered):
    assert "toy-ascent" in family_methods("classifier")
    report = check_method("toy-ascent")
    assert report["budgeted"]["fits"] == 1 and report["outcome"]["report_keys"] == ["steps"]


@dataclass(kw_only=True, frozen=True)
class _Tampers(ToyAscent):
    """Breaks the contract: changes the original model it was asked to keep."""

    def run(self, model: nn.Module, request: UnlearnRequest, ctx: RunContext) -> Outcome:
        with torch.no_grad():
            next(request.original.parameters()).add_(1.0)
        return super().run(model, request, ctx)


@dataclass(kw_only=True, frozen=True)
class _IgnoresSeed(ToyAscent):
    """Breaks the contract: before training, it perturbs the weights from the global generator, not its seed."""

    def run(self, model: nn.Module, request: UnlearnRequest, ctx: RunContext) -> Outcome:
        with torch.no_grad():
            for p in model.parameters():
                p.add_(self.noise * torch.randn(p.shape))
        return super().run(model, request, ctx)


@dataclass(kw_only=True, frozen=True)
class _KeepsRunState(ToyAscent):
    """Breaks the contract: writes what it found onto its own hyper-parameters."""

    def run(self, model: nn.Module, request: UnlearnRequest, ctx: RunContext) -> Outcome:
        out = super().run(model, request, ctx)
        object.__setattr__(self, "lr", 0.5)
        return out


@dataclass(kw_only=True, frozen=True)
class _Unvalidated(ToyAscent):
    """Breaks the contract: skips the base class's range checks."""

    def __post_init__(self) -> None:
        pass


@dataclass(kw_only=True, frozen=True)
class _SecondSpelling(ToyAscent):
    """Breaks the contract: a second name for the learning rate."""

    learning_rate: float = hp(0.01, low=0, low_open=True)


@dataclass(kw_only=True, frozen=True)
class _Loud(ToyAscent):
    """Breaks the contract: prints although progress is off."""

    def run(self, model: nn.Module, request: UnlearnRequest, ctx: RunContext) -> Outcome:
        print("step done", file=sys.stderr)
        return super().run(model, request, ctx)


@dataclass(kw_only=True, frozen=True)
class _TensorReport(ToyAscent):
    """Breaks the contract: its report holds a tensor, not JSON."""

    def run(self, model: nn.Module, request: UnlearnRequest, ctx: RunContext) -> Outcome:
        out = super().run(model, request, ctx)
        return Outcome(out.model, report={"weights": next(out.model.parameters()).detach()})


@pytest.mark.parametrize(
    ("broken", "rule"),
    [
        (_Tampers, "original_untouched"),
        (_IgnoresSeed, "seeded"),
        (_KeepsRunState, "original_untouched"),
        (_Unvalidated, "validated"),
        (_SecondSpelling, "recipe"),
        (_Loud, "quiet"),
        (_TensorReport, "outcome"),
    ],
)
def test_a_broken_method_is_caught(broken, rule):
    with pytest.raises(ContractError, match=rf"\[{rule}\]"):
        check_method(broken)
    check_method(ToyAscent)  # the tiny problem is intact afterwards
