"""``report``: one self-contained HTML page (figures embedded as base64 PNG) and a Markdown twin for a run folder.

Reads what ``bench`` wrote (results.json, and predictions.npz when the run saved predictions) and what
``audit`` added (audit.json, audit_results.json). Missing parts are listed on the page instead of failing.
"""

from __future__ import annotations

import base64
import html
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import DataError
from ..outputs import atomic_write_bytes, atomic_write_text, same_place, staged_folder
from ..results import fmt
from ..validation import check_results_folder
from . import figures as F
from .predictions import read_predictions
from .schema import check_results

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;color:#222}
h1{font-size:1.5rem} h2{font-size:1.2rem;border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2rem}
table{border-collapse:collapse;font-size:.9rem;margin:.5rem 0} th,td{padding:.25rem .6rem;border:1px solid #ddd}
th{background:#f4f4f4} td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.ref td{background:#f8f8e8;font-weight:600} figure{margin:1rem 0} img{max-width:100%}
figcaption{font-size:.85rem;color:#555} pre{background:#f6f6f6;padding:.6rem;overflow:auto;font-size:.8rem}
.note{color:#7a4b00}
"""


@dataclass
class Report:
    """Paths written by :func:`build_report` and the ids of the figures on the page."""

    html: Path
    markdown: Path
    figures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise DataError(f"could not read {path}: {exc}; write it again (UTF-8 JSON)") from exc


def _read_object(path: Path) -> dict[str, Any]:
    obj = _read_json(path)
    if not isinstance(obj, dict):
        raise DataError(f"{path} holds a JSON {type(obj).__name__}, not an object; write it again with its command")
    return obj


def _table_html(rows: list[dict[str, Any]], columns: list[tuple[str, str]], first: str) -> str:
    head = "".join(f"<th>{html.escape(label)}</th>" for _, label in columns)
    body = []
    for r in rows:
        cls = ' class="ref"' if r.get(first) == "retrain" else ""
        cells = "".join(
            f'<td class="num">{html.escape(fmt(r.get(k)))}</td>' if i else f"<td>{html.escape(str(r.get(k)))}</td>"
            for i, (k, _) in enumerate(columns)
        )
        body.append(f"<tr{cls}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _table_md(rows: list[dict[str, Any]], columns: list[tuple[str, str]]) -> str:
    lines = ["| " + " | ".join(label for _, label in columns) + " |", "|" + "---|" * len(columns)]
    for r in rows:
        lines.append(
            "| " + " | ".join(fmt(r.get(k)) if i else str(r.get(k)) for i, (k, _) in enumerate(columns)) + " |"
        )
    return "\n".join(lines)


def build_report(run_dir: str | Path, out_dir: str | Path | None = None) -> Report:
    """Write ``report.html`` (self-contained) and ``report.md`` (+ ``figures/*.png``) for a bench/audit folder."""
    run = Path(run_dir)
    results_path = run / "results.json"
    if not results_path.is_file():
        raise DataError(f"{run} has no results.json; run `unlearnkit bench --out {run}` (or `unlearnkit audit`) first")
    out = Path(out_dir) if out_dir else run
    if out_dir and not same_place(out, run):  # a separate folder: checked first, then replaced as a whole
        check_results_folder(out, inputs=[run])
    results = check_results(_read_json(results_path), results_path)
    rows, columns, meta = results.rows, results.columns, results.meta
    audit = _read_object(run / "audit.json") if (run / "audit.json").is_file() else None
    audit_path = run / "audit_results.json"
    audit_table = check_results(_read_json(audit_path), audit_path) if audit_path.is_file() else None
    preds = read_predictions(run)
    notes: list[str] = []

    figs: list[tuple[str, str, Any]] = [
        ("metrics", "Headline metrics per method; dashed lines are retrain.", F.metrics_bars(rows))
    ]
    if preds is not None:
        labels = preds["_labels"]
        num_classes = int(max(int(labels[s].max()) for s in labels if labels[s].size) + 1)
        names = [str(n) for n in preds.get("_names", {}).get("class_names", [])] or None
        figs.append(
            (
                "per-class",
                "Per-class accuracy before (original) and after unlearning, forget and test sets.",
                F.per_class_plot(preds, num_classes, names),
            )
        )
        figs.append(
            (
                "confidence",
                "Confidence histograms: forget vs test, and retrain's forget set as the target.",
                F.confidence_histograms(preds),
            )
        )
        figs.append(
            (
                "roc-population",
                "Confidence threshold attack (forget = members, test = non-members), log scale.",
                F.roc_plot(F.population_curves(preds), "Population attack ROC"),
            )
        )
    else:
        notes.append(
            "No predictions.npz: per-class accuracy, confidence histograms and the population ROC need "
            "`unlearnkit audit` or bench with save_predictions=True."
        )
    if audit and audit.get("ulira"):
        curves = {k: (v["attack"]["fpr"], v["attack"]["tpr"]) for k, v in audit["ulira"].items() if v.get("attack")}
        figs.append(
            (
                "roc-ulira",
                "U-LiRA: unlearned vs retrained models, per-example likelihood ratio (log scale).",
                F.roc_plot(curves, "U-LiRA ROC"),
            )
        )
    if audit and audit.get("epsilon"):
        first = next(iter(audit["epsilon"].values()))
        figs.append(
            (
                "epsilon",
                f"ε score: forget quality per method against the ceiling that perfect unlearning reaches with "
                f"N = {first['n_runs']} runs (dashed), and the per-example ε with its cut-off.",
                F.epsilon_plot(audit["epsilon"]),
            )
        )
    if audit and audit.get("relearn"):
        figs.append(
            (
                "relearn",
                "Relearning attack: forget accuracy on held-out forget examples per step (series offset slightly "
                f"so equal curves stay visible; dotted: k = {audit.get('relearn_k')}"
                + (f", {audit['relearn_request_kind']} request" if audit.get("relearn_request_kind") else "")
                + ").",
                F.relearn_plot(audit["relearn"], audit.get("relearn_k")),
            )
        )
    tune = _read_object(run / "tune.json") if (run / "tune.json").is_file() else None
    tune_path = run / "tune_results.json"
    tune_table = check_results(_read_json(tune_path), tune_path, key="setting") if tune_path.is_file() else None
    if tune:
        figs.append(
            (
                "tune",
                "Tuning trials: proxy objective per trial (defaults first), the original as a baseline.",
                F.tune_trials_plot(tune),
            )
        )
    if audit is None and tune is None:
        notes.append("No audit.json: run `unlearnkit audit` for U-LiRA, the ε score and the relearning attack.")

    images = {fid: F.png_bytes(fig) for fid, _, fig in figs}

    title = results.title or run.name
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    parts = [
        f"<h1>unlearnkit report · {html.escape(title)}</h1>",
        f"<p>Generated {stamp} from <code>{html.escape(str(run))}</code>.</p>",
    ]
    md = [f"# unlearnkit report · {title}", "", f"Generated {stamp} from `{run}`.", ""]
    for n in notes:
        parts.append(f'<p class="note">{html.escape(n)}</p>')
        md += [f"> {n}", ""]
    parts += ["<h2>Results</h2>", _table_html(rows, columns, "method")]
    md += ["## Results", "", _table_md(rows, columns), ""]
    if audit_table is not None:
        a_rows, a_cols = audit_table.rows, audit_table.columns
        explain = (
            "U-LiRA AUC 50 % = the attack cannot tell the method from retraining. The ε forget quality of "
            "perfect unlearning is not 1 with finitely many runs: two independent samples of one distribution "
            "(each forget example's scores, with the mean and spread of the reference retrains) score about the "
            "ε ceiling column at this N, so compare each method, retrain's row included, with that ceiling."
        )
        audit_notes = (audit or {}).get("notes", [])
        parts += ["<h2>Audit</h2>", f"<p>{html.escape(explain)}</p>", _table_html(a_rows, a_cols, "method")]
        parts += [f'<p class="note">{html.escape(n)}</p>' for n in audit_notes]
        md += ["## Audit", "", explain, "", _table_md(a_rows, a_cols), ""] + [f"> {n}\n" for n in audit_notes]
    if tune_table is not None:
        t_rows, t_cols = tune_table.rows, tune_table.columns
        warnings = (tune or {}).get("warnings", [])
        explain = (
            f"Tuned on a proxy forget set drawn from the retain data, scored on a {tune.get('validation_size', '?')}"
            "-example validation split of the training data; the test set only enters the real gaps below."
            if tune
            else ""
        )
        parts += ["<h2>Tuning</h2>", f"<p>{html.escape(explain)}</p>", _table_html(t_rows, t_cols, "setting")]
        parts += [f'<p class="note">warning: {html.escape(w)}</p>' for w in warnings]
        md += ["## Tuning", "", explain, "", _table_md(t_rows, t_cols), ""] + [f"> warning: {w}\n" for w in warnings]
    parts.append("<h2>Figures</h2>")
    md += ["## Figures", ""]
    for fid, caption, _ in figs:
        b64 = base64.b64encode(images[fid]).decode("ascii")
        parts.append(
            f'<figure id="fig-{fid}"><img alt="{html.escape(caption)}" src="data:image/png;base64,{b64}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        )
        md += [f"![{caption}](figures/{fid}.png)", "", f"*{caption}*", ""]
    settings = json.dumps(
        {
            "config": meta.get("config"),
            "recipe": meta.get("recipe"),
            "split": meta.get("split"),
            "device": meta.get("device"),
            "torch": meta.get("torch"),
            "audit": (audit or {}).get("settings"),
            "tune": {k: v for k, v in (tune or {}).items() if k not in ("trials", "rows")} or None,
        },
        indent=2,
        default=str,
    )
    parts += ["<h2>Settings</h2>", f"<pre>{html.escape(settings)}</pre>"]
    md += ["## Settings", "", "```json", settings, "```", ""]
    page = (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{CSS}</style></head><body>{''.join(parts)}</body></html>\n"
    )
    # staged as one set; into the run folder they join the results (figures/ replaced whole), else they are it
    with staged_folder(out, replace=not same_place(out, run)) as staging:
        for fid, data in images.items():
            atomic_write_bytes(staging / "figures" / f"{fid}.png", data)
        atomic_write_text(staging / "report.html", page)
        atomic_write_text(staging / "report.md", "\n".join(md))
    return Report(out / "report.html", out / "report.md", [fid for fid, _, _ in figs], notes)
