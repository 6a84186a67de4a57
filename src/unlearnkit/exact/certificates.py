"""Signed deletion certificates and a signed ledger head (Ed25519, optional extra ``certs``).

A certificate is a JSON file ``{"certificate": {...}, "algorithm": "Ed25519", "key": FINGERPRINT,
"signature": BASE64}``; the signature covers the canonical JSON (sorted keys, no spaces) of
``certificate``, which holds the request id, the SHA-256 of its sorted ids, the model hash before and
after, the affected shards, the ledger head after the request and the time. :func:`verify_certificate`
fails on any change to the file that alters the signed content, the signature or the key.

The ledger head is signed too (``DIR/ledger.head.json``): whoever rewrites the ledger wholesale, even with
every hash recomputed, cannot produce a head signature that verifies with the owner's public key. Each
signed head carries a counter (one more than the previous head's) and the previous head's hash, so copies
kept elsewhere (:mod:`.anchors`) reveal a ledger rolled back to an older signed snapshot.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..checkpoint import atomic_write_bytes, atomic_write_text
from ..errors import CheckpointError, ConfigError, require
from ..identifiers import file_name
from ..outputs import check_output_file, same_place
from .ledger import canonical

HEAD_FILE = "ledger.head.json"
CERT_DIR = "certificates"
ALGORITHM = "Ed25519"
KEY_ENV = "UNLEARNKIT_SIGNING_KEY"


def _ed25519() -> Any:
    require("cryptography", "certs")
    from cryptography.hazmat.primitives.asymmetric import ed25519

    return ed25519


def _serialization() -> Any:
    from cryptography.hazmat.primitives import serialization

    return serialization


def keygen(private_path: str | Path, public_path: str | Path | None = None, *, overwrite: bool = False) -> Path:
    """Create an Ed25519 key pair: the private key (PEM, mode 0600) and the public key (PEM). Returns the
    public key's path (default: the private path with ``.pub`` appended)."""
    ed = _ed25519()
    ser = _serialization()
    private_path = Path(private_path)
    public_path = Path(public_path) if public_path else private_path.with_name(private_path.name + ".pub")
    if same_place(private_path, public_path):
        raise ConfigError(f"--public {public_path} is the private key's path; choose another --public")
    for p, flag in ((private_path, "--out"), (public_path, "--public")):
        if p.exists() and not p.is_dir() and not overwrite:
            raise ConfigError(f"{p} exists; choose another path (keys are never overwritten silently)")
        # never inside a model folder, never a folder, a place that can be written (unlearnkit.outputs)
        check_output_file(p, overwrite=overwrite, flag=flag, key=p is private_path)
    key = ed.Ed25519PrivateKey.generate()
    pem = key.private_bytes(ser.Encoding.PEM, ser.PrivateFormat.PKCS8, ser.NoEncryption())
    atomic_write_bytes(private_path, pem, mode=0o600)  # never readable by others, not even before the rename
    pub = key.public_key().public_bytes(ser.Encoding.PEM, ser.PublicFormat.SubjectPublicKeyInfo)
    atomic_write_bytes(public_path, pub)
    return public_path


def _raw_public(public_key: Any) -> bytes:
    ser = _serialization()
    return public_key.public_bytes(ser.Encoding.Raw, ser.PublicFormat.Raw)


def fingerprint(public_key: Any) -> str:
    """SHA-256 of the raw 32-byte public key, hex."""
    return hashlib.sha256(_raw_public(public_key)).hexdigest()


def load_public_key(path: str | Path) -> Any:
    ed = _ed25519()
    ser = _serialization()
    try:
        key = ser.load_pem_public_key(Path(path).read_bytes())
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"could not read a PEM public key from {path}: {exc}; create one with `unlearnkit keygen`"
        ) from exc
    if not isinstance(key, ed.Ed25519PublicKey):
        raise ConfigError(f"{path} is not an Ed25519 public key; create one with `unlearnkit keygen`")
    return key


@dataclass
class Signer:
    """Signs with the Ed25519 private key in PEM file ``path``."""

    path: str

    def __post_init__(self) -> None:
        ed = _ed25519()
        ser = _serialization()
        try:
            key = ser.load_pem_private_key(Path(self.path).read_bytes(), password=None)
        except (OSError, ValueError, TypeError) as exc:
            raise ConfigError(
                f"could not read a PEM private key from {self.path}: {exc}; use `unlearnkit keygen`"
            ) from exc
        if not isinstance(key, ed.Ed25519PrivateKey):
            raise ConfigError(f"{self.path} is not an Ed25519 private key; create one with `unlearnkit keygen`")
        self._key = key
        self.fingerprint = fingerprint(key.public_key())

    @classmethod
    def from_env(cls) -> Signer | None:
        """The signer named by ``$UNLEARNKIT_SIGNING_KEY`` (``None`` when unset)."""
        path = os.environ.get(KEY_ENV)
        return cls(path) if path else None

    def sign(self, body: dict[str, Any]) -> dict[str, Any]:
        sig = self._key.sign(canonical(body))
        return {"algorithm": ALGORITHM, "key": self.fingerprint, "signature": base64.b64encode(sig).decode()}


def _check(signed: dict[str, Any], body: Any, public_key: Any) -> tuple[bool, str]:
    from cryptography.exceptions import InvalidSignature

    if not isinstance(signed, dict) or signed.get("algorithm") != ALGORITHM:
        return False, "not an Ed25519-signed document"
    if signed.get("key") != fingerprint(public_key):
        return False, "signed with a different key than the public key given"
    text = str(signed.get("signature", ""))
    try:
        sig = base64.b64decode(text, validate=True)
        if base64.b64encode(sig).decode() != text:  # a non-canonical encoding (altered padding bits) is an edit
            return False, "signature is not in its canonical base64 form: the file was changed after signing"
        public_key.verify(sig, canonical(body))
    except (InvalidSignature, ValueError):
        return False, "signature does not match the content"
    return True, "ok"


