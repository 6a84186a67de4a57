"""Inception-feature FID from a local feature extractor, without torchvision.

Follows clean-fid's default ``"clean"`` mode (GaParmar/clean-fid at commit e88c4d6):

- ``cleanfid/resize.py`` ``make_resizer("PIL", False, "bicubic", (299, 299))``: every channel of an image with
  values in [0, 255] is resized on its own as a 32-bit float PIL image (mode ``"F"``) with bicubic filtering,
  clipped to [0, 255] (bicubic overshoots at edges), without quantising to uint8; grey images become RGB
  first, as ``Image.open(...).convert("RGB")`` does in ``cleanfid/utils.py`` (the three channels are equal, so
  one is resized and repeated);
- ``cleanfid/inception_torchscript.py`` ``InceptionV3W.forward``: the resized batch is normalised as
  ``(x − 128) / 128`` and passed through the TorchScript model's ``layers``; the output, reshaped to one row per
  image, is the feature (2048-d pool features for ``inception-2015-12-05.pt``, the StyleGAN2-ADA metrics file);
- ``cleanfid/fid.py`` ``fid_from_feats``: mean and covariance of each feature set, then the Fréchet distance —
  here :func:`unlearnkit.diffusion.metrics.frechet_distance`, the same function as the evaluator-feature
  ``fd_eval`` (Tr((Σ_a Σ_b)^½) from the eigenvalues of Σ_a^½ Σ_b Σ_a^½ instead of ``scipy.linalg.sqrtm``;
  they agree to rounding on the test's inputs).

Nothing is downloaded: pass the path of the TorchScript file you have (``torch.jit.load``), or any
``nn.Module`` that maps a batch ``(N, 3, size, size)`` normalised to [−1, 1] to one feature row per image.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import CheckpointError, ConfigError
from .metrics import frechet_distance

#: the file name of the TorchScript Inception network used by clean-fid and StyleGAN2-ADA's metrics
INCEPTION_FILE = "inception-2015-12-05.pt"


def load_feature_extractor(source: str | Path | nn.Module) -> nn.Module:
    """A feature extractor from a TorchScript file (or a folder holding ``inception-2015-12-05.pt``), or the
    module itself. A TorchScript module with a ``layers`` child is used as clean-fid uses the Inception file:
    ``layers`` receives the normalised 299×299 batch."""
    if isinstance(source, nn.Module):
        return source.eval()
    path = Path(source).expanduser()
    if path.is_dir():
        path = path / INCEPTION_FILE
    if not path.is_file():
        raise CheckpointError(
            f"no Inception feature extractor at {path}; unlearnkit downloads nothing — put the TorchScript file "
            f"{INCEPTION_FILE} (clean-fid / StyleGAN2-ADA metrics) there, or pass an nn.Module"
        )
    try:
        with warnings.catch_warnings():  # the file format is TorchScript; torch.jit.load is the only reader
            warnings.simplefilter("ignore", DeprecationWarning)
            module = torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:  # torch raises RuntimeError / ValueError subclasses for non-TorchScript files
        raise CheckpointError(f"{path} is not a TorchScript file that torch.jit.load can read: {exc}") from exc
    return module.eval()


def clean_resize(images: torch.Tensor, size: int = 299) -> torch.Tensor:
    """clean-fid's "clean" resize: each channel of each image (values in [0, 255], shape (N, C, H, W), C = 1 or
    3) resized to ``size``×``size`` as a float PIL image with bicubic filtering, no quantisation; grey images
    are repeated to three channels. Returns float32 (N, 3, size, size)."""
    from PIL import Image

    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ConfigError(f"images must be shaped (N, 1 or 3, H, W), got {tuple(images.shape)}")
    arr = images.detach().cpu().float().numpy()
    out = np.empty((arr.shape[0], arr.shape[1], size, size), dtype=np.float32)
    for i in range(arr.shape[0]):
        for c in range(arr.shape[1]):
            img = Image.fromarray(np.ascontiguousarray(arr[i, c], dtype=np.float32))
            out[i, c] = np.asarray(img.resize((size, size), resample=Image.BICUBIC), dtype=np.float32).clip(0, 255)
    resized = torch.from_numpy(out)
    return resized.repeat(1, 3, 1, 1) if resized.shape[1] == 1 else resized


class InceptionFID:
    """FID between two image sets in a feature extractor's space, preprocessed as clean-fid's "clean" mode.

    ``images`` passed in are in [0, 1] (the concept data's and the generators' range) and scaled to [0, 255]
    first, as clean-fid expects."""

    def __init__(
        self,
        extractor: str | Path | nn.Module,
        *,
        size: int = 299,
        batch_size: int = 32,
        device: str | torch.device | None = None,
    ) -> None:
        self.module = load_feature_extractor(extractor)
        self.size, self.batch_size = size, batch_size
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.module.to(self.device)
        layers = getattr(self.module, "layers", None)
        self._forward = layers if isinstance(layers, nn.Module) else self.module

    @torch.no_grad()
    def features(self, images: torch.Tensor) -> np.ndarray:
        """One feature row per image (float64)."""
        if len(images) == 0:
            raise ConfigError("no images given; the FID needs at least 2 images per set")
        rows = []
        for i in range(0, len(images), self.batch_size):
            x = clean_resize(images[i : i + self.batch_size].clamp(0, 1) * 255.0, self.size)
            x = ((x - 128.0) / 128.0).to(self.device)
            rows.append(self._forward(x).reshape(len(x), -1).double().cpu().numpy())
        return np.concatenate(rows)

    def fid(self, a: torch.Tensor, b: torch.Tensor) -> float:
        """FID between image sets ``a`` and ``b`` (same Fréchet distance as ``fd_eval``)."""
        return frechet_distance(self.features(a), self.features(b))
