"""The output discipline: how every command writes what it makes, in every family.

One set of rules, used by classifier, exact, LM, diffusion, GAN, audit and report commands alike:

* **Checked before any work** (:func:`check_output_folder`, :func:`check_output_file`): an ``--out`` that is,
  contains or lies inside an input (model folder, data, store, cache), resolved through symlinks, is refused;
  so is writing into or inside a folder that holds a model (an original checkpoint is never replaced by
  anything else), and an ``--out`` that names an existing file unless ``--overwrite`` is given.
* **Staged and swapped** (:func:`staged_folder`): everything is written into a sibling temporary folder
  ``.NAME.PID-XXXX.tmp``, fsynced, marked ready by renaming it to ``.NAME.PID-XXXX.new``, then renamed to
  ``NAME``. Replacing an existing folder sets the old one aside (``.NAME.PID-XXXX.old``), renames the new one
  in, and only then deletes the old one, so at every instant one complete version exists.
* **Recovered on the next run** (:func:`recover`): when ``NAME`` is missing, a ready new version is renamed
  in (the swap is finished), else a set-aside old one is put back (the swap is undone); temporaries left by
  dead processes are removed.
* Files get the modes a plain ``open`` would give them (``0666 & ~umask``; folders ``0777 & ~umask``).

Single files (metrics JSON, key files) are written with :func:`atomic_write_bytes`: a temporary file beside
the final one, fsynced, renamed over it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from .errors import CheckpointError, storage_errno, storage_error

#: ``STAGE`` (``ready``, ``aside``, ``swapped``): kill the process with SIGKILL when a swap reaches it (tests)
KILL_ENV = "UNLEARNKIT_OUTPUTS_KILL_AT"
STAGES = ("ready", "aside", "swapped")

#: what every writing command's ``--help`` says about its output (the README's "Outputs" section says more)
HELP_NOTE = (
    "staged and swapped in atomically; never an input, inside an input or inside a model; see 'Outputs' in README.md"
)

#: files whose presence makes a folder a model: weights (classifier/GAN/diffusion checkpoints, Hugging Face
#: models), diffusers pipelines, unlearnkit's LM record, exact-unlearning models; a ``meta.json`` counts when it
#: records a ``kind`` (a ``config.json`` alone does not: many projects keep one at their root)
MODEL_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "model_index.json",
    "unlearnkit.json",
    "exact.json",
    "ledger.jsonl",
)

#: files whose presence makes a folder an earlier unlearnkit results folder (replaced as a whole)
RESULT_FILES = (
    "qa.jsonl",
    "people.jsonl",
    "results.json",
    "audit.json",
    "tune.json",
    "report.html",
    "report.md",
    "predictions.npz",
    "results.csv",
    "metrics.json",
)


def fault_point(stage: str) -> None:
    """Kill this process (SIGKILL: no cleanup runs) when :data:`KILL_ENV` names ``stage``; a no-op otherwise."""
    if os.environ.get(KILL_ENV) == stage:
        os.kill(os.getpid(), signal.SIGKILL)


def umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _tag(name: str) -> str:
    """The prefix of this process's temporaries for ``name``: ``.NAME.PID-``."""
    return f".{name}.{os.getpid()}-"


def _temp_file(folder: Path, name: str) -> tuple[int, str]:
    """A temporary file beside the final one, with the permissions a plain ``open`` would give it."""
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=_tag(name), suffix=".tmp")
    os.chmod(tmp, 0o666 & ~umask())
    return fd, tmp


def atomic_write_bytes(path: str | Path, data: bytes, *, mode: int | None = None) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder, fsync and an atomic rename.
    ``mode`` (e.g. ``0o600`` for a private key) replaces the umask-derived default."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _temp_file(path.parent, path.name)
    try:
        if mode is not None:
            os.chmod(tmp, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:  # a full disk or a file-size limit is one line; anything else is passed on
        if storage_errno(exc) is None:
            raise
        raise storage_error(exc, path) from exc
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def _json_default(o: Any) -> Any:
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, Path) or type(o).__name__ == "device":
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, default=_json_default) + "\n")


def fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory handles
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


