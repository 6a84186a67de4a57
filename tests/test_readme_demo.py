"""The README's demo tables are the exact output of ``unlearnkit demo --no-progress`` (wall-clock seconds aside)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def _table_lines(text: str) -> list[str]:
    """Titles, rows and summaries of the demo's tables, with the `seconds` column dropped and spaces squeezed."""
    kept = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("│"):
            cells = [c.strip() for c in line.strip("│").split("│")]
            kept.append(" | ".join(cells[:-1]))  # the last column is wall-clock time
        elif line.startswith("digits ·") or re.match(r"^(class|random):\S+: \d+ method", line):
            kept.append(re.sub(r"\s+", " ", line))
    return kept


def _readme_demo_block() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("This is the output\nof `unlearnkit demo --no-progress`")
    block = text[text.index("```\n", start) + 4 :]
    return block[: block.index("```")]


def test_readme_demo_table_is_the_commands_output(tmp_path):
    env = dict(os.environ, UNLEARNKIT_CACHE=str(tmp_path / "cache"), COLUMNS="200")
    proc = subprocess.run(
        [sys.executable, "-m", "unlearnkit.cli", "demo", "--no-progress", "--out", str(tmp_path / "demo")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    expected = _table_lines(_readme_demo_block())
    assert len(expected) == 2 * (1 + 7 + 1)  # two tables: title, 7 rows, summary
    assert _table_lines(proc.stdout) == expected
