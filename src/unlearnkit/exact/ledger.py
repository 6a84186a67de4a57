"""An append-only, hash-chained JSONL ledger of deletion requests.

Every line is ``{"seq", "time", "prev", "record", "hash"}`` where ``hash`` is the SHA-256 of the canonical
JSON of the other four fields and ``prev`` is the previous line's hash (64 zeros for the first). Editing,
reordering or removing a line breaks the chain; removing lines from the end is caught by comparing the
last hash with the head the model folder remembers (``expected_head``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..checkpoint import atomic_write_text
from ..errors import CheckpointError
from .sharding import GENESIS


def entry_hash(entry: dict[str, Any]) -> str:
    body = {k: entry.get(k) for k in ("seq", "time", "prev", "record")}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


@dataclass
class LedgerCheck:
    """The outcome of :meth:`Ledger.verify`: ``ok``, how many entries, the head hash and the first problem."""

    ok: bool
    entries: int
    head: str
    problem: str = ""
    line: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Ledger:
    """The ledger file at ``path`` (created on the first :meth:`append`)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def _text(self) -> str:
        return self.path.read_text(encoding="utf-8") if self.path.is_file() else ""

    def entries(self) -> list[dict[str, Any]]:
        out = []
        for n, line in enumerate(self._text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise CheckpointError(f"{self.path}:{n} is not valid JSON ({exc}); the ledger was damaged") from exc
        return out

    def verify(self, expected_head: str | None = None) -> LedgerCheck:
        """Re-hash every entry and check the chain (and, with ``expected_head``, that nothing was cut off)."""
        prev, count = GENESIS, 0
        for n, line in enumerate(self._text().splitlines(), 1):
            if not line.strip():
                return LedgerCheck(False, count, prev, "blank line inside the ledger", n)
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                return LedgerCheck(False, count, prev, "line is not valid JSON", n)
            if not isinstance(entry, dict) or entry.get("seq") != count:
                return LedgerCheck(False, count, prev, f"sequence number is not {count}", n)
            if entry.get("prev") != prev:
                return LedgerCheck(False, count, prev, "prev does not match the previous entry's hash", n)
            if entry.get("hash") != entry_hash(entry):
                return LedgerCheck(False, count, prev, "entry was modified: its hash does not match its content", n)
            prev, count = entry["hash"], count + 1
        if expected_head is not None and prev != expected_head:
            return LedgerCheck(False, count, prev, "the last entry is not the recorded head: entries were removed")
        return LedgerCheck(True, count, prev)

    def append(self, record: dict[str, Any]) -> dict[str, Any]:
        """Add ``record`` as a new entry (refuses when the existing chain does not verify)."""
        check = self.verify()
        if not check.ok:
            raise CheckpointError(
                f"{self.path} fails verification at line {check.line} ({check.problem}); "
                "investigate before appending (`unlearnkit ledger verify`)"
            )
        entry: dict[str, Any] = {
            "seq": check.entries,
            "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "prev": check.head,
            "record": json.loads(json.dumps(record, default=str)),
        }
        entry["hash"] = entry_hash(entry)
        atomic_write_text(self.path, self._text() + json.dumps(entry, sort_keys=True) + "\n")
        return entry

    def deleted_ids(self) -> set[int]:
        """Every id recorded as deleted by any entry."""
        return {int(i) for e in self.entries() for i in e.get("record", {}).get("ids", [])}
