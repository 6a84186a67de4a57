"""Results as plain data: rows of metrics, printed as a table and written as JSON and CSV."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import result_views
from .checkpoint import atomic_write_text, staged_folder, write_json
from .errors import ConfigError


@dataclass
class ResultTable:
    """A titled list of rows (dicts with the same keys), with the columns to show and their labels."""

    title: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    columns: Sequence[tuple[str, str]] = ()  # (key, label)
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_csv(self) -> str:
        keys: list[str] = []
        for r in self.rows:
            keys += [k for k in r if k not in keys and not isinstance(r[k], dict | list)]
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=keys, extrasaction="ignore")
        w.writeheader()
        for r in self.rows:
            w.writerow({k: r.get(k, "") for k in keys})
        return buf.getvalue()

    def write(self, out_dir: str | Path, stem: str = "results", *, replace: bool = False) -> tuple[Path, Path]:
        """Write ``STEM.json`` and ``STEM.csv`` into ``out_dir``: staged in a temporary folder, so a new
        ``out_dir`` appears with both files or not at all, and each file replaces an older one atomically.
        With ``replace``, the two files replace the whole folder (nothing written there before survives)."""
        out = Path(out_dir)
        with staged_folder(out, replace=replace) as staging:
            write_json(staging / f"{stem}.json", self.to_dict())
            atomic_write_text(staging / f"{stem}.csv", self.to_csv())
        return out / f"{stem}.json", out / f"{stem}.csv"

    def render(self) -> str:
        """The table as aligned plain text."""
        cols = list(self.columns) or [(k, k) for k in (self.rows[0] if self.rows else {})]
        cells = [[label for _, label in cols]] + [[fmt(r.get(k)) for k, _ in cols] for r in self.rows]
        widths = [max(len(row[i]) for row in cells) for i in range(len(cols))]
        lines = [self.title]
        for j, row in enumerate(cells):
            lines.append("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))))
            if j == 0:
                lines.append("  ".join("-" * w for w in widths))
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        return result_views.html_table(self.title, self.rows, list(self.columns) or None)

    def to_pandas(self) -> Any:
        """The rows as a pandas ``DataFrame`` (one column per key, in the table's order first); needs pandas."""
        keys = [k for k, _ in self.columns]
        keys += [k for k in result_views.flat_keys(self.rows) if k not in keys]
        return result_views.data_frame(self.rows, keys)

    def plot(self, metric: str | None = None, ax: Any = None) -> Any:
        """One bar per row: ``metric`` (a column key; default the first numeric column) by the first column
        (the method); a matplotlib ``Axes``, drawn on ``ax`` when given."""
        cols = list(self.columns) or [(k, k) for k in result_views.flat_keys(self.rows)]
        if not cols:
            raise ConfigError(f"{self.title!r} has no rows to plot")
        key = metric or result_views.default_metric(self.rows, cols)
        label = dict(cols).get(key, key)
        return result_views.plot_bars(self.rows, cols[0][0], key, self.title, label, ax)

    def print(self) -> None:
        try:
            from rich.console import Console
            from rich.table import Table
        except ImportError:  # pragma: no cover
            print(self.render())
            return
        cols = list(self.columns) or [(k, k) for k in (self.rows[0] if self.rows else {})]
        t = Table(title=self.title)
        for i, (_, label) in enumerate(cols):
            t.add_column(label, justify="left" if i == 0 else "right")
        for r in self.rows:
            t.add_row(*(fmt(r.get(k)) for k, _ in cols))
        console = Console()
        if not console.is_terminal:  # files and pipes: never squeeze the columns
            console = Console(width=200)
        console.print(t)


def fmt(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        if math.isnan(v):
            return "–"
        return f"{v:.2f}" if abs(v) < 1000 else f"{v:.0f}"
    return str(v)
