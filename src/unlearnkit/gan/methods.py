"""GAN unlearning methods (family ``"gan"``): Adapt-then-Unlearn as a registered :class:`Method`.

``forget`` holds the negative samples (images that show the feature), ``retain`` the positive samples (the
GAN's own samples without it: :func:`~unlearnkit.gan.adapt_unlearn.select_positives`); both are image tensors
shaped like the GAN's output. The two stages are those of :mod:`unlearnkit.gan.adapt_unlearn`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from torch import nn

from ..errors import ModelError
from ..methods.base import Method, UnlearnRequest, hp
from ..methods.context import Outcome, RunContext
from ..registry import register
from .adapt_unlearn import REPULSIONS, AdaptUnlearnConfig, adapt_then_unlearn
from .models import GAN
from .train import REFERENCE_EMA_DECAY, AdversarialRecipe


@register
@dataclass(kw_only=True, frozen=True)
class AdaptUnlearn(Method):
    """Adapt-then-Unlearn (Tiwary, Guha, Panda & Prathosh, TMLR 2025, arXiv:2309.14054; public code
    atriguha/Adapt_Unlearn, ``Negative_Adaptation/EWC_ADAPT_MNIST/stylegan2_ewc.py`` for stage 1 and
    ``Unlearning/Unlearning_MNIST/train_different_losses.py`` for stage 2), with the reference's defaults:
    ``n_adapted`` models adapted to the negatives under the EWC penalty, then the pretrained GAN trained on the
    positives with the ``repulsion`` term (``None``: the fine-tuning baseline). The repulsion distance at every
    generator step and the seconds of each stage go to ``result.report``."""

    name: ClassVar[str] = "adapt-unlearn"
    domain: ClassVar[str] = "gan"
    tasks: ClassVar[tuple[str, ...]] = ("generation",)
    reads_labels: ClassVar[bool] = False
    budgeted: ClassVar[bool] = False
    probed: ClassVar[bool] = False
    needs_retain: ClassVar[bool] = True

    repulsion: str | None = hp("el2", choices=(*REPULSIONS, None), doc="el2, nl2, il2, or None (fine-tuning)")
    gamma: float = hp(1.0, low=0, low_open=True, doc="strength of the repulsion (1 / val_factor)")
    ewc_lambda: float = hp(5e8, low=0, doc="weight of the EWC penalty in stage 1")
    fisher_samples: int = hp(32, low=1, doc="latent codes of the Fisher information")
    n_adapted: int = hp(2, low=1, doc="adapted models of stage 1")
    ema_decay: float | None = hp(REFERENCE_EMA_DECAY, doc="decay of the generator average handed back (None: off)")
    adapt_steps: int = hp(2000, low=1, doc="adversarial steps of stage 1")
    unlearn_steps: int = hp(3000, low=1, doc="adversarial steps of stage 2")
    batch_size: int = hp(16, low=1, doc="batch size of both stages")
    lr: float = hp(2e-3, low=0, low_open=True, doc="learning rate of both stages")

    def config(self) -> AdaptUnlearnConfig:
        """The stages' configuration (validated there too: the ``ema_decay`` range)."""
        return AdaptUnlearnConfig(
            repulsion=self.repulsion,
            gamma=self.gamma,
            ewc_lambda=self.ewc_lambda,
            fisher_samples=self.fisher_samples,
            n_adapted=self.n_adapted,
            ema_decay=self.ema_decay,
            adapt=AdversarialRecipe(steps=self.adapt_steps, batch_size=self.batch_size, lr=self.lr),
            unlearn=AdversarialRecipe(steps=self.unlearn_steps, batch_size=self.batch_size, lr=self.lr),
            seed=self.seed,
        )

    def __post_init__(self) -> None:
        super().__post_init__()
        self.config()

    def run(self, model: nn.Module, request: UnlearnRequest, ctx: RunContext) -> Outcome:
        if not isinstance(model, GAN):
            raise ModelError(
                f"{self.name} unlearns the bundled GAN (unlearnkit.gan.models.GAN), got {type(model).__name__}"
            )
        res = adapt_then_unlearn(
            model,
            request.forget.x,
            request.retain.x,
            self.config(),
            device=request.device,
            progress=request.progress,
        )
        record: dict[str, Any] = {"repulsion_distance": res.distance, "stage_seconds": res.seconds}
        return Outcome(res.gan, report=record)
