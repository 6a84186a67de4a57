"""Anchors against rollback: evidence kept outside the model folder that the ledger must still contain.

A ledger, its ``exact.json`` and its signed head can all be replaced by an older copy (a backup, a snapshot):
every hash and signature in that copy still verifies. What the copy cannot contain is evidence issued *after*
it was taken. Two kinds of such evidence are checked here:

* an **anchor file** (:func:`append_anchor`): an append-only JSONL file the owner keeps elsewhere, one
  signed head per line (``delete --anchor PATH`` appends the new head after each round). Every anchored head
  must still be in the ledger at its place, and the folder's signed head counter must not be lower than the
  highest anchored one;
* **certificates** the requesters hold (:func:`certificate_in_ledger`): the entry a certificate names must
  still be the ledger's entry at that position, with the request committed at or before it.

What this cannot catch: the holder of the signing key can rewrite the ledger, the heads and the anchor
file; anchors only help when they are kept where the signer cannot change them (another machine, a
write-once store, the requesters' own copies of their certificates).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..errors import CheckpointError
from ..outputs import check_output_file
from .certificates import _check, load_public_key, read_head, render, verify_certificate
from .ledger import record_type


def _is_anchor_line(line: str) -> bool:
    try:
        doc = json.loads(line)
        body = doc["head"]
        int(body["entries"]), str(body["ledger_head"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError):
        return False
    return isinstance(doc.get("signature"), str)


def check_anchor_path(
    anchor: str | Path, folder: str | Path, inputs: list[str | Path | None] | tuple[str | Path | None, ...] = ()
) -> Path:
    """Validate ``anchor`` before anything changes: never the model folder ``folder``, inside it, inside any
    other model folder or one of ``inputs`` (``unlearnkit.outputs``); not a folder; an existing file must be
    an anchor file (every line a signed ledger head); its parent folder must exist (none is created)."""
    path = check_output_file(anchor, overwrite=True, inputs=[folder, *inputs], flag="--anchor")
    parent = path.expanduser().parent
    if not parent.is_dir():
        raise CheckpointError(
            f"--anchor {anchor}: the folder {parent} does not exist; create it first (e.g. mkdir -p {parent})"
        )
    if path.is_file():
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise CheckpointError(f"--anchor {anchor} is not a readable anchor file ({exc}); choose another") from exc
        for n, line in enumerate(lines, 1):
            if line.strip() and not _is_anchor_line(line):
                raise CheckpointError(
                    f"--anchor {anchor} is not an anchor file (line {n} is not a signed ledger head); "
                    "give an anchor file from an earlier `delete --anchor` or a new file name"
                )
    elif path.exists():
        raise CheckpointError(f"--anchor {anchor} is not a regular file; give an anchor file or a new file name")
    return path


def append_anchor(anchor: str | Path, folder: str | Path) -> dict[str, Any]:
    """Append the folder's signed head to the anchor file ``anchor`` (created if needed in an existing folder;
    a head equal to the last line is not repeated). The path is checked with :func:`check_anchor_path` first.
    Returns the head document."""
    anchor = check_anchor_path(anchor, folder)
    doc = read_head(folder)
    if doc is None:
        raise CheckpointError(f"{folder} has no signed ledger head to anchor; delete with --signing-key first")
    line = json.dumps(doc, sort_keys=True, separators=(",", ":")) + "\n"
    lines = anchor.read_text(encoding="utf-8").splitlines() if anchor.is_file() else []
    if lines and lines[-1] + "\n" == line:
        return doc
    with open(anchor, "a", encoding="utf-8") as fh:
        fh.write(line)
        fh.flush()
        os.fsync(fh.fileno())
    return doc


def check_anchor(
    anchor: str | Path, hashes: list[str], head: dict[str, Any] | None, public_key: Any = None
) -> tuple[bool, str]:
    """Whether every head in anchor file ``anchor`` is in the ledger whose entry hashes are ``hashes`` and the
    folder's signed head ``head`` is not older than the newest anchored one. With ``public_key`` every
    anchored head's signature is checked too."""
    anchor = Path(anchor)
    if not anchor.is_file():
        raise CheckpointError(f"no anchor file at {anchor}; `unlearnkit delete --anchor PATH` writes one")
    key = load_public_key(public_key) if isinstance(public_key, str | Path) else public_key
    newest = 0
    for n, line in enumerate(anchor.read_text(encoding="utf-8").splitlines(), 1):
        try:
            doc = json.loads(line)
            body = doc["head"]
            entries, ledger_head = int(body["entries"]), str(body["ledger_head"])
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            return False, f"anchor {anchor}:{n} is not a signed ledger head"
        if key is not None:
            ok, why = _check(doc, body, key)
            if not ok:
                return False, f"anchor {anchor}:{n}: {why}"
        if len(hashes) < entries:
            return False, (
                f"anchor {anchor}:{n} holds a signed head over {entries} entries but the ledger has {len(hashes)}: "
                "the ledger was rolled back to an older snapshot"
            )
        if hashes[entries - 1] != ledger_head:
            return False, (
                f"anchor {anchor}:{n}: ledger entry {entries} is not the anchored head: "
                "the ledger was rewritten after the anchor was taken"
            )
        newest = max(newest, int(body.get("counter", 0) or 0))
    counter = int((head or {}).get("head", {}).get("counter", 0) or 0)
    if counter < newest:
        return False, (
            f"the folder's signed head has counter {counter} but anchor {anchor} holds counter {newest}: "
            "an older signed head was restored"
        )
    return True, f"ok (anchor {anchor}: newest counter {newest})"


