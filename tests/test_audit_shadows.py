"""Shadow models of the audits: independent initialisation, forget sets of the request's own kind, and
U-LiRA's likelihood ratio re-derived by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import unlearnkit as uk
from unlearnkit.audit import train_shadow_pairs, ulira_scores
from unlearnkit.audit.common import fresh_model, registry_factory
from unlearnkit.engine import Recipe

RECIPE = Recipe(epochs=6, lr=0.05, batch_size=64)


@pytest.fixture(scope="module")
def bundle() -> uk.DatasetBundle:
    return uk.load_dataset("digits")


@pytest.fixture(scope="module")
def factory(bundle):
    return registry_factory("mlp", bundle.input_shape, bundle.num_classes, hidden=(32,))


def _flat(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_every_shadow_starts_from_its_own_initialisation(bundle, factory):
    shadows = train_shadow_pairs(
        bundle.train, model_factory=factory, recipe=RECIPE, n_pairs=3, n_targets=40, progress=False
    )
    assert len(set(shadows.seeds)) == 3
    inits = [_flat(fresh_model(shadows.factory, s)) for s in shadows.seeds]
    assert not torch.equal(inits[0], inits[1]) and not torch.equal(inits[1], inits[2])
    assert not torch.equal(_flat(fresh_model(factory, shadows.seeds[0] + 1)), inits[0])  # its retrain differs too
    assert torch.equal(_flat(fresh_model(factory, shadows.seeds[0])), inits[0])  # and each is reproducible
    assert "random forget sets" in shadows.scheme


def test_shadow_forget_sets_follow_the_request_kind(bundle, factory):
    cls = train_shadow_pairs(
        bundle.train, model_factory=factory, recipe=RECIPE, n_pairs=3, forget_spec="class:3", progress=False
    )
    labels = bundle.train.y.numpy()
    assert np.array_equal(cls.targets, np.flatnonzero(labels == 3)) and "class:3" in cls.scheme
    for k in range(3):  # each shadow forgets the class-3 examples it trained on, and trains on no other ones
        forgot = cls.forget_indices(k)
        assert np.all(labels[forgot] == 3) and not np.any(labels[cls.retain_sets[k]] == 3)
    rnd = train_shadow_pairs(
        bundle.train, model_factory=factory, recipe=RECIPE, n_pairs=3, forget_spec="random:60", progress=False
    )
    assert rnd.targets.size == 60 and rnd.forget_masks.sum(1).tolist() == [30, 30, 30]
    # each shadow forgets the same fraction of its own training data as the request does of the full set
    frac = 30 / (30 + len(rnd.retain_sets[0]))
    assert frac == pytest.approx(60 / len(bundle.train), rel=0.02)


def test_ulira_likelihood_ratio_matches_a_hand_derivation():
    rng = np.random.default_rng(3)
    pairs, targets = 5, 4
    phi_in = rng.normal(2.0, 0.5, (pairs, targets))
    phi_out = rng.normal(0.0, 1.5, (pairs, targets))
    mask = np.ones((pairs, targets), dtype=bool)
    mask[0, 1] = mask[3, 2] = False
    pos, neg = ulira_scores(phi_in, phi_out, mask)

    # pooled variance per side: residuals about each target's mean over the pairs that forgot it
    def pooled(phi):
        res = [phi[k, j] - phi[mask[:, j], j].mean() for j in range(targets) for k in range(pairs) if mask[k, j]]
        return sum(r * r for r in res) / (mask.sum() - targets)

    v_in, v_out = pooled(phi_in), pooled(phi_out)
    assert v_in != pytest.approx(1.0) and v_out != pytest.approx(1.0)

    def llr(x, k, j):
        others = [i for i in range(pairs) if mask[i, j] and i != k]
        mu_i, mu_o = phi_in[others, j].mean(), phi_out[others, j].mean()
        return (-0.5 * (np.log(2 * np.pi * v_in) + (x - mu_i) ** 2 / v_in)) - (
            -0.5 * (np.log(2 * np.pi * v_out) + (x - mu_o) ** 2 / v_out)
        )

    want_pos = [llr(phi_in[k, j], k, j) for k in range(pairs) for j in range(targets) if mask[k, j]]
    want_neg = [llr(phi_out[k, j], k, j) for k in range(pairs) for j in range(targets) if mask[k, j]]
    assert np.allclose(pos, want_pos) and np.allclose(neg, want_neg)


def test_tuning_validation_is_held_out_of_the_training_data_and_bad_tuning_is_flagged(bundle):
    from unlearnkit.audit.tune import tuning_warnings, validation_split

    rest, val = validation_split(bundle.train, seed=0)
    assert len(rest) + len(val) == len(bundle.train) and len(val) >= 50
    seen = {tuple(x.flatten().tolist()) for x in rest.x}
    assert not any(tuple(x.flatten().tolist()) in seen for x in val.x[:50])  # disjoint examples
    assert tuning_warnings("salun", 1.91, 1.5, 1.2) == []
    worse = tuning_warnings("salun", 1.91, 1.5, 2.14)
    assert len(worse) == 2 and "doing nothing" in worse[0] and "2.14" in worse[0]


def test_relearning_summaries_leave_step_zero_out():
    from unlearnkit.audit.relearn import RelearnCurve

    hidden = RelearnCurve("ga", [10.0, 60.0, 90.0, 95.0])
    retrain = RelearnCurve("retrain", [96.0, 96.0, 96.0, 97.0])
    assert hidden.area == pytest.approx((60 + 90 + 95) / 3)
    assert hidden.accuracy_at(2) == 90.0 and hidden.accuracy_at(99) == 95.0
    assert hidden.area_between(retrain) == pytest.approx(((60 - 96) + (90 - 96) + (95 - 97)) / 3)
    assert hidden.area_between(retrain, k=1) == pytest.approx(60 - 96)
    assert retrain.area_between(retrain) == 0.0


def test_relearning_k_default_depends_on_the_request_kind():
    from unlearnkit.audit.relearn import CLASSWISE_K, resolve_k
    from unlearnkit.errors import ConfigError

    y = np.repeat(np.arange(4), 10)
    for spec, kind, k in (("class:2", "class-wise", CLASSWISE_K), ("random:8", "examples", 10)):
        split = uk.parse_forget(spec, y, seed=0)
        got = resolve_k(None, 10, y[split.forget_idx], y[split.retain_idx])
        assert (got.kind, got.k) == (kind, k) and kind.split("-")[0] in got.reason
    two_classes = np.flatnonzero(y >= 2)
    assert resolve_k(None, 10, y[two_classes], y[y < 2]).kind == "class-wise"
    # a whole class plus one example of a class the retain set still has: not class-wise
    mixed = np.r_[np.flatnonzero(y == 2), 0]
    assert resolve_k(None, 10, y[mixed], np.delete(y, mixed)).k == 10
    assert resolve_k(None, 1, y[y == 2], y[y != 2]).k == 1  # never past the last step
    given = resolve_k(5, 10, y[y == 2], y[y != 2])
    assert (given.k, given.kind) == (5, "class-wise") and "--relearn-k" in given.reason
    for bad, fix in ((0, "at least 1"), (11, "raise --relearn-steps")):
        with pytest.raises(ConfigError, match=fix):
            resolve_k(bad, 10, y[y == 2], y[y != 2])
