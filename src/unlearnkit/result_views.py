"""How results show themselves in notebooks and data tools: an HTML table (``_repr_html_``, which Jupyter
renders), a pandas ``DataFrame`` (``to_pandas``; pandas is optional, extra ``report``) and a matplotlib figure
(``plot``; extra ``report``). Used by :class:`unlearnkit.api.UnlearnResult` and
:class:`unlearnkit.results.ResultTable` (every bench's results)."""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

from .errors import ConfigError, require


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}"
    return html.escape(str(value))


def html_table(title: str, rows: Sequence[Mapping[str, Any]], columns: Sequence[tuple[str, str]] | None = None) -> str:
    """``rows`` as an HTML table with a caption; ``columns``: (key, label) pairs (default: the keys of the rows
    that hold plain values)."""
    cols = list(columns or []) or [(k, k) for k in flat_keys(rows)]
    head = "".join(f"<th>{html.escape(label)}</th>" for _, label in cols)
    body = "".join("<tr>" + "".join(f"<td>{_cell(r.get(k))}</td>" for k, _ in cols) + "</tr>" for r in rows)
    caption = f"<caption>{html.escape(title)}</caption>" if title else ""
    return f'<table class="unlearnkit">{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def flat_keys(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The keys of ``rows`` whose values are plain (not dicts or lists), in first-seen order."""
    keys: list[str] = []
    for r in rows:
        keys += [k for k, v in r.items() if k not in keys and not isinstance(v, dict | list)]
    return keys


def flatten(prefix: str, value: Any, out: dict[str, Any]) -> dict[str, Any]:
    """Nested dicts as ``prefix.key`` entries (lists are kept whole)."""
    if isinstance(value, Mapping):
        for k, v in value.items():
            flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = value
    return out


def data_frame(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> Any:
    """A pandas ``DataFrame`` of ``rows`` (``columns``: their order; default every key); raises
    :class:`~unlearnkit.errors.MissingDependencyError` naming the extra when pandas is not installed."""
    pd = require("pandas", extra="report")
    return pd.DataFrame(list(rows), columns=list(columns) if columns else None)


def _axes(ax: Any) -> Any:
    require("matplotlib", extra="report")
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(6, 3.5))[1]


def plot_history(history: Sequence[Mapping[str, float]], title: str, ax: Any = None) -> Any:
    """Mean loss per epoch, one line per phase (``history``: one dict phase -> loss per epoch, runs in turn)."""
    if not history:
        raise ConfigError(
            f"{title}: no training history to plot (the method trains nothing, or the result was built by hand)"
        )
    ax = _axes(ax)
    phases = list(dict.fromkeys(k for epoch in history for k in epoch))
    for phase in phases:
        points = [(i + 1, e[phase]) for i, e in enumerate(history) if phase in e]
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=phase)
    ax.set_xlabel("epoch")
    ax.set_ylabel("mean loss")
    ax.set_title(title)
    ax.legend()
    return ax


def plot_bars(
    rows: Sequence[Mapping[str, Any]], label: str, metric: str, title: str, metric_label: str, ax: Any = None
) -> Any:
    """One horizontal bar per row: ``metric`` by the row's ``label``; rows without a number there are left out."""
    points = [(str(r.get(label)), float(r[metric])) for r in rows if isinstance(r.get(metric), int | float)]
    points = [(name, v) for name, v in points if not math.isnan(v)]
    if not points:
        raise ConfigError(f"no row of {title!r} holds a number in {metric!r}; choose another metric")
    ax = _axes(ax)
    ax.barh([p[0] for p in points], [p[1] for p in points])
    ax.invert_yaxis()  # the first row on top, as in the printed table
    ax.set_xlabel(metric_label)
    ax.set_title(title)
    return ax


def default_metric(rows: Sequence[Mapping[str, Any]], columns: Sequence[tuple[str, str]]) -> str:
    """The first numeric column after the label column."""
    for key, _ in list(columns)[1:] or [(k, k) for k in flat_keys(rows)[1:]]:
        if any(isinstance(r.get(key), int | float) and not isinstance(r.get(key), bool) for r in rows):
            return key
    raise ConfigError("the table has no numeric column to plot")


def result_row(result: Any) -> dict[str, Any]:
    """An unlearning result as one flat row: method, seconds, ``hparams.*``, ``report.*``."""
    row: dict[str, Any] = {"method": result.method, "seconds": result.seconds}
    flatten("hparams", result.hparams, row)
    flatten("report", result.report, row)
    return row


def result_html(result: Any) -> str:
    """An unlearning result as a two-column HTML table (what, value), with the last epoch's losses."""
    row = result_row(result)
    if result.history:
        row.update({f"last epoch loss ({k})": v for k, v in result.history[-1].items()})
    items = [{"what": k, "value": v} for k, v in row.items() if not isinstance(v, list)]
    title = f"unlearned with {result.method} in {result.seconds:.1f}s"
    return html_table(title, items, [("what", ""), ("value", "")])


class TableViews:
    """The views of a bench run's ``table`` (a :class:`~unlearnkit.results.ResultTable`) on the run itself."""

    table: Any

    def _repr_html_(self) -> str:
        return self.table._repr_html_()

    def to_pandas(self) -> Any:
        """The results table as a pandas ``DataFrame`` (needs pandas)."""
        return self.table.to_pandas()

    def plot(self, metric: str | None = None, ax: Any = None) -> Any:
        """One bar per method of ``metric`` (default: the first numeric column); a matplotlib ``Axes``."""
        return self.table.plot(metric, ax)