# ------------------------------------------------------------------------------------------------ recovery


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - someone else's live process
        return True
    return True


def _mtime(p: Path) -> float:
    try:
        return p.lstat().st_mtime
    except OSError:  # removed meanwhile
        return 0.0


def _leftovers(path: Path) -> dict[str, list[Path]]:
    """Temporaries of ``path`` left by processes that are gone, by kind (``tmp``, ``new``, ``old``)."""
    found: dict[str, list[Path]] = {"tmp": [], "new": [], "old": []}
    parent = path.parent
    if not parent.is_dir():
        return found
    rand = r"[a-z0-9_]{8}"  # tempfile's random part
    tagged = re.compile(re.escape(f".{path.name}.") + r"(\d+)-" + rand + r"\.(tmp|new|old)$")
    legacy_tmp = re.compile(re.escape(f".{path.name}.") + rand + r"\.tmp$")
    legacy_old = re.compile(re.escape(f".{path.name}.old-") + r"[^/]*$")
    try:
        entries = sorted(parent.iterdir(), key=_mtime)
    except OSError:  # an unreadable folder: nothing to recover here (writing will say what is wrong)
        return found
    for entry in entries:
        m = tagged.match(entry.name)
        if m:
            if not _pid_alive(int(m.group(1))):
                found[m.group(2)].append(entry)
        elif legacy_old.match(entry.name):
            found["old"].append(entry)
        elif legacy_tmp.match(entry.name):
            found["tmp"].append(entry)
    return found


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        with suppress(FileNotFoundError):
            p.unlink()


def recover(path: str | Path) -> None:
    """Finish or undo a swap of ``path`` that a crash interrupted, and remove the temporaries it left.

    When ``path`` is missing, the newest *ready* new version (fully written and fsynced) is renamed in —
    the swap is finished — or, when there is none, the newest set-aside old version is put back — the swap is
    undone. Staging folders that never became ready, and every other leftover of a dead process, are removed.
    Temporaries of processes still running are left alone."""
    path = Path(path)
    left = _leftovers(path)
    if not any(left.values()):
        return
    if not os.path.lexists(path):
        for kind in ("new", "old"):
            if left[kind]:
                os.replace(left[kind].pop(), path)
                fsync_dir(path.parent)
                break
    for entries in left.values():
        for p in entries:
            _remove(p)


# ------------------------------------------------------------------------------------------------ staging


def _settle(tmp: Path) -> None:
    """Give every staged file and folder the umask's modes and fsync it."""
    fmode, dmode = 0o666 & ~umask(), 0o777 & ~umask()
    for f in sorted(tmp.rglob("*"), key=lambda p: -len(p.parts)):
        if f.is_symlink():
            continue
        if f.is_dir():
            os.chmod(f, dmode)
            fsync_dir(f)
        elif f.is_file():
            os.chmod(f, fmode)
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
    os.chmod(tmp, dmode)
    fsync_dir(tmp)


@contextmanager
def staged_folder(path: str | Path, *, replace: bool = False) -> Iterator[Path]:
    """Write a folder atomically: yield an empty temporary folder beside ``path``; when the block succeeds,
    its files are fsynced and the folder takes the name ``path`` by renames. On any error (Ctrl-C included)
    the temporary folder is removed and ``path`` is left as it was.

    An existing ``path`` is swapped out when ``replace`` is true (set aside, the new folder renamed in, the old
    one deleted; a crash in between is finished or undone by :func:`recover` on the next run); otherwise the
    new files are moved into it one by one, each with an atomic rename."""
    path = Path(path)
    parent = path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        recover(path)
        tmp = Path(tempfile.mkdtemp(dir=parent, prefix=_tag(path.name), suffix=".tmp"))
    except OSError as exc:
        raise CheckpointError(f"cannot write {path}: {exc}; choose a folder you can write to") from exc
    ready = tmp.with_name(tmp.name[: -len(".tmp")] + ".new")
    try:
        try:
            yield tmp  # errors of the block propagate as they are; the temporary folder goes in ``finally``
        except Exception as exc:  # except a full disk or a file-size limit, which is one line
            if storage_errno(exc) is None:
                raise
            raise storage_error(exc, path) from exc
        _swap_in(tmp, ready, path, replace)
    finally:
        for p in (tmp, ready):
            if p.exists():
                shutil.rmtree(p, ignore_errors=True)


