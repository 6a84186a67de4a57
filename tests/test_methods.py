"""Every core method: it forgets (forget accuracy falls on class-wise forgetting), keeps the retain set,
never modifies the model it is given, and is reproducible with a seed."""

import copy

import pytest
import torch

import unlearnkit as uk
from unlearnkit.errors import ConfigError, ModelError
from unlearnkit.methods.base import UnlearnRequest
from unlearnkit.methods.salun import saliency_masks
from unlearnkit.metrics import accuracy, predict_outputs

from .conftest import state_equal

# settings small enough for the test budget yet strong enough to show each method's effect on digits
FORGETTING = {
    "ga": {"epochs": 2, "lr": 0.01},
    "rl": {"epochs": 3, "lr": 0.02},
    "salun": {"epochs": 3, "lr": 0.02},
    "ft": {"epochs": 6, "lr": 0.1},
    "l1-sparse": {"epochs": 6, "lr": 0.1, "alpha": 5e-4},
    "retrain": {"epochs": 8, "lr": 0.05, "schedule": "cosine", "batch_size": 64},
}


def _acc(model, data):
    return accuracy(predict_outputs(model, data), data.y)


@pytest.mark.parametrize("method", sorted(FORGETTING))
def test_method_forgets_class_and_keeps_retain(method, original, digits, class_split):
    forget, retain = class_split.forget(digits.train), class_split.retain(digits.train)
    before = copy.deepcopy(original)
    res = uk.unlearn(original, forget, retain, method, progress=False, **FORGETTING[method])
    assert state_equal(original, before), "the original model was modified"
    assert res.model is not original and res.method == method and res.seconds > 0
    f_before, f_after = _acc(original, forget), _acc(res.model, forget)
    assert f_before > 95
    # fine-tuning forgets only through catastrophic forgetting: ask less of it than of the other methods
    min_drop = 25 if method in ("ft", "l1-sparse") else 40
    assert f_after < f_before - min_drop, f"{method}: forget accuracy {f_before:.1f} -> {f_after:.1f}"
    assert _acc(res.model, retain) > 85, f"{method}: retain accuracy collapsed"


def test_methods_are_reproducible_with_a_seed(original, digits, random_split):
    forget, retain = random_split.forget(digits.train), random_split.retain(digits.train)
    a = uk.unlearn(original, forget, retain, "salun", epochs=1, seed=7, progress=False)
    b = uk.unlearn(original, forget, retain, "salun", epochs=1, seed=7, progress=False)
    c = uk.unlearn(original, forget, retain, "salun", epochs=1, seed=8, progress=False)
    assert state_equal(a.model, b.model)
    assert not state_equal(a.model, c.model)
    ev = [uk.evaluate(m.model, forget=forget, retain=retain, test=digits.test).metrics for m in (a, b)]
    assert ev[0] == ev[1]


def test_salun_keeps_non_salient_weights_bit_identical(original, digits, random_split):
    forget, retain = random_split.forget(digits.train), random_split.retain(digits.train)
    request = UnlearnRequest(original=original, forget=forget, retain=retain, num_classes=10)
    masks = saliency_masks(copy.deepcopy(original), request, 0.5, 128, 0)
    kept = sum(int(m.sum()) for m in masks.values())
    total = sum(m.numel() for m in masks.values())
    assert abs(kept / total - 0.5) < 0.01
    res = uk.unlearn(original, forget, retain, "salun", epochs=2, lr=0.05, weight_decay=5e-3, progress=False)
    new = dict(res.model.named_parameters())
    moved = 0
    for name, p in original.named_parameters():
        frozen = ~masks[name]
        assert torch.equal(new[name].detach()[frozen], p.detach()[frozen]), f"{name} moved outside the mask"
        moved += int((new[name].detach()[masks[name]] != p.detach()[masks[name]]).sum())
    assert moved > 0.5 * kept  # the salient half did train


def test_salun_mask_ratio_one_is_plain_rl(original, digits, random_split):
    forget, retain = random_split.forget(digits.train), random_split.retain(digits.train)
    a = uk.unlearn(original, forget, retain, "salun", mask_ratio=1.0, lr=0.01, epochs=1, progress=False)
    b = uk.unlearn(original, forget, retain, "rl", lr=0.01, epochs=1, progress=False)
    for (n, p), (_, q) in zip(a.model.named_parameters(), b.model.named_parameters()):
        assert torch.allclose(p, q, atol=1e-6), n


def test_unknown_method_and_hparams_list_the_choices(original, digits, random_split):
    f, r = random_split.forget(digits.train), random_split.retain(digits.train)
    with pytest.raises(ConfigError, match="choose one of .*salun"):
        uk.unlearn(original, f, r, "magic")
    with pytest.raises(ConfigError, match="valid: .*lr"):
        uk.unlearn(original, f, r, "ft", learning_rate=0.1)
    with pytest.raises(ConfigError, match="out of range"):
        uk.unlearn(original, f, r, "ft", lr=-1.0)
    with pytest.raises(ConfigError, match="out of range"):
        uk.unlearn(original, f, r, "salun", mask_ratio=1.5)
    with pytest.raises(ConfigError, match="out of range"):
        uk.unlearn(original, f, r, "ga", epochs=0)


def test_user_module_and_dataloader_inputs(digits, random_split):
    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.body = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))

        def forward(self, x):
            return self.body(x)

    from torch.utils.data import DataLoader, TensorDataset

    f, r = random_split.forget(digits.train), random_split.retain(digits.train)
    model = Tiny()
    res = uk.unlearn(
        model,
        DataLoader(TensorDataset(f.x, f.y), batch_size=32),
        TensorDataset(r.x, r.y),
        "retrain",
        epochs=2,
        lr=0.05,
        progress=False,
    )
    assert _acc(res.model, r) > 50
    assert not state_equal(res.model, model)


def test_retrain_needs_resettable_modules(digits, random_split):
    class Raw(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(64, 10))

        def forward(self, x):
            return x.flatten(1) @ self.w

    f, r = random_split.forget(digits.train), random_split.retain(digits.train)
    with pytest.raises(ModelError, match="reset_parameters"):
        uk.unlearn(Raw(), f, r, "retrain", epochs=1, progress=False)


def test_wrong_task_is_rejected(original, digits, random_split):
    f, r = random_split.forget(digits.train), random_split.retain(digits.train)
    with pytest.raises(ConfigError, match="supports"):
        uk.unlearn(original, f, (r.x, r.y.float()), "salun", task="regression")
