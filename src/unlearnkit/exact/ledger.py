"""An append-only, hash-chained JSONL ledger of everything that changes an exact model's state.

Every line is ``{"seq", "time", "prev", "record", "hash"}`` where ``hash`` is the SHA-256 of the canonical
JSON of the other four fields and ``prev`` is the previous line's hash (64 zeros for the first). Editing,
reordering or removing a line breaks the chain; removing lines from the end is caught by comparing the
last hash with the head the model folder remembers (``expected_head``) or with a signed head
(:mod:`.certificates`).

Records carry a ``type``:

* ``fit`` — a model was (re)trained; ``state`` is the digest of the resulting ``exact.json``.
* ``pending`` — a deletion request was accepted (its ids, the hash of its request file, the state digests
  before and after removing the ids). Written *before* anything else changes (write-ahead).
* ``committed`` — the request's retraining finished; the resulting constituent keys and state digest.
* ``rolled_back`` — a pending request that could not be carried out was cancelled.

Lines are only ever appended (``open(..., "a")`` + ``fsync``), under an exclusive ``fcntl`` lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import CheckpointError
from .sharding import GENESIS


def canonical(obj: Any) -> bytes:
    """The canonical JSON bytes hashed and signed everywhere in the exact-unlearning folder."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode()


def sha256_hex(obj: Any) -> str:
    return hashlib.sha256(canonical(obj)).hexdigest()


def entry_hash(entry: dict[str, Any]) -> str:
    return sha256_hex({k: entry.get(k) for k in ("seq", "time", "prev", "record")})


@contextlib.contextmanager
def file_lock(path: str | Path) -> Iterator[None]:
    """An exclusive advisory ``fcntl`` lock on ``path`` (created if needed), held for the ``with`` block.
    Released by the kernel if the process dies, so a crashed writer never blocks the next one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


@dataclass
class LedgerCheck:
    """The outcome of :meth:`Ledger.verify`: ``ok``, how many entries, the head hash and the first problem."""

    ok: bool
    entries: int
    head: str
    problem: str = ""
    line: int | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def record_type(record: dict[str, Any]) -> str:
    """``type`` of a record (entries written before types existed were committed deletions)."""
    return str(record.get("type", "committed"))


class Ledger:
    """The ledger file at ``path`` (created on the first :meth:`append`)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")

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
        text = self._text()
        if text and not text.endswith("\n"):
            n = text.count("\n") + 1
            return LedgerCheck(False, text.count("\n"), prev, "the last line is incomplete (a torn write)", n)
        for n, line in enumerate(text.splitlines(), 1):
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
        """Add ``record`` as a new line (refuses when the existing chain does not verify). The file is opened
        for appending and synced to disk before returning: earlier lines are never rewritten."""
        with file_lock(self.lock_path):
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
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(entry, sort_keys=True) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
        return entry

    def drop_torn_tail(self) -> bool:
        """Cut an incomplete last line (a write interrupted by a crash, never acknowledged to anyone).
        Returns whether anything was cut. Complete lines are never touched."""
        with file_lock(self.lock_path):
            text = self._text()
            if not text or text.endswith("\n"):
                return False
            keep = text[: text.rfind("\n") + 1]
            with open(self.path, "r+", encoding="utf-8") as fh:
                fh.truncate(len(keep.encode("utf-8")))
                fh.flush()
                os.fsync(fh.fileno())
            return True

    def requests(self) -> dict[str, dict[str, Any]]:
        """Per request id: ``{"pending": entry, "outcome": "committed" | "rolled_back" | None, ...}``."""
        out: dict[str, dict[str, Any]] = {}
        for e in self.entries():
            rec = e.get("record", {})
            kind = record_type(rec)
            rid = rec.get("request_id")
            if kind == "pending":
                out[rid] = {"pending": e, "outcome": None, "final": None}
            elif kind in ("committed", "rolled_back"):
                slot = out.setdefault(rid, {"pending": None, "outcome": None, "final": None})
                slot["outcome"], slot["final"] = kind, e
        return out

    def open_requests(self) -> list[dict[str, Any]]:
        """Pending entries without a committed or rolled-back outcome, in ledger order."""
        return [r["pending"] for r in self.requests().values() if r["pending"] is not None and r["outcome"] is None]

    def deleted_ids(self) -> set[int]:
        """Every id of every request that was not rolled back (pending ids count: the request was accepted)."""
        deleted: set[int] = set()
        rolled = {rid for rid, r in self.requests().items() if r["outcome"] == "rolled_back"}
        for e in self.entries():
            rec = e.get("record", {})
            kind = record_type(rec)
            legacy = kind == "committed" and "pending_seq" not in rec  # entries from before write-ahead
            if (kind == "pending" and rec.get("request_id") not in rolled) or legacy:
                deleted |= {int(i) for i in rec.get("ids", [])}
        return deleted

    def last_state(self) -> str | None:
        """The state digest recorded by the last entry that set one (``fit``, ``committed``, ``rolled_back``)."""
        state = None
        for e in self.entries():
            rec = e.get("record", {})
            if record_type(rec) in ("fit", "committed", "rolled_back") and rec.get("state"):
                state = rec["state"]
        return state