def certificate_in_ledger(body: dict[str, Any], entries: list[dict[str, Any]]) -> tuple[bool, str]:
    """Whether the certificate ``body`` sits in the ledger ``entries`` at its place: entry ``ledger_entries``
    has hash ``ledger_head``, and the request is committed at or before it with the certified ids and model."""
    rid = body.get("request_id")
    try:
        n = int(body["ledger_entries"])
    except (KeyError, TypeError, ValueError):
        return False, "the certificate names no ledger position"
    if len(entries) < n:
        return False, (
            f"certificate {rid!r} was issued at ledger entry {n} but the ledger has {len(entries)}: "
            "the ledger is older than the certificate (rolled back)"
        )
    if n < 1 or entries[n - 1].get("hash") != body.get("ledger_head"):
        return False, f"ledger entry {n} is not the head certificate {rid!r} names: the ledger was rewritten"
    from .sharded import ids_digest

    for e in entries[:n]:
        rec = e.get("record", {})
        if record_type(rec) == "committed" and rec.get("request_id") == rid:
            if ids_digest(rec.get("ids", [])) != body.get("ids_sha256"):
                return False, f"request {rid!r} in the ledger deleted other ids than its certificate states"
            if rec.get("model_after") != body.get("model_after"):
                return False, f"request {rid!r} in the ledger produced another model than its certificate states"
            return True, f"in the ledger (committed at entry {e['seq'] + 1}, head at entry {n})"
    return False, f"request {rid!r} is not committed in the ledger before entry {n}"


def check_certificate_file(path: str | Path, entries: list[dict[str, Any]], public_key: Any = None) -> tuple[bool, str]:
    """:func:`certificate_in_ledger` for certificate file ``path`` (its signature first, with ``public_key``)."""
    if public_key is not None:
        ok, why = verify_certificate(path, public_key)
        if not ok:
            return False, why
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
        body = doc["certificate"]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
        return False, f"not a readable certificate: {exc}"
    if public_key is None and Path(path).read_text(encoding="utf-8") != render(doc):
        return False, "the file differs from the form it was signed in (edited after signing)"
    return certificate_in_ledger(body, entries)
