"""The ``audit``, ``tune`` and ``report`` commands end to end on digits, and the page in headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from unlearnkit.cli import main
from unlearnkit.errors import DataError
from unlearnkit.report import build_report

SMALL = ["--model", "mlp", "--epochs", "8", "--seed", "0", "--no-progress"]
FIGURES = ("metrics", "per-class", "confidence", "roc-population", "roc-ulira", "epsilon", "relearn")


@pytest.fixture(scope="session")
def audit_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("audit")
    out = root / "run"
    args = ["audit", *SMALL, "--methods", "ga,salun", "--pairs", "3", "--targets", "60", "--eps-runs", "3"]
    args += ["--relearn-steps", "3", "--cache-dir", str(root / "cache"), "--out", str(out)]
    assert main(args) == 0
    return out


def test_audit_writes_every_part(audit_dir):
    audit = json.loads((audit_dir / "audit.json").read_text())
    assert set(audit) >= {"settings", "population", "relearn", "epsilon", "ulira"}
    assert set(audit["ulira"]) == {"original", "retrain", "ga", "salun"}
    rows = {r["method"]: r for r in json.loads((audit_dir / "audit_results.json").read_text())["rows"]}
    assert set(rows) == {"original", "retrain", "ga", "salun"}
    for r in rows.values():
        assert 0 <= r["ulira_auc"] <= 100 and 0 <= r["eps_forget_quality"] <= 1
    assert (audit_dir / "predictions.npz").is_file()
    # random:0.1 is a request of examples: forget accuracy is read after all 3 steps, and the output says so
    assert (audit["relearn_k"], audit["relearn_request_kind"]) == (3, "examples")
    assert any("k = 3: request of examples" in n for n in audit["notes"])
    assert all("relearn_at_k" in r for r in rows.values())


def test_classwise_audit_reads_relearning_after_two_steps(tmp_path):
    out = tmp_path / "run"
    args = ["audit", *SMALL, "--forget", "class:3", "--methods", "ft", "--pairs", "0", "--eps-runs", "0"]
    assert main([*args, "--no-reference", "--cache-dir", str(tmp_path / "cache"), "--out", str(out)]) == 0
    audit = json.loads((out / "audit.json").read_text())
    assert (audit["relearn_k"], audit["relearn_request_kind"]) == (2, "class-wise")
    assert any("k = 2: class-wise request" in n for n in audit["notes"])
    curves = audit["relearn"]
    at_k = {m: r["relearn_at_k"] for m, r in _rows(out).items()}
    assert at_k["retrain"] == curves["retrain"]["accuracy"][2] < at_k["original"] - 50


def test_relearn_k_without_relearning_is_refused(tmp_path, capsys):
    args = ["audit", *SMALL, "--relearn-steps", "0", "--relearn-k", "2", "--out", str(tmp_path / "run")]
    assert main(args) != 0
    assert "relearning is off" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()  # refused before any training


def test_neighbours_relearning_of_a_class_is_refused_before_training(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["audit", *SMALL, "--forget", "class:3", "--relearn-source", "neighbours", "--out", str(out)]) != 0
    assert "leaves none; use --relearn-source forget" in capsys.readouterr().err
    assert not out.exists()


def _rows(out):
    return {r["method"]: r for r in json.loads((out / "audit_results.json").read_text())["rows"]}


def test_report_page_has_every_figure_and_renders_in_chromium(audit_dir, tmp_path):
    assert main(["report", str(audit_dir)]) == 0
    page = (audit_dir / "report.html").read_text()
    md = (audit_dir / "report.md").read_text()
    for fid in FIGURES:
        assert f'id="fig-{fid}"' in page and f"figures/{fid}.png" in md
        assert (audit_dir / "figures" / f"{fid}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert page.count('src="data:image/png;base64,') == len(FIGURES)
    assert "http://" not in page and "https://" not in page  # self-contained
    assert "U-LiRA AUC" in page and "Settings" in page and "retrain" in page
    assert "ε ceiling" in page and "not 1 with finitely many runs" in page and "U-LiRA audited random" in page
    assert "dotted: k = 3, examples request" in page and "relearn acc@3" in page

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'ud'}",
    ]
    # the page as the browser built it, after decoding every image (a broken one has naturalWidth 0)
    probe = tmp_path / "probe.html"
    probe.write_text(
        page.replace(
            "</body>",
            "<script>window.addEventListener('load',()=>{const ok=[...document.images].filter("
            "i=>i.complete&&i.naturalWidth>0).length;document.body.setAttribute('data-images-ok',ok);});"
            "</script></body>",
        )
    )
    dom = subprocess.run(
        [chromium, *flags, "--virtual-time-budget=5000", "--dump-dom", probe.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert re.search(r'data-images-ok="(\d+)"', dom).group(1) == str(len(FIGURES))
    for fid in FIGURES:
        assert f'id="fig-{fid}"' in dom
    shot = tmp_path / "page.png"
    subprocess.run(
        [chromium, *flags, "--window-size=1200,3000", f"--screenshot={shot}", probe.as_uri()],
        capture_output=True,
        timeout=120,
        check=True,
    )
    assert shot.stat().st_size > 20_000


def test_report_of_a_plain_bench_folder_notes_what_is_missing(tmp_path):
    out = tmp_path / "bench"
    assert main(["bench", *SMALL, "--methods", "ft", "--cache-dir", str(tmp_path / "c"), "--out", str(out)]) == 0
    rep = build_report(out)
    assert rep.figures == ["metrics"] and len(rep.notes) == 2
    assert "save_predictions" in rep.html.read_text()
    with pytest.raises(DataError, match="no results.json"):
        build_report(tmp_path / "nothing")


def test_tune_command_reports_defaults_and_tuned(tmp_path, capsys):
    out = tmp_path / "tune"
    args = ["tune", *SMALL, "--method", "ga", "--trials", "3", "--cache-dir", str(tmp_path / "c"), "--out", str(out)]
    assert main(args) == 0
    tune = json.loads((out / "tune.json").read_text())
    assert tune["best_value"] <= tune["default_value"] and tune["n_trials"] == 3
    rows = json.loads((out / "tune_results.json").read_text())["rows"]
    assert [r["setting"] for r in rows] == ["retrain", "original (no unlearning)", "ga (defaults)", "ga (tuned)"]
    assert tune["validation_size"] >= 50 and tune["original_value"] == rows[1]["proxy_gap"]
    assert isinstance(tune["warnings"], list)
    printed = capsys.readouterr().out
    assert "tuned ga" in printed and printed.count("warning:") == len(tune["warnings"])
    if rows[3]["avg_gap"] > rows[1]["avg_gap"]:  # a tuned setting worse than doing nothing is always flagged
        assert any("doing nothing" in w for w in tune["warnings"])
    rep = build_report(out)  # the tuning folder renders tune.json: its table, warnings and the trials figure
    page = rep.html.read_text()
    assert "tune" in rep.figures and 'id="fig-tune"' in page and "<h2>Tuning</h2>" in page
    assert "original (no unlearning)" in page and "validation split" in page
    assert (out / "figures" / "tune.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is not None:
        dom = subprocess.run(
            [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                f"--user-data-dir={tmp_path / 'ud'}",
                "--virtual-time-budget=3000",
                "--dump-dom",
                rep.html.as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        ).stdout
        assert 'id="fig-tune"' in dom and dom.count("data:image/png;base64,") == len(rep.figures)
