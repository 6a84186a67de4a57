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
* ``purge`` — stored checkpoints trained on a deleted id, listed (by key) before they are removed: until a
  ``purged`` entry closes it, the purge is pending.
* ``purged`` — those checkpoints were removed from the store (``purge_seqs`` names the ``purge`` entries).

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


def open_purges(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ``purge`` entries of ``entries`` not closed by a later ``purged`` entry."""
    closed = {int(s) for e in entries if record_type(e["record"]) == "purged" for s in e["record"]["purge_seqs"]}
    return [e for e in entries if record_type(e["record"]) == "purge" and e["seq"] not in closed]


def _fingerprint(stat: os.stat_result | None) -> tuple[int, int, int]:
    """What identifies one version of the ledger file: inode, size, modification time (zeros when absent)."""
    return (stat.st_ino, stat.st_size, stat.st_mtime_ns) if stat is not None else (0, 0, 0)


def record_type(record: dict[str, Any]) -> str:
    """``type`` of a record (entries written before types existed were committed deletions)."""
    return str(record.get("type", "committed"))


class Ledger:
    """The ledger file at ``path`` (created on the first :meth:`append`)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        #: (file fingerprint, byte size, entries, head hash) of the chain as last verified by this object
        self._tail: tuple[tuple[int, int, int], int, int, str] | None = None

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
        """Re-hash every entry and check the chain (and, with ``expected_head``, that nothing was cut off).
        A chain that verifies becomes the verified tail :meth:`append` continues from."""
        stat, data = self._read()
        check, _ = self._scan(data, 0, 0, GENESIS)
        self._tail = (_fingerprint(stat), len(data), check.entries, check.head) if check.ok else None
        if check.ok and expected_head is not None and check.head != expected_head:
            return LedgerCheck(
                False, check.entries, check.head, "the last entry is not the recorded head: entries were removed"
            )
        return check

    def _read(self) -> tuple[os.stat_result | None, bytes]:
        try:
            with open(self.path, "rb") as fh:
                return os.fstat(fh.fileno()), fh.read()
        except FileNotFoundError:
            return None, b""

    @staticmethod
    def _scan(data: bytes, offset: int, count: int, prev: str) -> tuple[LedgerCheck, int]:
        """Check the lines of ``data[offset:]`` as entries ``count, count+1, …`` continuing from hash ``prev``."""
        chunk = data[offset:]
        line0 = data[:offset].count(b"\n")
        if chunk and not chunk.endswith(b"\n"):
            n = line0 + chunk.count(b"\n") + 1
            torn = "the last line is incomplete (a torn write)"
            return LedgerCheck(False, count + chunk.count(b"\n"), prev, torn, n), 0
        for n, raw in enumerate(chunk.splitlines(), line0 + 1):
            if not raw.strip():
                return LedgerCheck(False, count, prev, "blank line inside the ledger", n), 0
            try:
                entry = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError):
                return LedgerCheck(False, count, prev, "line is not valid JSON", n), 0
            if not isinstance(entry, dict) or entry.get("seq") != count:
                return LedgerCheck(False, count, prev, f"sequence number is not {count}", n), 0
            if entry.get("prev") != prev:
                return LedgerCheck(False, count, prev, "prev does not match the previous entry's hash", n), 0
            if entry.get("hash") != entry_hash(entry):
                return LedgerCheck(False, count, prev, "entry was modified: its hash does not match its content", n), 0
            prev, count = entry["hash"], count + 1
        return LedgerCheck(True, count, prev), len(data)

    def _verified_tail(self) -> LedgerCheck:
        """The chain's state for an append, without re-reading what was verified: the cached tail when the
        file is as this object last saw it (same inode, size and modification time), only the bytes added
        since when it grew (another writer appended), otherwise a full :meth:`verify`. This keeps an append
        O(1) in the ledger's length; edits that keep the file's size and time are left to the full
        verification every open and ``ledger verify`` do."""
        if self._tail is None:
            return self.verify()
        fp, size, count, head = self._tail
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            stat = None
        if _fingerprint(stat) == fp:
            return LedgerCheck(True, count, head)
        if stat is None or stat.st_size < size or stat.st_ino != fp[0]:
            return self.verify()
        with open(self.path, "rb") as fh:
            fh.seek(max(size - 1, 0))
            data = fh.read()
        if size and not data.startswith(b"\n"):
            return self.verify()
        offset = 1 if size else 0
        check, _ = self._scan(data, offset, count, head)
        if check.ok:
            stat = os.stat(self.path)
            self._tail = (_fingerprint(stat), size - offset + len(data), check.entries, check.head)
        else:
            return self.verify()  # report the problem with whole-file line numbers
        return check

    def append(self, record: dict[str, Any]) -> dict[str, Any]:
        """Add ``record`` as a new line; see :meth:`append_many`."""
        return self.append_many([record])[0]

    def append_many(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Add ``records`` as new lines, written together and synced to disk once before returning (refuses
        when the chain does not verify). The file is opened for appending: earlier lines are never rewritten.

        The chain is verified in full once per :class:`Ledger` object (and by :meth:`verify`); later appends
        only check what other writers added since, so a queue of ``n`` requests costs O(n), not O(n²)."""
        if not records:
            return []
        with file_lock(self.lock_path):
            check = self._verified_tail()
            if not check.ok:
                raise CheckpointError(
                    f"{self.path} fails verification at line {check.line} ({check.problem}); "
                    "investigate before appending (`unlearnkit ledger verify`)"
                )
            size = self._tail[1] if self._tail is not None else 0
            seq, prev = check.entries, check.head
            entries, lines = [], []
            now = datetime.now(timezone.utc).isoformat(timespec="seconds")
            for record in records:
                entry: dict[str, Any] = {
                    "seq": seq,
                    "time": now,
                    "prev": prev,
                    "record": json.loads(json.dumps(record, default=str)),
                }
                entry["hash"] = entry_hash(entry)
                entries.append(entry)
                lines.append(json.dumps(entry, sort_keys=True) + "\n")
                seq, prev = seq + 1, entry["hash"]
            data = "".join(lines).encode("utf-8")
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "ab") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
                stat = os.fstat(fh.fileno())
            size += len(data)
            # nobody else appends under the lock: a size that differs means a full verify next time
            self._tail = (_fingerprint(stat), size, seq, prev) if stat.st_size == size else None
        return entries

    def tail(self) -> tuple[int, str]:
        """``(entries, head hash)`` of the chain, from the verified tail (a full verify the first time).
        Raises :class:`CheckpointError` when the chain does not verify."""
        with file_lock(self.lock_path):
            check = self._verified_tail()
        if not check.ok:
            raise CheckpointError(f"{self.path} fails verification at line {check.line} ({check.problem})")
        return check.entries, check.head

    def open_purges(self) -> list[dict[str, Any]]:
        """``purge`` entries (checkpoints to remove) not yet closed by a ``purged`` entry, in ledger order."""
        return open_purges(self.entries())

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
