"""The method contract: what every registered method promises, checked on a tiny problem by :func:`check_method`.

As scikit-learn's estimator checks (``sklearn.utils.estimator_checks.check_estimator``, Buitinck et al., "API
design for machine learning software: experiences from the scikit-learn project", 2013) check any estimator
against the API rules, :func:`check_method` checks any :class:`~unlearnkit.methods.base.Method`:

* **frozen** — its hyper-parameters are a frozen dataclass: a run cannot change them;
* **validated** — every declared range or choice is enforced when the method is built: a value outside it (and
  a non-finite float) raises :class:`~unlearnkit.errors.ConfigError`, as does an unknown hyper-parameter name;
* **recipe** — the training knobs it declares are spelled as :class:`~unlearnkit.engine.Recipe`'s fields (no
  ``learning_rate`` beside ``lr``) and make a valid recipe;
* **original untouched** — ``request.original`` is bit-identical after the run, and so are the method's
  hyper-parameters;
* **outcome** — ``run`` returns an :class:`~unlearnkit.methods.context.Outcome` holding a model whose report and
  chosen knobs are JSON-serialisable (strict JSON: no NaN or infinity);
* **seeded** — two runs with the same seed give bit-identical weights, whatever state the global random
  generators (``random``, NumPy, torch) were left in: a method must draw from generators seeded by its ``seed``;
* **budgeted** — under a tight budget (:mod:`unlearnkit.budget`, rule 3) no engine run made through the context
  processes more than the ceiling (or, when one batch is already over it, one batch per phase and epoch), and
  under a minimum of optimiser steps (rule 2) every such run takes at least that many, unless a hook stopped it;
* **quiet** — with ``progress=False`` nothing is written to stdout or stderr.

The tiny problems (:func:`tiny_problem`) are a small MLP on 144 Gaussian points for classifier methods, an
untrained two-layer causal LM on a synthetic QA benchmark for ``lm`` methods, and an untrained miniature
text-to-image model on 60 digits for ``diffusion`` methods. A method class may name smaller hyper-parameters for
these runs in its ``contract_hparams`` class variable (e.g. ``auto``'s search time); nothing else is special-cased.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import importlib
import io
import json
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from torch import nn

from .budget import Budget, Resized, count_examples
from .data.tensors import TensorData
from .engine import Recipe
from .errors import ConfigError, ContractError
from .methods import Method, Outcome, RunContext, available_methods, get_method_class, make_method
from .methods.base import UnlearnRequest

#: what :func:`check_method` checks, in order (the keys of its report)
CHECKS = ("frozen", "validated", "recipe", "original_untouched", "outcome", "seeded", "budgeted", "quiet")
#: second spellings of :class:`~unlearnkit.engine.Recipe`'s knobs that a method must not declare
RECIPE_ALIASES = frozenset(
    {"learning_rate", "num_epochs", "n_epochs", "n_steps", "wd", "bs", "lr_schedule", "scheduler", "optim", "clip"}
)
FAMILIES = ("classifier", "lm", "diffusion")
#: the minimum of optimiser steps the budget check asks for (rule 2 of :mod:`unlearnkit.budget`)
MIN_STEPS = 12


@dataclass
class Problem:
    """A tiny unlearning problem: the original model and how to build a request for it.

    ``make_request(original, progress=..., budget=...)`` returns a fresh request each time (so a run cannot leak
    state into the next); ``task`` is the request's task."""

    model: nn.Module
    make_request: Callable[..., UnlearnRequest]
    task: str


