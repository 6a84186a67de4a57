"""The report's figures, drawn with matplotlib (extra ``report``) on ``Figure`` objects (no pyplot state)."""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from ..audit.roc import roc_curve
from ..audit.scores import true_class_probability
from ..errors import require
from ..metrics.accuracy import per_class_accuracy

HEADLINE_LABELS = {"ua": "UA", "ra": "RA", "ta": "TA", "mia": "MIA-efficacy"}


def _figure(width: float, height: float) -> Any:
    require("matplotlib", extra="report")
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def png_bytes(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def metrics_bars(rows: list[dict[str, Any]], keys: tuple[str, ...] = ("ua", "ra", "ta", "mia")) -> Any:
    """Grouped bars of the headline metrics per method; retrain's values as dashed reference lines."""
    keys = tuple(k for k in keys if any(isinstance(r.get(k), int | float) for r in rows))
    others = [r for r in rows if r["method"] != "retrain"]
    ref = next((r for r in rows if r["method"] == "retrain"), None)
    fig = _figure(max(6.0, 1.6 * len(keys) + 0.5 * len(others)), 3.6)
    ax = fig.add_subplot()
    width = 0.8 / max(1, len(others))
    x = np.arange(len(keys))
    for i, r in enumerate(others):
        vals = [float(r.get(k) if r.get(k) is not None else np.nan) for k in keys]
        ax.bar(x - 0.4 + width * (i + 0.5), vals, width, label=r["method"])
    if ref is not None:
        for j, k in enumerate(keys):
            v = ref.get(k)
            if isinstance(v, int | float):
                ax.hlines(
                    v, j - 0.45, j + 0.45, colors="black", linestyles="dashed", label="retrain" if j == 0 else None
                )
    ax.set_xticks(x, [HEADLINE_LABELS.get(k, k) for k in keys])
    ax.set_ylabel("percent")
    ax.set_title("Headline metrics (dashed: retrain, the target)")
    ax.legend(fontsize="small", ncols=min(8, len(others) + 1), loc="upper center", bbox_to_anchor=(0.5, -0.1))
    return fig


def per_class_plot(preds: dict[str, dict[str, np.ndarray]], num_classes: int, names: list[str] | None = None) -> Any:
    """Per-class accuracy on the forget and the test set for every model (before = original, after = methods)."""
    labels = preds["_labels"]
    fig = _figure(10.0, 3.6)
    axes = fig.subplots(1, 2, sharey=True)
    x = np.arange(num_classes)
    for ax, split in zip(axes, ("forget", "test")):
        for name, p in preds.items():
            if name.startswith("_"):
                continue
            acc = per_class_accuracy(p[split], labels[split], num_classes)
            style = {"original": ("k", "o", "-"), "retrain": ("tab:gray", "s", "--")}.get(name, (None, ".", "-"))
            ax.plot(x, acc, color=style[0], marker=style[1], linestyle=style[2], label=name)
        ax.set_title(f"per-class accuracy, {split} set")
        ax.set_xticks(x, names[:num_classes] if names else [str(c) for c in x], rotation=45, fontsize="small")
        ax.set_ylim(-2, 102)
    axes[0].set_ylabel("accuracy (%)")
    axes[1].legend(fontsize="small")
    return fig


def confidence_histograms(preds: dict[str, dict[str, np.ndarray]]) -> Any:
    """Per model: p(true class) on its forget set and test set, with retrain's forget set as the target."""
    labels = preds["_labels"]
    names = [n for n in preds if not n.startswith("_") and n != "retrain"]
    cols = min(3, max(1, len(names)))
    rows = -(-len(names) // cols)
    fig = _figure(4.0 * cols, 2.8 * rows)
    axes = np.atleast_1d(fig.subplots(rows, cols, sharex=True, squeeze=False)).ravel()
    bins = np.linspace(0, 1, 26)
    target = true_class_probability(preds["retrain"]["forget"], labels["forget"]) if "retrain" in preds else None
    for ax, name in zip(axes, names):
        p = preds[name]
        ax.hist(true_class_probability(p["forget"], labels["forget"]), bins, alpha=0.6, density=True, label="forget")
        ax.hist(true_class_probability(p["test"], labels["test"]), bins, alpha=0.5, density=True, label="test")
        if target is not None:
            ax.hist(target, bins, histtype="step", color="k", density=True, label="retrain forget")
        ax.set_title(name)
        ax.set_yscale("log")
    for ax in axes[len(names) :]:
        ax.set_visible(False)
    axes[0].legend(fontsize="x-small")
    fig.suptitle("Confidence p(true class): forget vs test vs retrain")
    return fig


def roc_plot(curves: dict[str, tuple[list[float], list[float]]], title: str) -> Any:
    """ROC curves on log-log axes (the low-FPR regime is what matters for privacy)."""
    fig = _figure(5.0, 4.2)
    ax = fig.add_subplot()
    for name, (fpr, tpr) in curves.items():
        f, t = np.asarray(fpr), np.asarray(tpr)
        ok = (f > 0) & (t > 0)
        ax.plot(f[ok], t[ok], label=name)
    grid = np.geomspace(1e-4, 1, 50)
    ax.plot(grid, grid, color="gray", linestyle=":", label="chance")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(1e-3, 1)
    ax.set_ylim(1e-3, 1)
    ax.set_xlabel("false-positive rate")
    ax.set_ylabel("true-positive rate")
    ax.set_title(title)
    ax.legend(fontsize="small")
    return fig


def population_curves(preds: dict[str, dict[str, np.ndarray]]) -> dict[str, tuple[list[float], list[float]]]:
    """ROC of the confidence threshold attack (forget = members, test = non-members) for every model."""
    labels = preds["_labels"]
    out = {}
    for name, p in preds.items():
        if name.startswith("_"):
            continue
        fpr, tpr = roc_curve(
            true_class_probability(p["forget"], labels["forget"]), true_class_probability(p["test"], labels["test"])
        )
        out[name] = (fpr.tolist(), tpr.tolist())
    return out


def relearn_plot(curves: dict[str, dict[str, Any]]) -> Any:
    """Forget accuracy (held-out part) against relearning steps."""
    fig = _figure(5.0, 3.6)
    ax = fig.add_subplot()
    for name, c in curves.items():
        style = "--" if name == "retrain" else "-"
        ax.plot(range(len(c["accuracy"])), c["accuracy"], style, marker=".", label=name)
    ax.set_xlabel("relearning steps on a slice of the forget set")
    ax.set_ylabel("accuracy on the rest (%)")
    ax.set_title("Relearning attack")
    ax.legend(fontsize="small")
    return fig
