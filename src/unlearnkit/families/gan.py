"""The GAN family: the bundled DCGAN-style miniature (:class:`unlearnkit.gan.models.GAN`).

``forget`` holds the negative samples (images that show the feature to stop generating), ``retain`` the
positive samples (the GAN's own samples without it); both are image tensors shaped ``(N, C, H, W)`` like the
GAN's output in [-1, 1], or datasets of images (a ``datasets.Dataset`` is rescaled from [0, 255]; a torch
``Dataset`` is stacked). No options of its own. Methods: :mod:`unlearnkit.gan.methods`.
"""

from __future__ import annotations

import torch

from ..data.tensors import TensorData
from ..errors import DataError
from ..family import Call, Family, register_family
from ..methods.base import Method, UnlearnRequest
from ..methods.context import Outcome, RunContext
from ..result import UnlearnResult


def detect(model: object) -> bool:
    from ..gan.models import GAN

    return isinstance(model, GAN)


def _images(images: object, what: str, role: str) -> TensorData:
    from ..gan.adapt_unlearn import as_images

    images = as_images(images, what)  # a datasets.Dataset or torch Dataset of images: stacked, in [-1, 1]
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        raise DataError(
            f"for a GAN, {what} must be an image tensor shaped (N, C, H, W) ({role}); got {type(images).__name__}"
            + (f" with {images.ndim} dimensions" if isinstance(images, torch.Tensor) else "")
        )
    return TensorData(images, torch.zeros(len(images), dtype=torch.long))


def request(call: Call, algo: Method) -> UnlearnRequest:
    return UnlearnRequest(
        original=call.model,
        forget=_images(call.forget, "forget", "the negative samples: images that show the feature"),
        retain=_images(call.retain, "retain", "the positive samples: the GAN's images without the feature"),
        task="generation",
        device=call.device,
        progress=call.progress,
        callbacks=call.callbacks,
    )


def finish(
    call: Call, algo: Method, request: UnlearnRequest, outcome: Outcome, ctx: RunContext, seconds: float
) -> UnlearnResult:
    """The method's record (repulsion distance per generator step, seconds per stage) is the report."""
    return UnlearnResult(outcome.model.eval(), algo.name, algo.hparams(), seconds, dict(outcome.report))


FAMILY = register_family(
    Family(
        name="gan",
        methods_module="unlearnkit.gan.methods",
        default_method="adapt-unlearn",
        detect=detect,
        request=request,
        finish=finish,
        describes="the bundled GAN (unlearnkit.gan.models.GAN)",
    )
)
