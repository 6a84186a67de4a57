"""NegGrad+ against the authors' ``train_negrad``, its budget accounting, and auto's random-forgetting grid."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import unlearnkit as uk
from unlearnkit.budget import count_examples
from unlearnkit.data.tensors import Batches, PairedBatches, TensorData
from unlearnkit.methods import auto as auto_module
from unlearnkit.methods.base import Method, UnlearnRequest
from unlearnkit.methods.context import RunContext
from unlearnkit.metrics import accuracy, predict_outputs


def _tiny() -> tuple[nn.Module, TensorData, TensorData]:
    g = torch.Generator().manual_seed(0)
    x_r, y_r = torch.randn(20, 4, generator=g), torch.randint(0, 5, (20,), generator=g)
    x_f, y_f = torch.randn(6, 4, generator=g), torch.randint(0, 5, (6,), generator=g)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 5))
    return model, TensorData(x_f, y_f), TensorData(x_r, y_r)


def test_matches_the_reference_train_negrad(monkeypatch):
    """Reference values: ``train_negrad`` of github.com/meghdadk/SCRUB
    (``thirdparty/repdistiller/helper/loops.py``), run outside this repository with torch 2.13 CPU on the data
    and model of ``_tiny()``: unshuffled loaders (retain batch 8, forget batch 4), ``itertools.cycle`` over the
    forget loader, SGD lr 0.1 without momentum or weight decay (as ``negative_grad`` of the notebooks),
    alpha 0.7, 2 epochs."""
    model, forget, retain = _tiny()
    monkeypatch.setattr(  # the reference loaders do not shuffle
        Method,
        "batches",
        lambda self, data, batch_size=None, salt=0: Batches(data, batch_size or self.batch_size, shuffle=False),
    )
    algo = uk.make_method("neggrad-plus", epochs=2, lr=0.1, alpha=0.7, batch_size=8, forget_batch_size=4)
    request = UnlearnRequest(model, forget, retain, num_classes=5, progress=False)
    out = algo.run(copy.deepcopy(model), request, RunContext()).model
    w = torch.cat([p.detach().flatten() for p in out.parameters()])
    assert w.sum().item() == pytest.approx(-0.6394063234329224, abs=1e-5)
    assert (w * w).sum().item() == pytest.approx(5.283458232879639, abs=1e-5)
    ref_bias = [-0.364006, 0.281436, 0.271552, -0.282889, 0.060864]
    assert out[2].bias.tolist() == pytest.approx(ref_bias, abs=2e-6)
    assert out[0].weight[0].tolist() == pytest.approx([0.006718, 0.27241, -0.413962, -0.371253], abs=2e-6)


def test_pairs_restart_the_forget_cycle_and_count_both_sets():
    _, forget, retain = _tiny()
    paired = PairedBatches(Batches(retain, 8, shuffle=False), Batches(forget, 4, shuffle=False), restart_each_pass=True)
    sizes = [(len(b[0]), len(b[2])) for b in paired]
    assert sizes == [(8, 4), (8, 2), (4, 4)]
    assert [len(b[2]) for b in paired] == [4, 2, 4]  # a second pass starts the cycle at the first batch again
    assert paired.pass_examples() == 20 + 4 + 2 + 4  # the short forget batch counted as it is
    from unlearnkit.engine import Phase

    assert count_examples([Phase("p", paired, lambda m, b: torch.zeros(()))], 2) == 60


def test_pairs_carry_the_cycle_on_across_passes_when_asked():
    """The LM methods' stream: the forget (here: other) cycle does not restart with each pass of the main set."""
    _, forget, retain = _tiny()
    paired = PairedBatches(
        Batches(retain, 8, shuffle=False), Batches(forget, 4, shuffle=False), restart_each_pass=False
    )
    assert [len(b[2]) for b in paired] == [4, 2, 4]
    assert [len(b[2]) for b in paired] == [2, 4, 2]  # the second pass goes on where the first stopped


def _acc(model, data):
    return accuracy(predict_outputs(model, data), data.y)


def test_ascent_weight_forgets_and_retain_weight_keeps(original, digits, random_split):
    """A retain weight below 1 lowers forget accuracy far more than retain accuracy; alpha = 1 is plain
    fine-tuning and leaves the memorised forget set in place."""
    forget, retain = random_split.forget(digits.train), random_split.retain(digits.train)
    hps = {"epochs": 3, "lr": 0.1, "momentum": 0.9, "weight_decay": 5e-4, "schedule": "cosine", "progress": False}
    plus = uk.unlearn(original, forget, retain, "neggrad-plus", alpha=0.7, **hps).model
    plain = uk.unlearn(original, forget, retain, "neggrad-plus", alpha=1.0, **hps).model
    f0, r0 = _acc(original, forget), _acc(original, retain)
    assert f0 == pytest.approx(_acc(plain, forget), abs=2)
    drop_f, drop_r = f0 - _acc(plus, forget), r0 - _acc(plus, retain)
    assert drop_f > 4 and drop_r < drop_f / 2, (drop_f, drop_r)


def test_auto_tries_neggrad_plus_first_for_random_requests_only():
    auto = uk.make_method("auto")
    assert auto.candidates("random")[0] == auto_module.RANDOM_CANDIDATES[0]
    assert auto.candidates("random")[0][0] == "neggrad-plus"
    assert all(m != "neggrad-plus" for m, _ in auto.candidates("class"))


def test_auto_refuses_a_method_list_with_no_candidate_for_the_request(original, digits, class_split):
    forget, retain = class_split.forget(digits.train), class_split.retain(digits.train)
    with pytest.raises(uk.UnlearnkitError, match="none of \\['neggrad-plus'\\] is tried for a class request"):
        uk.unlearn(original, forget, retain, "auto", methods=("neggrad-plus",), progress=False)
