"""Readers for the IDX format (MNIST, Fashion-MNIST) and the search / download of its files."""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import struct
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError

_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (optionally gzip-compressed) into a NumPy array."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError) as exc:
        raise DataError(f"could not read IDX file {path}: {exc}") from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
        raise DataError(f"{path} is not an IDX file (bad magic number); re-download it")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path} is truncated (header); re-download it")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = np.dtype(_DTYPES[raw[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        raise DataError(f"{path} is truncated or corrupt: {len(raw) - header} data bytes, expected {expected}")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(path: str | Path, array: np.ndarray) -> None:
    """Write ``array`` as an IDX file (gzip-compressed when ``path`` ends in .gz). Used for tests."""
    codes = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09, np.dtype(">i4"): 0x0C, np.dtype(">f4"): 0x0D}
    arr = np.asarray(array)
    arr = arr.astype(arr.dtype.newbyteorder(">")) if arr.dtype.itemsize > 1 else arr
    code = codes.get(np.dtype(arr.dtype))
    if code is None:
        raise DataError(f"cannot write dtype {arr.dtype} as IDX")
    payload = bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as fh:
        fh.write(payload)


@dataclass(frozen=True)
class IdxFile:
    """One file of an IDX dataset with the checksums that identify it (either may match)."""

    name: str
    sha256_gz: str | None = None  # of the canonical .gz archive
    sha256_raw: str | None = None  # of the decompressed content (survives recompression)


@dataclass(frozen=True)
class IdxSource:
    """Where an IDX dataset lives and how to recognise its files."""

    name: str
    url: str
    files: tuple[IdxFile, ...]
    debian_package: str | None = None


def _sha256(path: Path, decompress: bool = False) -> str:
    h = hashlib.sha256()
    opener = gzip.open if decompress else open
    with opener(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify(path: Path, spec: IdxFile) -> bool:
    """True when ``path`` matches one of ``spec``'s checksums (or ``spec`` has none)."""
    if spec.sha256_gz is None and spec.sha256_raw is None:
        return True
    if spec.sha256_gz is not None and _sha256(path) == spec.sha256_gz:
        return True
    return spec.sha256_raw is not None and _sha256(path, decompress=True) == spec.sha256_raw


def candidate_dirs(name: str, data_dir: str | Path | None) -> list[Path]:
    """Where to look, in order: ``data_dir`` (and ``data_dir/name``), ``$UNLEARNKIT_DATA`` (and its
    ``name`` sub-folder), then ``/usr/share/datasets/<name>``."""
    dirs: list[Path] = []
    for base in (data_dir, os.environ.get("UNLEARNKIT_DATA")):
        if base:
            dirs += [Path(base), Path(base) / name]
    dirs.append(Path("/usr/share/datasets") / name)
    return dirs


def _download(url: str, dest: Path, spec: IdxFile, timeout: float) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310
            shutil.copyfileobj(resp, out)
        if not verify(Path(tmp), spec):
            raise DataError(f"checksum mismatch for {url}; the download is corrupt or the file changed")
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def locate(source: IdxSource, data_dir: str | Path | None, *, download: bool = True, timeout: float = 30.0) -> Path:
    """The folder that holds all of ``source``'s files, downloading them into the first writable candidate
    when none has them and ``download`` is allowed. Raises :class:`DataError` saying where to put them."""
    dirs = candidate_dirs(source.name, data_dir)
    for d in dirs:
        if all((d / f.name).is_file() for f in source.files):
            return d
    if download:
        target = Path(data_dir or os.environ.get("UNLEARNKIT_DATA") or Path.home() / ".cache/unlearnkit/data")
        target = target / source.name
        try:
            for f in source.files:
                if not (target / f.name).is_file():
                    _download(source.url + f.name, target / f.name, f, timeout)
            return target
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            reason = f"download from {source.url} failed ({exc})"
        else:  # pragma: no cover
            reason = ""
    else:
        reason = "downloading is disabled"
    hint = f" or install the Debian package: apt-get install {source.debian_package}" if source.debian_package else ""
    raise DataError(
        f"{source.name}: files {', '.join(f.name for f in source.files)} not found in "
        f"{', '.join(map(str, dirs))}; {reason}. Put them in --data-dir or $UNLEARNKIT_DATA{hint}"
    )


def verify_dir(source: IdxSource, folder: Path) -> None:
    """Raise :class:`DataError` if a file in ``folder`` does not match its checksum."""
    for f in source.files:
        if not verify(folder / f.name, f):
            raise DataError(f"{folder / f.name} does not match the known {source.name} checksum; re-download it")


MNIST = IdxSource(
    "mnist",
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    (
        IdxFile("train-images-idx3-ubyte.gz", "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
        IdxFile("train-labels-idx1-ubyte.gz", "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
        IdxFile("t10k-images-idx3-ubyte.gz", "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
        IdxFile("t10k-labels-idx1-ubyte.gz", "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
    ),
)

FASHION_MNIST = IdxSource(
    "fashion-mnist",
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    (
        IdxFile(
            "train-images-idx3-ubyte.gz",
            sha256_raw="c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        ),
        IdxFile(
            "train-labels-idx1-ubyte.gz",
            sha256_raw="bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        ),
        IdxFile(
            "t10k-images-idx3-ubyte.gz",
            sha256_raw="5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        ),
        IdxFile(
            "t10k-labels-idx1-ubyte.gz",
            sha256_raw="0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        ),
    ),
    debian_package="dataset-fashion-mnist",
)