def render(doc: dict[str, Any]) -> str:
    """The one text form of a signed document: a file in any other form was changed after signing."""
    return json.dumps(doc, indent=1, sort_keys=True) + "\n"


def certificate_path(folder: Path, request_id: str) -> Path:
    """``folder/certificates/<request id>.json``; an id that is not a safe identifier is hashed into the name,
    so no request id can name a file outside ``certificates/``."""
    return Path(folder) / CERT_DIR / file_name(str(request_id), ".json")


def write_certificate(folder: Path, body: dict[str, Any], signer: Signer) -> Path:
    """Sign ``body`` and write it to ``folder/certificates/<request id>.json``."""
    doc = {"certificate": body, **signer.sign(body)}
    path = certificate_path(folder, body["request_id"])
    atomic_write_text(path, render(doc))
    return path


def verify_certificate(path: str | Path, public_key: str | Path | Any) -> tuple[bool, str]:
    """Whether certificate file ``path`` verifies with ``public_key`` (a PEM path or a key object)."""
    key = load_public_key(public_key) if isinstance(public_key, str | Path) else public_key
    if not Path(path).is_file():
        raise CheckpointError(
            f"no certificate file {path}; pass the path of a certificate written by `unlearnkit delete`"
        )
    try:
        text = Path(path).read_text(encoding="utf-8")
        doc = json.loads(text)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return False, f"not a readable certificate: {exc}"
    if not isinstance(doc, dict) or "certificate" not in doc:
        return False, "not a certificate (no 'certificate' field)"
    ok, why = _check(doc, doc["certificate"], key)
    if ok and text != render(doc):
        return False, "the file differs from the form it was signed in (edited after signing)"
    return ok, why


def certificate_body(
    request_id: str,
    ids: list[int],
    model_before: str,
    model_after: str,
    shards: list[int],
    ledger_head: str,
    ledger_entries: int,
) -> dict[str, Any]:
    return {
        "request_id": request_id,
        "ids_sha256": hashlib.sha256(",".join(str(i) for i in sorted(ids)).encode()).hexdigest(),
        "ids_count": len(ids),
        "model_before": model_before,
        "model_after": model_after,
        "affected_shards": sorted(shards),
        "ledger_head": ledger_head,
        "ledger_entries": ledger_entries,
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def read_head(folder_or_file: str | Path) -> dict[str, Any] | None:
    """The signed head document in ``DIR/ledger.head.json`` (or the file given); ``None`` when absent or
    unreadable."""
    p = Path(folder_or_file)
    p = p / HEAD_FILE if p.is_dir() else p
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return doc if isinstance(doc, dict) and isinstance(doc.get("head"), dict) else None


def signed_head_entries(folder: str | Path) -> int | None:
    """How many ledger entries the signed head covers (``None`` without a readable signed head)."""
    doc = read_head(folder)
    try:
        return int(doc["head"]["entries"]) if doc else None
    except (KeyError, TypeError, ValueError):
        return None


def head_hash(doc: dict[str, Any]) -> str:
    """SHA-256 of a signed head document (its canonical JSON): what the next head names as ``previous``."""
    return hashlib.sha256(canonical(doc)).hexdigest()


def sign_head(folder: Path, head: str, entries: int, signer: Signer) -> Path:
    """Sign the ledger head: the last entry's hash, the number of entries, a counter one above the previous
    signed head's and that head's hash (``previous``), so heads form a chain an anchor can pin."""
    old = read_head(folder)
    counter, previous = 1, None
    if old is not None:
        try:
            counter = int(old["head"].get("counter", 0)) + 1
        except (TypeError, ValueError):
            counter = 1
        previous = head_hash(old)
    body = {
        "ledger_head": head,
        "entries": entries,
        "counter": counter,
        "previous": previous,
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    path = folder / HEAD_FILE
    atomic_write_text(path, render({"head": body, **signer.sign(body)}))
    return path


def verify_head(
    folder_or_file: str | Path, chain_hashes: list[str], public_key: str | Path | Any, *, strict: bool = False
) -> tuple[bool, str]:
    """Check the signed head against the ledger's entry hashes: the signature must verify and the signed
    head must be the hash of entry ``entries - 1``. Later, unsigned entries are reported, or refused when
    ``strict`` (an auditor's reading: every entry must be covered by a signature)."""
    key = load_public_key(public_key) if isinstance(public_key, str | Path) else public_key
    p = Path(folder_or_file)
    p = p / HEAD_FILE if p.is_dir() else p
    if not p.is_file():
        raise CheckpointError(f"no signed ledger head at {p}; deletions signed with --signing-key write one")
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return False, f"signed head is not valid JSON: {exc}"
    if not isinstance(doc, dict):
        return False, "signed head is not a JSON object"
    ok, why = _check(doc, doc.get("head"), key)
    if not ok:
        return False, f"signed head: {why}"
    n, head = int(doc["head"]["entries"]), doc["head"]["ledger_head"]
    if len(chain_hashes) < n:
        return False, f"the signed head covers {n} entries but the ledger has {len(chain_hashes)}: entries were removed"
    if chain_hashes[n - 1] != head:
        return False, "entry hashes differ from the signed head: the ledger was rewritten"
    extra = len(chain_hashes) - n
    if extra and strict:
        return False, f"{extra} ledger entries after the signed head are not covered by a signature"
    return True, "ok" if not extra else f"ok ({extra} later entries not yet covered by a signature)"
