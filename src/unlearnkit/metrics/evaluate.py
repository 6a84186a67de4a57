"""``evaluate``: the headline metrics of a model on forget / retain / test data, and gaps to a reference."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from ..data.tensors import TensorData, as_tensor_data
from ..errors import ConfigError, ModelError
from ..validation import check_finite_data, class_labels
from .accuracy import accuracy, true_class_confidence
from .gap import HEADLINE, avg_gap, gaps
from .mia import mia_efficacy
from .predict import predict_outputs

#: headline metric names per task (the ones Avg-Gap averages over)
HEADLINES: dict[str, tuple[str, ...]] = {"classification": HEADLINE}
#: metric function per task: (model, forget, retain, test, mia) -> dict of metrics
TASK_METRICS: dict[str, Callable[..., dict[str, float]]] = {}


@dataclass
class Evaluation:
    """Metrics of one model (percent for classification), with gaps to a reference when one was given."""

    task: str
    metrics: dict[str, float]
    gaps: dict[str, float] = field(default_factory=dict)
    avg_gap: float | None = None

    def __getattr__(self, name: str) -> float:
        metrics = self.__dict__.get("metrics", {})
        if name in metrics:
            return metrics[name]
        raise AttributeError(name)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def with_reference(self, reference: Evaluation | Mapping[str, float]) -> Evaluation:
        ref = reference.metrics if isinstance(reference, Evaluation) else dict(reference)
        bad = {k: v for k, v in ref.items() if isinstance(v, bool) or not isinstance(v, int | float | None)}
        if bad:
            raise ConfigError(f"reference metrics must be numbers; got {bad}; pass a model, an Evaluation or numbers")
        keys = HEADLINES.get(self.task, tuple(self.metrics))
        return Evaluation(self.task, self.metrics, gaps(self.metrics, ref, keys), avg_gap(self.metrics, ref, keys))


def classification_metrics(
    model: nn.Module, forget: TensorData, retain: TensorData, test: TensorData, mia: bool = True
) -> dict[str, float]:
    """UA, RA, TA and MIA-efficacy (SalUn's SVC on p(true class)) in percent."""
    f_logits = predict_outputs(model, forget)
    r_logits = predict_outputs(model, retain)
    t_logits = predict_outputs(model, test)
    for logits, data, name in ((f_logits, forget, "forget"), (r_logits, retain, "retain"), (t_logits, test, "test")):
        check_finite_outputs(logits, name)
        if len(data):
            class_labels(data, logits.shape[1], name)
    out = {
        "ua": 100.0 - accuracy(f_logits, forget.y),
        "ra": accuracy(r_logits, retain.y),
        "ta": accuracy(t_logits, test.y),
        "mia": float("nan"),
    }
    if mia and len(test) > 0 and len(forget) > 0:
        n_shadow = min(len(test), len(retain))  # shadow members: the first |test| retain examples
        conf = {
            k: true_class_confidence(torch.softmax(lg, 1), y)
            for k, (lg, y) in {
                "member": (r_logits[:n_shadow], retain.y[:n_shadow]),
                "non": (t_logits, test.y),
                "target": (f_logits, forget.y),
            }.items()
        }
        out["mia"] = mia_efficacy(conf["member"], conf["non"], conf["target"])
    return out


TASK_METRICS["classification"] = classification_metrics


def check_finite_outputs(outputs: torch.Tensor, name: str) -> None:
    if outputs.is_floating_point() and not bool(torch.isfinite(outputs).all()):
        raise ModelError(
            f"the model returns NaN or infinite outputs on the {name} set; its weights have diverged — train or "
            "unlearn it again with a smaller learning rate"
        )


def evaluate(
    model: nn.Module,
    *,
    forget: object,
    retain: object,
    test: object,
    reference: nn.Module | Evaluation | Mapping[str, float] | None = None,
    task: str = "classification",
    mia: bool = True,
) -> Evaluation:
    """Headline metrics of ``model``; with ``reference`` (a retrained model, its :class:`Evaluation`, or a
    dict of its metrics) also the per-metric gaps and Avg-Gap.

    ``forget``, ``retain`` and ``test`` may each be a Dataset, a DataLoader or a tuple ``(X, y)``. For
    class-wise forgetting pass a test set without the forgotten class.
    """
    if task not in TASK_METRICS:
        raise ConfigError(f"unknown task {task!r}; choose one of {', '.join(sorted(TASK_METRICS))}")
    if not isinstance(model, nn.Module):
        raise ModelError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    f, r, t = (as_tensor_data(d, n) for d, n in ((forget, "forget"), (retain, "retain"), (test, "test")))
    for data, name in ((f, "forget"), (r, "retain"), (t, "test")):
        check_finite_data(data, name)
    result = Evaluation(task, TASK_METRICS[task](model, f, r, t, mia))
    if reference is None:
        return result
    if isinstance(reference, nn.Module):
        reference = Evaluation(task, TASK_METRICS[task](reference, f, r, t, mia))
    return result.with_reference(reference)


def is_nan(v: float | None) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))