def _swap_in(tmp: Path, ready: Path, path: Path, replace: bool) -> None:
    parent = path.parent
    try:
        _settle(tmp)
        os.replace(tmp, ready)  # complete and durable: from here on recovery finishes the swap
        fsync_dir(parent)
        fault_point("ready")
        if not os.path.lexists(path) or (path.is_dir() and not path.is_symlink() and not any(path.iterdir())):
            os.replace(ready, path)  # an empty folder is replaced in the same rename
        elif replace:
            aside = tmp.with_name(tmp.name[: -len(".tmp")] + ".old")
            os.replace(path, aside)
            fsync_dir(parent)
            fault_point("aside")
            os.replace(ready, path)
            fsync_dir(parent)
            fault_point("swapped")
            _remove(aside)
        else:
            for f in sorted(ready.iterdir()):
                target = path / f.name
                if f.is_dir() and target.is_dir() and not target.is_symlink():
                    shutil.rmtree(target)
                os.replace(f, target)
            fsync_dir(path)
        fsync_dir(parent)
    except OSError as exc:
        aside = tmp.with_name(tmp.name[: -len(".tmp")] + ".old")
        if not os.path.lexists(path) and aside.exists():
            os.replace(aside, path)  # the new folder could not be renamed in: put the old one back
        if storage_errno(exc) is not None:
            raise storage_error(exc, path) from exc
        raise CheckpointError(f"could not write {path}: {exc}; free space or choose another --out") from exc


# ------------------------------------------------------------------------------------------------ checks


def _resolved(p: str | Path) -> Path:
    return Path(os.path.expanduser(str(p))).resolve()


def same_place(a: str | Path, b: str | Path) -> bool:
    """Whether two paths name the same place once symlinks are resolved."""
    return _resolved(a) == _resolved(b)


def holds_model(folder: Path) -> bool:
    """Whether ``folder`` holds a model of any family (see :data:`MODEL_FILES`)."""
    if not folder.is_dir():
        return False
    return any((folder / name).is_file() for name in MODEL_FILES) or stored_kind(folder) is not None


