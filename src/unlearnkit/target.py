"""Where retraining lands, estimated without retraining: the target of classifier unlearning runs.

Retraining without D_f makes the forget set look like data the model never saw. A held-out set (examples that
are neither training nor test data, e.g. the user's validation split) shows what unseen data looks like to the
original, so it estimates where retraining lands without running it:

* **sample-wise** requests (``"heldout"``): D_f's accuracy and its mean true-class confidence should become the
  held-out set's; the estimate also records the held-out loss distribution (mean and quartiles of the
  cross-entropy) and the MIA-efficacy a retrained model would score (SalUn's attack, shadow members from D_r,
  equally many shadow non-members from one half of the held-out set, target the other half);
* **class-wise** requests (every forget example of one class and none of it left in D_r, ``"class"``): the
  class is predicted as other classes (forget accuracy 0) and the retain accuracy is kept;
* **without a held-out set** (``"retain-confidence"``, weaker): the least confident half of a retain sample
  stands in for unseen data (its accuracy and mean confidence). On a model that memorised its training data
  this target asks for little change; ``unlearn(..., heldout=...)`` gives the real one.

:class:`Target` measures how far cheap probe values (:class:`ProbeValues`, accuracy and confidence on fixed
subsamples of D_f and D_r) are from the target, in percentage points: ``|acc_f - target|`` plus
``|conf_f - target|`` (sample-wise) and any retain-accuracy drop below the original's. Reference for the
stopping idea: the gap to a retrained model as judged by SalUn's metrics (Fan et al., "SalUn: Empowering
Machine Unlearning via Gradient-based Weight Saliency", ICLR 2024; code OPTML-Group/Unlearn-Saliency,
``Classification/evaluation``), with the retrained model replaced by the held-out estimate.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from .data.tensors import TensorData
from .errors import ConfigError
from .metrics.mia import mia_efficacy

#: examples per probe subsample (D_f, D_r, held-out)
PROBE_SIZE = 256
#: the target is reached when the probe distance is at most this many percentage points
REACH_TOLERANCE = 3.0
TARGET_SOURCES = ("heldout", "class", "retain-confidence")


@dataclass(frozen=True)
class ProbeValues:
    """Accuracy and mean true-class confidence on the forget probe, accuracy on the retain probe (percent)."""

    forget_acc: float
    forget_conf: float
    retain_acc: float

    def to_dict(self) -> dict[str, float]:
        return {k: round(v, 4) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class Target:
    """The estimated retrain landing point and how to measure the distance of probe values to it."""

    source: str
    forget_acc: float
    forget_conf: float | None
    retain_acc: float
    forget_loss: dict[str, float] | None = None
    mia: float | None = None
    heldout_size: int = 0
    tolerance: float = REACH_TOLERANCE

    def __post_init__(self) -> None:
        if self.source not in TARGET_SOURCES:
            raise ConfigError(f"unknown target source {self.source!r}; choose one of {', '.join(TARGET_SOURCES)}")

    @property
    def classwise(self) -> bool:
        return self.source == "class"

    def distance(self, v: ProbeValues) -> float:
        """Percentage points from the target: the forget terms plus any retain-accuracy drop."""
        drop = max(0.0, self.retain_acc - v.retain_acc)
        if self.classwise:
            return v.forget_acc + drop
        conf = 0.0 if self.forget_conf is None else abs(v.forget_conf - self.forget_conf)
        return abs(v.forget_acc - self.forget_acc) + conf + drop

    def reached(self, v: ProbeValues) -> bool:
        return self.distance(v) <= self.tolerance

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["weaker"] = self.source == "retain-confidence"
        return d


def subsample(data: TensorData, size: int = PROBE_SIZE, seed: int = 0) -> TensorData:
    """A fixed random subsample of ``size`` examples (all of ``data`` when smaller), in index order."""
    if len(data) <= size:
        return data
    rng = np.random.default_rng(seed)
    return data.subset(np.sort(rng.choice(len(data), size, replace=False)))


def probe_sets(forget: TensorData, retain: TensorData, seed: int = 0) -> tuple[TensorData, TensorData]:
    """The fixed forget and retain probes (:data:`PROBE_SIZE` examples each, drawn with ``seed``)."""
    return subsample(forget, PROBE_SIZE, seed), subsample(retain, PROBE_SIZE, seed)


@torch.no_grad()
def _outputs(model: nn.Module, data: TensorData, device: torch.device, batch_size: int = 512) -> torch.Tensor:
    was_training = model.training
    model.eval()
    try:
        parts = [model(data.x[i : i + batch_size].to(device)).float().cpu() for i in range(0, len(data), batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(parts) if parts else torch.empty(0, 1)


def _acc_conf_loss(logits: torch.Tensor, y: torch.Tensor) -> tuple[float, torch.Tensor, torch.Tensor]:
    y = y.long().cpu()
    acc = 100.0 * float((logits.argmax(1) == y).float().mean()) if len(y) else float("nan")
    logp = torch.log_softmax(logits, 1).gather(1, y[:, None]).squeeze(1)
    return acc, logp.exp(), -logp


def probe_values(model: nn.Module, forget: TensorData, retain: TensorData, device: torch.device) -> ProbeValues:
    """:class:`ProbeValues` of ``model`` on the forget and retain probes (percent)."""
    fa, fc, _ = _acc_conf_loss(_outputs(model, forget, device), forget.y)
    ra, _, _ = _acc_conf_loss(_outputs(model, retain, device), retain.y)
    return ProbeValues(fa, 100.0 * float(fc.mean()), ra)


def is_classwise(forget: TensorData, retain: TensorData) -> bool:
    """True when the forget set is every example of one class: a single label, absent from the retain set."""
    labels = torch.unique(forget.y.long())
    return len(labels) == 1 and not bool((retain.y.long() == labels[0]).any())


def estimate_target(
    model: nn.Module,
    forget: TensorData,
    retain: TensorData,
    heldout: TensorData | None,
    device: torch.device,
    *,
    seed: int = 0,
) -> Target:
    """Estimate where retraining lands for this request (see the module docstring for the three targets)."""
    r_probe = subsample(retain, PROBE_SIZE, seed)
    r_logits = _outputs(model, r_probe, device)
    r_acc, r_conf, _ = _acc_conf_loss(r_logits, r_probe.y)
    if is_classwise(forget, retain):
        return Target("class", 0.0, None, r_acc, heldout_size=0 if heldout is None else len(heldout))
    if heldout is None or len(heldout) < 2:
        low = torch.argsort(r_conf)[: max(1, len(r_conf) // 2)]
        correct = r_logits[low].argmax(1) == r_probe.y[low].long().cpu()
        return Target(
            "retain-confidence", 100.0 * float(correct.float().mean()), 100.0 * float(r_conf[low].mean()), r_acc
        )
    h_acc, h_conf, h_loss = _acc_conf_loss(_outputs(model, heldout, device), heldout.y)
    quart = torch.quantile(h_loss, torch.tensor([0.25, 0.5, 0.75])).tolist()
    loss = {"mean": float(h_loss.mean()), "q25": quart[0], "median": quart[1], "q75": quart[2]}
    order = np.random.default_rng(seed).permutation(len(heldout))
    half = len(order) // 2
    n = min(len(r_conf), half)  # as many shadow members as non-members, as the benchmark's MIA has
    mia = mia_efficacy(r_conf[:n].numpy(), h_conf[order[:n]].numpy(), h_conf[order[half:]].numpy())
    return Target(
        "heldout",
        h_acc,
        100.0 * float(h_conf.mean()),
        r_acc,
        forget_loss={k: round(v, 4) for k, v in loss.items()},
        mia=None if math.isnan(mia) else mia,
        heldout_size=len(heldout),
    )
