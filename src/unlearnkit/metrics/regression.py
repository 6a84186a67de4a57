"""Regression metrics ("Deep Regression Unlearning", Tarun et al., ICML 2023): MAE and R² on the forget,
retain and test sets, and a loss-based membership-inference attack.

Everything is in percent so that Avg-Gap averages comparable numbers: MAE as a percentage of one standard
deviation of the targets (the bundled datasets standardise targets, so ``forget_mae = 35`` means 0.35 SD),
R² times 100, MIA-efficacy as the share of forget examples the attack calls non-members.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..data.tensors import TensorData
from .evaluate import HEADLINES, TASK_METRICS, check_finite_outputs
from .mia import mia_efficacy
from .predict import predict_outputs

REGRESSION_HEADLINE = ("forget_mae", "retain_mae", "test_mae", "forget_r2", "retain_r2", "test_r2", "mia")


def mean_absolute_error(pred: torch.Tensor | np.ndarray, target: torch.Tensor | np.ndarray) -> float:
    """Mean |pred − target| (nan for no examples)."""
    p = torch.as_tensor(pred).float().reshape(-1)
    t = torch.as_tensor(target).float().reshape(-1)
    return float("nan") if t.numel() == 0 else float((p - t).abs().mean())


def r2_score(pred: torch.Tensor | np.ndarray, target: torch.Tensor | np.ndarray) -> float:
    """Coefficient of determination 1 − SS_res/SS_tot (nan for fewer than two examples or constant targets)."""
    p = torch.as_tensor(pred).double().reshape(-1)
    t = torch.as_tensor(target).double().reshape(-1)
    ss_tot = float(((t - t.mean()) ** 2).sum()) if t.numel() > 1 else 0.0
    if ss_tot == 0.0:
        return float("nan")
    return 1.0 - float(((p - t) ** 2).sum()) / ss_tot


def squared_errors(pred: torch.Tensor, target: torch.Tensor) -> np.ndarray:
    """Per-example squared error: the feature of the loss-based membership attack."""
    return ((pred.reshape(-1).double() - target.reshape(-1).double()) ** 2).numpy()


def regression_metrics(
    model: nn.Module, forget: TensorData, retain: TensorData, test: TensorData, mia: bool = True
) -> dict[str, float]:
    """Forget/retain/test MAE (percent of a target SD) and R² (×100), plus loss-based MIA-efficacy.

    The attack is SalUn's SVC fitted on the per-example squared error of shadow members (retain) versus
    non-members (test); MIA-efficacy is the share of the forget set it calls non-member (higher = more
    forgotten).
    """
    preds = {k: predict_outputs(model, d) for k, d in (("forget", forget), ("retain", retain), ("test", test))}
    for k, p in preds.items():
        check_finite_outputs(p, k)
    data = {"forget": forget, "retain": retain, "test": test}
    out: dict[str, float] = {}
    for k in ("forget", "retain", "test"):
        out[f"{k}_mae"] = 100.0 * mean_absolute_error(preds[k], data[k].y)
    for k in ("forget", "retain", "test"):
        out[f"{k}_r2"] = 100.0 * r2_score(preds[k], data[k].y)
    out["mia"] = float("nan")
    if mia and len(test) > 0 and len(forget) > 0 and len(retain) > 0:
        n_shadow = min(len(test), len(retain))
        out["mia"] = mia_efficacy(
            squared_errors(preds["retain"][:n_shadow], retain.y[:n_shadow]),
            squared_errors(preds["test"], test.y),
            squared_errors(preds["forget"], forget.y),
        )
    return out


TASK_METRICS["regression"] = regression_metrics
HEADLINES["regression"] = REGRESSION_HEADLINE
