import math

import numpy as np
import pytest
import torch

import unlearnkit as uk
from unlearnkit.errors import DataError
from unlearnkit.metrics import accuracy, avg_gap, gaps, mia_efficacy, per_class_accuracy, unlearning_accuracy


def test_accuracy_and_ua_on_known_logits():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 1.0], [0.0, 5.0]])
    labels = torch.tensor([0, 1, 1, 1])
    assert accuracy(logits, labels) == 75.0
    assert unlearning_accuracy(logits, labels) == 25.0
    assert per_class_accuracy(logits, labels, 3)[:2] == [100.0, pytest.approx(200 / 3)]
    assert math.isnan(per_class_accuracy(logits, labels, 3)[2])


def test_mia_efficacy_separates_members_from_non_members():
    rng = np.random.default_rng(0)
    members = rng.uniform(0.95, 1.0, 200)  # confident on training data
    non = rng.uniform(0.2, 0.7, 200)
    assert mia_efficacy(members, non, rng.uniform(0.95, 1.0, 50)) < 10  # looks like members
    assert mia_efficacy(members, non, rng.uniform(0.2, 0.7, 50)) > 90  # looks unseen
    with pytest.raises(DataError):
        mia_efficacy(np.array([]), non, non)


def test_gaps_and_avg_gap():
    a = {"ua": 5.0, "ra": 99.0, "ta": 90.0, "mia": 10.0}
    ref = {"ua": 7.0, "ra": 100.0, "ta": 91.0, "mia": 14.0}
    assert gaps(a, ref) == {"ua": 2.0, "ra": 1.0, "ta": 1.0, "mia": 4.0}
    assert avg_gap(a, ref) == 2.0
    assert avg_gap({**a, "mia": float("nan")}, ref) == pytest.approx(4 / 3)


def test_evaluate_with_reference(original, digits, random_split):
    f, r = random_split.forget(digits.train), random_split.retain(digits.train)
    ev = uk.evaluate(original, forget=f, retain=r, test=digits.test, reference=original)
    assert ev.avg_gap == 0.0 and set(ev.gaps) == {"ua", "ra", "ta", "mia"}
    assert ev.ra > 95 and 0 <= ev.mia <= 100
    from unlearnkit.metrics import predict_outputs

    assert ev.ua == pytest.approx(100 - accuracy(predict_outputs(original, f), f.y))
    d = ev.to_dict()
    assert d["metrics"]["ta"] == ev.ta