class _TinyNet(nn.Module):
    """An MLP with a ``features`` extractor, activation modules and a final ``nn.Linear`` ``classifier`` (what
    every classifier method may ask of a model: LAF reads ``features``, Blindspot taps activations, BE widens the
    last linear layer)."""

    def __init__(self, inputs: int, outputs: int, hidden: int = 16) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Linear(inputs, hidden), nn.ReLU())
        self.classifier = nn.Linear(hidden, outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def _classifier_problem(task: str) -> Problem:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(144, 8, generator=gen)
    if task == "classification":
        y: torch.Tensor = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()  # 3 classes
        outputs, num_classes = 3, 3
    else:
        y = x[:, :2].sum(dim=1, keepdim=True)
        outputs, num_classes = 1, None
    torch.manual_seed(0)
    model = _TinyNet(8, outputs)
    forget, retain = TensorData(x[:24], y[:24]), TensorData(x[24:], y[24:])

    def make_request(original: nn.Module, *, progress: bool = False, budget: Budget | None = None) -> UnlearnRequest:
        return UnlearnRequest(
            original, forget, retain, task=task, num_classes=num_classes, progress=progress, budget=budget
        )

    return Problem(model, make_request, task)


def _lm_problem() -> Problem:
    from .lm import TinyLMConfig, build_tiny_lm, lm_request, make_benchmark, train_tokenizer

    bench = make_benchmark(n_people=4, n_holdout=1, seed=0)
    split = bench.split("forget10")
    corpus = [t.get("text") or f"{t['prompt']} {t['target']}" for t in split.train_texts]
    tok = train_tokenizer(corpus, vocab_size=300)
    model = build_tiny_lm(TinyLMConfig(d_model=16, n_layers=2, n_heads=2, max_length=128), tok, seed=0)

    def make_request(original: nn.Module, *, progress: bool = False, budget: Budget | None = None) -> UnlearnRequest:
        request = lm_request(original, tok, split, device="cpu", progress=progress, max_length=128)
        request.budget = budget
        return request

    return Problem(model, make_request, "lm")


def _diffusion_problem() -> Problem:
    from .diffusion import DiffusionTrainConfig, concept_request, load_concept_data, train_diffusion

    data = load_concept_data("digits", train_subset=60)
    torch.manual_seed(0)
    cfg = DiffusionTrainConfig(steps=1, batch_size=8, base=8, text_dim=16, lr=1e-3)
    model = train_diffusion(data, cfg, device="cpu", progress=False)

    def make_request(original: nn.Module, *, progress: bool = False, budget: Budget | None = None) -> UnlearnRequest:
        request = concept_request(original, data, "object:three", device="cpu", progress=progress, seed=0)
        request.budget = budget
        return request

    return Problem(model, make_request, "generation")


_PROBLEMS: dict[tuple[str, str], Problem] = {}


def tiny_problem(family: str, task: str | None = None) -> Problem:
    """The tiny problem of ``family`` (built once per process; ``task`` picks classification or regression for
    classifier methods)."""
    if family not in FAMILIES:
        raise ConfigError(f"unknown method family {family!r}; choose one of {', '.join(FAMILIES)}")
    task = task or {"classifier": "classification", "lm": "lm", "diffusion": "generation"}[family]
    key = (family, task)
    if key not in _PROBLEMS:
        if family == "classifier":
            _PROBLEMS[key] = _classifier_problem(task)
        elif family == "lm":
            _PROBLEMS[key] = _lm_problem()
        else:
            _PROBLEMS[key] = _diffusion_problem()
    return _PROBLEMS[key]


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(a[k].shape == b[k].shape and torch.equal(a[k], b[k]) for k in a)


def _differing(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> list[str]:
    return sorted(k for k in a.keys() | b.keys() if k not in a or k not in b or not torch.equal(a[k], b[k]))


def _scramble_global_rngs(salt: int) -> None:
    """Leave the global generators in a state that depends on ``salt`` (a method must not depend on them)."""
    random.seed(1000 + salt)
    np.random.seed(1000 + salt)
    torch.manual_seed(1000 + salt)


def _invalid_values(meta: dict[str, Any], default: Any) -> list[Any]:
    """Values the field's declared range or choices refuse."""
    out: list[Any] = []
    if meta.get("choices") is not None:
        out.append("not-a-choice")
    low, high = meta.get("low"), meta.get("high")
    step = 1 if isinstance(default, int) and not isinstance(default, bool) else 0.5
    if low is not None:
        out.append(low if meta.get("low_open") else low - step)
    if high is not None:
        out.append(high + step)
    if isinstance(default, float):
        out.append(float("nan"))
    return out


class _Checker:
    def __init__(self, cls: type[Method], family: str, hparams: dict[str, Any], problem: Problem | None) -> None:
        self.cls, self.family, self.hparams = cls, family, hparams
        self.label = f"{family} method {cls.name or cls.__name__!r}"
        if problem is None:
            task = None
            if family == "classifier":
                task = "classification" if "classification" in cls.tasks else cls.tasks[0]
            problem = tiny_problem(family, task)
        self.problem = problem

    def fail(self, rule: str, what: str) -> ContractError:
        return ContractError(f"{self.label} breaks the contract [{rule}]: {what}")

    def build(self) -> Method:
        return self.cls(**self.hparams)

    # ---- the checks ------------------------------------------------------------------------------------
    def frozen(self) -> dict[str, Any]:
        params = getattr(self.cls, "__dataclass_params__", None)
        if not dataclasses.is_dataclass(self.cls) or params is None or not params.frozen:
            raise self.fail("frozen", "declare it with @dataclass(kw_only=True, frozen=True)")
        method = self.build()
        try:
            method.seed = method.seed + 1  # type: ignore[misc]
        except dataclasses.FrozenInstanceError:
            return {"fields": len(dataclasses.fields(method))}
        raise self.fail("frozen", "setting a hyper-parameter on a built method did not raise FrozenInstanceError")

    def validated(self) -> dict[str, Any]:
        refused = 0
        for f in dataclasses.fields(self.cls):
            if not f.metadata:
                continue
            default = f.default if f.default is not dataclasses.MISSING else None
            for bad in _invalid_values(dict(f.metadata), default):
                try:
                    self.cls(**{**self.hparams, f.name: bad})
                except ConfigError:
                    refused += 1
                    continue
                except Exception as err:  # noqa: BLE001 - any other exception is the finding
                    raise self.fail(
                        "validated", f"{f.name}={bad!r} raised {type(err).__name__} ({err}), not ConfigError"
                    ) from err
                raise self.fail("validated", f"{f.name}={bad!r} is outside its declared range and was accepted")
        if (
            self.cls.name in available_methods(domain=self.cls.domain)
            and get_method_class(self.cls.name, self.cls.domain) is self.cls
        ):
            try:
                make_method(self.cls.name, self.cls.domain, no_such_hyper_parameter=1)
            except ConfigError:
                refused += 1
            else:
                raise self.fail("validated", "make_method accepted an unknown hyper-parameter")
        return {"refused": refused}

    def recipe(self) -> dict[str, Any]:
        names = {f.name for f in dataclasses.fields(self.cls)}
        aliases = sorted(names & RECIPE_ALIASES)
        if aliases:
            raise self.fail("recipe", f"{aliases} spell a training knob differently from engine.Recipe's fields")
        method = self.build()
        knobs = {f.name: getattr(method, f.name) for f in dataclasses.fields(Recipe) if f.name in names}
        try:
            Recipe(**{k: v for k, v in knobs.items() if v is not None})
        except ConfigError as err:
            raise self.fail("recipe", f"its recipe knobs {knobs} make no valid Recipe: {err}") from err
        return {"knobs": sorted(knobs)}

    def run(self, method: Method, *, budget: Budget | None = None, salt: int = 0) -> tuple[Outcome, RunContext, str]:
        original = self.problem.model
        request = self.problem.make_request(original, progress=False, budget=budget)
        method.check(request)
        work = copy.deepcopy(original)
        ctx = RunContext()
        _scramble_global_rngs(salt)
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            outcome = method.run(work, request, ctx)
        return outcome, ctx, out.getvalue() + err.getvalue()

    def execute(self) -> dict[str, Any]:
        report: dict[str, Any] = {"frozen": self.frozen(), "validated": self.validated(), "recipe": self.recipe()}
        method = self.build()
        given = copy.deepcopy(method.hparams())
        before = _state(self.problem.model)
        saved = torch.random.get_rng_state(), np.random.get_state(), random.getstate()
        try:
            first, ctx, printed = self.run(method, salt=1)
            after = _state(self.problem.model)
            if not _same(before, after):
                changed = _differing(before, after)[:5]
                raise self.fail("original_untouched", f"the run modified request.original ({', '.join(changed)})")
            if method.hparams() != given:
                raise self.fail("original_untouched", f"the run changed the hyper-parameters to {method.hparams()}")
            report["original_untouched"] = {"tensors": len(before)}
            report["outcome"] = self._outcome(first)
            second, _, _ = self.run(method, salt=2)
            a, b = _state(first.model), _state(second.model)
            if not _same(a, b):
                raise self.fail(
                    "seeded",
                    "two runs with the same seed gave different weights "
                    f"({', '.join(_differing(a, b)[:5])}); draw every random number from a generator seeded by "
                    "the method's seed",
                )
            report["seeded"] = {"tensors": len(a)}
            report["budgeted"] = self._budget(method) if method.budgeted else {"skipped": "not budgeted"}
            if printed:
                raise self.fail("quiet", f"with progress=False the run printed {printed[:200]!r}")
            report["quiet"] = {"fits": len(ctx.fits)}
        finally:
            if not _same(before, _state(self.problem.model)):  # a broken method must not spoil the next check
                self.problem.model.load_state_dict(before)
            torch.random.set_rng_state(saved[0])
            np.random.set_state(saved[1])
            random.setstate(saved[2])
        return report

    def _outcome(self, outcome: Any) -> dict[str, Any]:
        if not isinstance(outcome, Outcome):
            raise self.fail("outcome", f"run returned {type(outcome).__name__}, not an Outcome")
        if not isinstance(outcome.model, nn.Module):
            raise self.fail("outcome", f"the outcome's model is a {type(outcome.model).__name__}, not an nn.Module")
        for what, value in (("report", outcome.report), ("hparams", outcome.hparams)):
            try:
                json.dumps(value, allow_nan=False)
            except (TypeError, ValueError) as err:
                raise self.fail("outcome", f"the outcome's {what} is not JSON-serialisable: {err}") from err
        unknown = sorted(set(outcome.hparams) - {f.name for f in dataclasses.fields(self.cls)})
        if unknown:
            raise self.fail("outcome", f"the outcome's hparams name no hyper-parameter of the method: {unknown}")
        return {"report_keys": sorted(outcome.report)}

    def _budget(self, method: Method) -> dict[str, Any]:
        """Rule 3 of :mod:`unlearnkit.budget` (a ceiling) and rule 2 (a minimum of optimiser steps) hold for every
        engine run the method makes through its context."""
        tight = Budget(mode="scaled", original_epochs=1, min_steps=0, max_fraction=0.05)
        _, ctx, _ = self.run(method, budget=tight, salt=3)
        request = self.problem.make_request(self.problem.model, budget=tight)
        ceiling = tight.max_fraction * (len(request.forget) + len(request.retain))
        for i, fit in enumerate(ctx.fits):
            least = count_examples(
                [replace(ph, batches=Resized(_base(ph.batches), 1e-9)) for ph in fit.phases], fit.epochs
            )
            if fit.examples > math.ceil(max(ceiling, least)):
                raise self.fail(
                    "budgeted",
                    f"engine run {i + 1} processed {fit.examples} examples under a ceiling of {ceiling:g} "
                    f"(one batch per phase and epoch: {least})",
                )
        floor = Budget(mode="scaled", min_steps=MIN_STEPS)
        _, ctx_min, _ = self.run(method, budget=floor, salt=4)
        for i, fit in enumerate(ctx_min.fits):
            if fit.log.steps < MIN_STEPS and not fit.log.stopped:
                raise self.fail(
                    "budgeted",
                    f"engine run {i + 1} took {fit.log.steps} optimiser steps under a minimum of {MIN_STEPS}",
                )
        return {"fits": len(ctx.fits), "ceiling": ceiling, "min_steps": MIN_STEPS}


def _base(batches: Any) -> Any:
    return batches.batches if isinstance(batches, Resized) else batches


def family_methods(family: str) -> list[str]:
    """The registered methods of ``family``, after importing the package that registers that family's own."""
    if family not in FAMILIES:
        raise ConfigError(f"unknown method family {family!r}; choose one of {', '.join(FAMILIES)}")
    if family != "classifier":
        importlib.import_module(f"unlearnkit.{family}")
    return available_methods(domain=family)


def check_method(
    method: str | type[Method] | Method,
    family: str = "classifier",
    *,
    hparams: dict[str, Any] | None = None,
    problem: Problem | None = None,
) -> dict[str, Any]:
    """Check that ``method`` (a registered name of ``family``, a :class:`Method` class or instance) keeps the
    contract of the module docstring on a tiny problem of its family (or ``problem``); raises
    :class:`ContractError` naming the first broken rule, else returns what each check saw (keys: :data:`CHECKS`).

    ``hparams`` replace the method's defaults for the runs (default: the class's ``contract_hparams``; an instance
    passes its own). Global random states are restored afterwards."""
    if family not in FAMILIES:
        raise ConfigError(f"unknown method family {family!r}; choose one of {', '.join(FAMILIES)}")
    if isinstance(method, str):
        family_methods(family)  # the family's own methods are registered on import
        cls = get_method_class(method, family)
    elif isinstance(method, Method):
        cls = type(method)
        hparams = {f.name: getattr(method, f.name) for f in dataclasses.fields(method)} if hparams is None else hparams
    elif isinstance(method, type) and issubclass(method, Method):
        cls = method
    else:
        raise ConfigError(f"method must be a registered name, a Method class or instance; got {method!r}")
    if cls.domain != family:
        raise ConfigError(
            f"method {cls.name!r} is a {cls.domain} method; call check_method(..., family={cls.domain!r})"
        )
    chosen = dict(getattr(cls, "contract_hparams", {}) if hparams is None else hparams)
    return _Checker(cls, family, chosen, problem).execute()
