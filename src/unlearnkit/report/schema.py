"""The shape of a run's ``results.json`` (what :meth:`unlearnkit.results.ResultTable.write` writes), checked
before a report is drawn from it: every malformed shape ends in one :class:`~unlearnkit.errors.DataError`
line naming the file, the field and the fix."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import DataError
from .figures import HEADLINE_LABELS

#: the top-level fields a results table holds (:class:`unlearnkit.results.ResultTable`)
FIELDS = ("title", "rows", "columns", "meta")

_FIX = "write it again with the command that made it (unlearnkit bench, audit or tune --out RUN_DIR)"


@dataclass
class ResultsFile:
    """A validated ``results.json``: its rows, the (key, label) columns, the run's meta and its title."""

    rows: list[dict[str, Any]]
    columns: list[tuple[str, str]]
    meta: dict[str, Any] = field(default_factory=dict)
    title: str | None = None


def check_results(obj: Any, path: str | Path, key: str = "method") -> ResultsFile:
    """Validate the parsed ``results.json`` at ``path`` (or another table: ``audit_results.json`` and, with
    ``key="setting"``, ``tune_results.json``): an object whose ``rows`` is a list of objects, each with a string
    ``key`` and numbers (or null) for the headline metrics; ``columns`` a list of ``[key, label]`` string pairs;
    ``meta`` an object; ``title`` a string. ``rows`` is required and no other top-level field is accepted."""
    if not isinstance(obj, dict):
        raise DataError(f"{path} holds a JSON {type(obj).__name__}, not an object with 'rows'; {_FIX}")
    unknown = sorted(str(k) for k in obj if k not in FIELDS)
    if unknown:
        raise DataError(f"{path}: unknown field {unknown[0]!r} (a results table has only {', '.join(FIELDS)}); {_FIX}")
    if "rows" not in obj:
        raise DataError(f"{path}: field 'rows' is missing (a results table needs a list of row objects); {_FIX}")
    rows = obj["rows"]
    if not isinstance(rows, list):
        raise DataError(f"{path}: field 'rows' is a {type(rows).__name__}, not a list of row objects; {_FIX}")
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise DataError(f"{path}: rows[{i}] is a {type(row).__name__}, not an object; {_FIX}")
        if not isinstance(row.get(key), str) or not row[key]:
            raise DataError(f"{path}: rows[{i}] has no string field {key!r} (got {row.get(key)!r}); {_FIX}")
        for metric in HEADLINE_LABELS:
            v = row.get(metric)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int | float) or math.isinf(v)):
                raise DataError(
                    f"{path}: rows[{i}] ({row[key]}) field {metric!r} is {v!r}, not a finite number or null; {_FIX}"
                )
    raw_columns = obj.get("columns", [])
    if not isinstance(raw_columns, list) or not all(
        isinstance(c, list | tuple) and len(c) == 2 and all(isinstance(s, str) for s in c) for c in raw_columns
    ):
        raise DataError(f"{path}: field 'columns' must be a list of [key, label] string pairs; {_FIX}")
    columns = [(str(c), str(label)) for c, label in raw_columns] or [(c, c) for c in (rows[0] if rows else {})]
    meta = obj.get("meta", {})
    if not isinstance(meta, dict):
        raise DataError(f"{path}: field 'meta' is a {type(meta).__name__}, not an object; {_FIX}")
    title = obj.get("title")
    if title is not None and not isinstance(title, str):
        raise DataError(f"{path}: field 'title' is a {type(title).__name__}, not a string; {_FIX}")
    return ResultsFile(rows, columns, meta, title)
