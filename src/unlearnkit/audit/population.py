"""Cheap population membership-inference attacks: one global threshold on loss, confidence or entropy.

Members are the forget set, non-members the test set. After perfect unlearning the forget set looks like
unseen data, so the attack AUC should match the retrained model's (about 50 % for a random forget set).
"""

from __future__ import annotations

from torch import nn

from ..data.tensors import TensorData
from ..metrics.predict import predict_outputs
from .roc import ROCAttackResult, evaluate_attack
from .scores import cross_entropy_loss, prediction_entropy, true_class_probability

POPULATION_ATTACKS = ("loss", "confidence", "entropy")


def threshold_attacks(
    member_logits: object, member_labels: object, nonmember_logits: object, nonmember_labels: object
) -> dict[str, ROCAttackResult]:
    """Loss (low = member), confidence p_y (high = member) and entropy (low = member) threshold attacks."""
    return {
        "loss": evaluate_attack(
            "loss",
            -cross_entropy_loss(member_logits, member_labels),
            -cross_entropy_loss(nonmember_logits, nonmember_labels),
        ),
        "confidence": evaluate_attack(
            "confidence",
            true_class_probability(member_logits, member_labels),
            true_class_probability(nonmember_logits, nonmember_labels),
        ),
        "entropy": evaluate_attack(
            "entropy", -prediction_entropy(member_logits), -prediction_entropy(nonmember_logits)
        ),
    }


def population_attacks(model: nn.Module, members: TensorData, nonmembers: TensorData) -> dict[str, ROCAttackResult]:
    """Run the three threshold attacks on ``model`` (members: e.g. the forget set; non-members: the test set)."""
    m = predict_outputs(model, members)
    n = predict_outputs(model, nonmembers)
    return threshold_attacks(m, members.y, n, nonmembers.y)
