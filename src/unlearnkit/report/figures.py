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
FIXED_STYLES = {"original": ("black", "o", "-"), "retrain": ("tab:gray", "s", "--")}
MARKERS = ("^", "v", "D", "P", "X", "<", ">", "*", "h", "p")
LINESTYLES = ("-", "-.", ":", (0, (5, 1)), (0, (3, 1, 1, 1)))


def series_style(name: str, i: int) -> dict[str, Any]:
    """Colour, marker and line style of series ``i``: original and retrain are fixed (black circles, grey
    dashed squares); the others cycle through colours, markers and dash patterns so overlapping lines stay
    distinguishable."""
    if name in FIXED_STYLES:
        color, marker, ls = FIXED_STYLES[name]
    else:
        color, marker, ls = f"C{i % 10}", MARKERS[i % len(MARKERS)], LINESTYLES[i % len(LINESTYLES)]
    return {"color": color, "marker": marker, "linestyle": ls, "markersize": 6, "markerfacecolor": "none"}


def _offsets(n: int, spread: float) -> np.ndarray:
    """Small symmetric horizontal offsets so that series with equal values do not hide each other."""
    return (np.arange(n) - (n - 1) / 2) * spread if n > 1 else np.zeros(1)


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
        names_ = [n for n in preds if not n.startswith("_")]
        for i, (name, dx) in enumerate(zip(names_, _offsets(len(names_), 0.08))):
            acc = per_class_accuracy(preds[name][split], labels[split], num_classes)
            ax.plot(x + dx, acc, label=name, **series_style(name, i))
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
    for i, (name, (fpr, tpr)) in enumerate(curves.items()):
        f, t = np.asarray(fpr), np.asarray(tpr)
        ok = (f > 0) & (t > 0)
        style = series_style(name, i)
        ax.plot(f[ok], t[ok], label=name, markevery=max(1, int(ok.sum()) // 8), **style)
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


def relearn_plot(curves: dict[str, dict[str, Any]], k: int | None = None) -> Any:
    """Forget accuracy (held-out part) against relearning steps; series are offset sideways a little so
    that equal curves (e.g. original and a method that changed nothing) stay visible; a dotted line marks k."""
    fig = _figure(5.0, 3.6)
    ax = fig.add_subplot()
    for i, ((name, c), dx) in enumerate(zip(curves.items(), _offsets(len(curves), 0.06))):
        steps = np.arange(len(c["accuracy"])) + dx
        ax.plot(steps, c["accuracy"], label=name, **series_style(name, i))
    if k is not None:
        ax.axvline(k, color="gray", linestyle=":", linewidth=1)
    ax.set_xlabel("relearning steps on a slice of the forget set")
    ax.set_ylabel("accuracy on the rest (%)")
    ax.set_title("Relearning attack")
    ax.legend(fontsize="small")
    return fig


def epsilon_plot(scores: dict[str, dict[str, Any]]) -> Any:
    """ε forget quality per method with the finite-N ceiling (what perfect unlearning scores at this N), and
    the distribution of per-example ε with the cut-off ⌈ln(N − 1)⌉ beyond which an example scores 0."""
    import math

    names = list(scores)
    fig = _figure(max(7.0, 1.2 * len(names) + 4.0), 3.6)
    ax, ax2 = fig.subplots(1, 2, width_ratios=(1.2, 1))
    fq = [scores[n]["forget_quality"] for n in names]
    colors = [series_style(n, i)["color"] for i, n in enumerate(names)]
    ax.bar(np.arange(len(names)), fq, color=colors, alpha=0.8)
    first = scores[names[0]]
    n_runs, ceiling = first["n_runs"], first.get("ceiling")
    if isinstance(ceiling, int | float) and not math.isnan(ceiling):
        ax.axhline(ceiling, color="black", linestyle="--", label=f"ceiling at N = {n_runs}: {ceiling:.3f}")
        ax.legend(fontsize="small", loc="upper right")
    ax.set_xticks(np.arange(len(names)), names, rotation=30, fontsize="small")
    ax.set_ylabel("ε forget quality")
    ax.set_ylim(0, max(0.3, max(fq + [ceiling or 0]) * 1.3))
    ax.set_title(f"ε score ({first.get('family', 'challenge')} family)")
    cutoff = math.ceil(math.log(n_runs - 1)) if n_runs >= 3 else 0
    bins = np.arange(0, cutoff + 1.0, 0.5)
    for i, n in enumerate(names):
        eps = np.minimum(np.asarray(scores[n].get("epsilons", []), dtype=float), cutoff + 0.75)
        if eps.size:
            ax2.hist(eps, np.r_[bins, cutoff + 1.0], histtype="step", linewidth=1.5, label=n, **_hist_style(n, i))
    ax2.axvline(cutoff, color="red", linestyle=":", label=f"cut-off ⌈ln(N−1)⌉ = {cutoff}")
    ax2.set_xlabel("per-example ε (last bin: at or past the cut-off)")
    ax2.set_ylabel("forget examples")
    ax2.legend(fontsize="x-small")
    return fig


def _hist_style(name: str, i: int) -> dict[str, Any]:
    st = series_style(name, i)
    return {"color": st["color"], "linestyle": st["linestyle"]}


def tune_trials_plot(tune: dict[str, Any]) -> Any:
    """The proxy objective of every tuning trial (first: the defaults) with the original's as a line."""
    fig = _figure(6.0, 3.4)
    ax = fig.add_subplot()
    trials = [t for t in tune.get("trials", []) if t.get("value") is not None]
    xs = [t["number"] for t in trials]
    ys = [t["value"] for t in trials]
    ax.plot(xs, ys, "o", color="C0", label="trial")
    if trials:
        ax.plot([xs[0]], [ys[0]], "s", color="C1", markersize=9, markerfacecolor="none", label="defaults")
        best = min(trials, key=lambda t: t["value"])
        ax.plot([best["number"]], [best["value"]], "*", color="C2", markersize=12, label="best")
    orig = tune.get("original_value")
    if isinstance(orig, int | float) and np.isfinite(orig):
        ax.axhline(orig, color="black", linestyle="--", label="original (no unlearning)")
    ax.set_xlabel("trial")
    ax.set_ylabel("proxy Avg-Gap" if tune.get("objective", "avg_gap") == "avg_gap" else "proxy −(ε score)")
    ax.set_title(f"Tuning {tune.get('method', '')} on the proxy (validation split, no test data)")
    ax.legend(fontsize="small")
    return fig
