"""Sample grids as PNG files, written with zlib only (no imaging library needed)."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..checkpoint import atomic_write_bytes
from ..errors import ConfigError


def png_bytes(pixels: np.ndarray) -> bytes:
    """Encode uint8 pixels shaped (H, W) (grey) or (H, W, 3) (RGB) as a PNG file."""
    if pixels.dtype != np.uint8 or pixels.ndim not in (2, 3):
        raise ConfigError(f"PNG pixels must be uint8 (H, W) or (H, W, 3), got {pixels.dtype} {pixels.shape}")
    h, w = pixels.shape[:2]
    colour = 0 if pixels.ndim == 2 else 2
    rows = pixels.reshape(h, -1)
    raw = b"".join(b"\x00" + rows[i].tobytes() for i in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", w, h, 8, colour, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def grid_pixels(rows: Sequence[torch.Tensor], *, scale: int = 4, pad: int = 2) -> np.ndarray:
    """Tile rows of images in [-1, 1] (each row (n, C, H, W), C = 1 or 3) into one uint8 picture, upscaled
    ``scale``× by pixel repetition, separated by ``pad`` pixels of mid grey."""
    if not rows:
        raise ConfigError("no images to put in a grid")
    c, h, w = rows[0].shape[1:]
    ncols = max(len(r) for r in rows)
    hh, ww = h * scale, w * scale
    canvas = np.full((len(rows) * (hh + pad) + pad, ncols * (ww + pad) + pad, c), 128, dtype=np.uint8)
    for i, row in enumerate(rows):
        img = ((row.detach().cpu().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()
        img = img.repeat(scale, axis=2).repeat(scale, axis=3)
        for j in range(len(img)):
            y, x = pad + i * (hh + pad), pad + j * (ww + pad)
            canvas[y : y + hh, x : x + ww] = img[j].transpose(1, 2, 0)
    return canvas[..., 0] if c == 1 else canvas


def save_grid(path: str | Path, rows: Sequence[torch.Tensor], *, scale: int = 4) -> Path:
    """Write a PNG grid of ``rows`` (see :func:`grid_pixels`) atomically; returns the path."""
    path = Path(path)
    atomic_write_bytes(path, png_bytes(grid_pixels(rows, scale=scale)))
    return path