def stored_kind(path: str | Path) -> str | None:
    """The ``kind`` recorded in a folder's meta.json, or None when it has none or is unreadable."""
    try:
        data = json.loads((Path(path) / "meta.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return data.get("kind") if isinstance(data, dict) else None


def _check_inputs(out: str | Path, target: Path, inputs: Iterable[str | Path | None], flag: str = "--out") -> None:
    for given in inputs:
        if given is None or not str(given).strip():
            continue
        src = _resolved(given)
        if target == src:
            raise CheckpointError(
                f"{flag} {out} is the input {given}; choose another {flag} (inputs are never replaced)"
            )
        if target in src.parents:
            raise CheckpointError(
                f"{flag} {out} contains the input {given}, which writing it would remove; choose another {flag}"
            )
        if src in target.parents:
            raise CheckpointError(f"{flag} {out} is inside the input {given}; choose a place outside it")


def _check_not_in_model(out: str | Path, target: Path, flag: str = "--out") -> None:
    for folder in target.parents:
        if holds_model(folder):
            raise CheckpointError(f"{flag} {out} is inside the model folder {folder}; choose a place outside it")


def holds_private_key(path: str | Path) -> bool:
    """Whether file ``path`` is a PEM private key (a ``-----BEGIN ... PRIVATE KEY-----`` block in its first
    64 KiB): such a file is never replaced by an output."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(65536)
    except OSError:
        return False
    return b"-----BEGIN" in head and b"PRIVATE KEY-----" in head


def writable_parent(path: Path) -> None:
    """Raise :class:`CheckpointError` unless ``path`` can be created: its nearest existing ancestor is writable."""
    parent = _resolved(path).parent
    while not parent.exists():
        parent = parent.parent
    if not _writable(parent):
        raise CheckpointError(f"cannot create {path}: {parent} is not writable; choose a folder you can write to")


def _writable(folder: Path) -> bool:
    """Whether a folder can be created in ``folder`` (tried for real: permission bits do not tell for root,
    read-only mounts or special file systems)."""
    if not folder.is_dir():
        return False
    try:
        probe = tempfile.mkdtemp(dir=folder, prefix=".unlearnkit-write-test-")
    except OSError:
        return False
    os.rmdir(probe)
    return True


def check_output_folder(
    out: str | Path | None,
    *,
    overwrite: bool,
    inputs: Iterable[str | Path | None] = (),
    original: bool = False,
    results: bool = False,
) -> Path:
    """Validate an output folder *before* any work and return it as a :class:`~pathlib.Path`.

    Refused: an empty name; a path that is, contains or is inside one of ``inputs`` or inside any model
    folder (all resolved through symlinks); an existing file; a folder holding an original checkpoint unless
    ``original`` (a command that writes originals) and ``overwrite``; a folder holding any other model
    without ``overwrite`` (and always for ``results``); any other non-empty folder — except, with ``results``,
    an earlier results folder (one holding :data:`RESULT_FILES`), which the new results replace as a whole;
    and a place that cannot be written. Leftovers of an interrupted earlier write are recovered first."""
    if out is None or not str(out).strip():
        raise CheckpointError("the output folder is empty; give a new folder name, e.g. --out runs/new")
    path = Path(out)
    recover(path)
    target = _resolved(path)
    _check_inputs(out, target, inputs)
    _check_not_in_model(out, target)
    if path.exists():
        if not path.is_dir():
            raise CheckpointError(f"--out {out} exists and is not a folder; choose another --out")
        if holds_model(path):
            if stored_kind(path) == "original" and not original:
                raise CheckpointError(
                    f"--out {out} holds an original checkpoint, which is never replaced; choose another --out"
                )
            if results:
                raise CheckpointError(f"--out {out} holds a model, not results; choose another --out")
            if not overwrite:
                raise CheckpointError(
                    f"--out {out} already holds a checkpoint (a model); choose a new folder or pass --overwrite"
                )
        elif any(path.iterdir()):
            if not results:
                raise CheckpointError(
                    f"--out {out} is a non-empty folder that is not a checkpoint or model; choose a new folder"
                )
            if not any((path / name).exists() for name in RESULT_FILES):
                raise CheckpointError(
                    f"--out {out} is a non-empty folder that holds no unlearnkit results; choose a new folder"
                )
    writable_parent(path)
    return path


def check_output_file(
    out: str | Path | None,
    *,
    overwrite: bool,
    inputs: Iterable[str | Path | None] = (),
    flag: str = "--out",
    key: bool = False,
) -> Path:
    """Validate an output *file* before any work: not one of ``inputs`` nor inside one, never a file in a model
    folder, not a folder, an existing file only with ``overwrite`` and never a private key, even with
    ``overwrite`` (except for ``key``: ``keygen`` replacing a key with a new one), and a writable place.
    ``flag`` names the option in the messages."""
    if out is None or not str(out).strip():
        raise CheckpointError(f"the {flag} file name is empty; give a file name, e.g. {flag} metrics.json")
    path = Path(out)
    target = _resolved(path)
    _check_inputs(out, target, inputs, flag)
    _check_not_in_model(out, target, flag)
    if path.is_dir():
        raise CheckpointError(f"{flag} {out} is a folder; give a file name, e.g. {flag} {Path(out) / 'metrics.json'}")
    if path.exists() and not key and holds_private_key(path):
        raise CheckpointError(f"{flag} {out} is a private key, which is never replaced; choose another file name")
    if path.exists() and not overwrite:
        raise CheckpointError(f"{flag} {out} already exists; choose a new file name or pass --overwrite")
    writable_parent(path)
    return path


__all__ = [
    "KILL_ENV",
    "MODEL_FILES",
    "atomic_write_bytes",
    "atomic_write_text",
    "check_output_file",
    "check_output_folder",
    "fault_point",
    "holds_model",
    "holds_private_key",
    "recover",
    "same_place",
    "staged_folder",
    "stored_kind",
    "writable_parent",
    "write_json",
]
