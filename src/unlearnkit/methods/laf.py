"""LAF: Label-Agnostic Forgetting — unlearning at the representation level without any label."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from ..data.tensors import Batches, Cycle, TensorData
from ..engine import Batch, Phase, Recipe, train
from ..models.utils import split_features
from ..runtime import seed_everything
from .base import Method, UnlearnRequest, hp, register
from .context import Outcome, RunContext


class EmbeddingVAE(nn.Module):
    """A small VAE over embedding vectors: ``dim → hidden → (μ, log σ²) ∈ R^latent → hidden → dim``."""

    def __init__(self, dim: int, hidden: int = 128, latent: int = 16) -> None:
        super().__init__()
        self.enc = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU())
        self.mu = nn.Linear(hidden, latent)
        self.logvar = nn.Linear(hidden, latent)
        self.dec = nn.Sequential(nn.Linear(latent, hidden), nn.ReLU(), nn.Linear(hidden, dim))

    def forward(self, e: torch.Tensor, sample: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h = self.enc(e)
        mu, logvar = self.mu(h), self.logvar(h).clamp(-10, 10)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if sample else mu
        return self.dec(z), mu, logvar

    def reconstruction_error(self, e: torch.Tensor) -> torch.Tensor:
        """Per-example mean squared reconstruction error (decoding the posterior mean)."""
        return (self(e, sample=False)[0] - e).pow(2).mean(dim=1)


def vae_loss(vae: EmbeddingVAE, batch: Batch) -> torch.Tensor:
    e = batch[0]
    rec, mu, logvar = vae(e)
    kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(dim=1).mean() / e.shape[1]
    return (rec - e).pow(2).mean() + kl


class Paired:
    """Each retain batch paired with the next forget batch (the forget set is cycled): yields (x_r, x_f)."""

    def __init__(self, retain: Batches, forget: Batches) -> None:
        self.retain, self.forget = retain, Cycle(forget)

    def __len__(self) -> int:
        return len(self.retain)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for x_r, _ in self.retain:
            yield x_r, self.forget.next()[0]


def _squash(err: torch.Tensor) -> torch.Tensor:
    return torch.exp(err / (err + 1.0))


class ExtractorUnlearningLoss:
    """L_UE = mean exp(ε_r/(ε_r+1)) over retain embeddings (reconstructed by the retain VAE) − the same
    for forget embeddings under the forget VAE: keep D_r's representation, leave D_f's."""

    def __init__(self, features, vae_r: EmbeddingVAE, vae_f: EmbeddingVAE) -> None:
        self.features, self.vae_r, self.vae_f = features, vae_r, vae_f

    def __call__(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        x_r, x_f = batch
        e_r, e_f = self.features(x_r).flatten(1), self.features(x_f).flatten(1)
        return (
            _squash(self.vae_r.reconstruction_error(e_r)).mean() - _squash(self.vae_f.reconstruction_error(e_f)).mean()
        )


class AlignmentLoss:
    """L_RA: a cosine-similarity contrastive loss at temperature τ; each retain embedding's positive is the
    frozen original's embedding of the same input, its negatives are the current forget embeddings."""

    def __init__(self, features, reference_features, temperature: float) -> None:
        self.features, self.reference, self.temperature = features, reference_features, temperature

    def __call__(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        x_r, x_f = batch
        z = nn.functional.normalize(self.features(x_r).flatten(1), dim=1)
        with torch.no_grad():
            z0 = nn.functional.normalize(self.reference(x_r).flatten(1), dim=1)
        neg = nn.functional.normalize(self.features(x_f).flatten(1), dim=1)
        pos = (z * z0).sum(dim=1, keepdim=True)
        logits = torch.cat([pos, z @ neg.T], dim=1) / self.temperature
        return nn.functional.cross_entropy(logits, torch.zeros(len(z), dtype=torch.long, device=z.device))


@torch.no_grad()
def embed(features, data: TensorData, device: torch.device, batch_size: int = 512) -> torch.Tensor:
    return torch.cat(
        [features(data.x[i : i + batch_size].to(device)).flatten(1) for i in range(0, len(data), batch_size)]
    )


@register
@dataclass(kw_only=True, frozen=True)
class LabelAgnosticForgetting(Method):
    """LAF (Shen et al., "Label-Agnostic Forgetting: A Supervision-Free Unlearning in Deep Models",
    ICLR 2024). No label of D_f or D_r is ever read.

    Two small VAEs are fitted on the original feature extractor's embeddings of D_r and of D_f. Then each
    epoch alternates (1) extractor unlearning, minimising Σ exp(ε_r/(ε_r+1)) over retain embeddings minus
    the same for forget embeddings (ε = the VAE's reconstruction MSE), and (2) representation alignment, a
    cosine contrastive loss at temperature ``temperature`` pulling each retain embedding to the frozen
    original's and away from the forget embeddings. Only the extractor is trained.

    The model must declare its extractor: a ``features`` attribute (input → embedding) and a ``classifier``
    module with ``model(x) == model.classifier(model.features(x))`` (the bundled ``mlp``, ``cnn`` and
    ``resnet18`` do); otherwise :class:`~unlearnkit.errors.ModelError` says how to add them.
    """

    name = "laf"
    needs_retain = True
    reference_epochs = 2
    reads_labels = False

    epochs: int = hp(2, low=1)
    lr: float = hp(1e-4, low=0, low_open=True)
    optimizer: str = hp("adam", choices=("sgd", "adam", "adamw"))
    weight_decay: float = hp(0.0, low=0)
    batch_size: int = hp(64, low=1)
    temperature: float = hp(1.0, low=0, low_open=True, doc="temperature of the contrastive alignment")
    vae_epochs: int = hp(20, low=1)
    vae_lr: float = hp(1e-3, low=0, low_open=True)
    vae_latent: int = hp(16, low=1)

    def run(self, model: nn.Module, request: UnlearnRequest, ctx: RunContext) -> Outcome:
        features, head = split_features(model)
        reference, _ = split_features(request.frozen_original())
        dev = request.device
        # labels are dropped here and never reach any loss
        retain_x = TensorData(request.retain.x, torch.zeros(len(request.retain)))
        forget_x = TensorData(request.forget.x, torch.zeros(len(request.forget)))
        e_r, e_f = embed(reference, retain_x, dev), embed(reference, forget_x, dev)
        vaes = []
        for i, e in enumerate((e_r, e_f)):
            seed_everything(self.seed + i)
            vae = EmbeddingVAE(e.shape[1], latent=self.vae_latent)
            recipe = Recipe(epochs=self.vae_epochs, lr=self.vae_lr, optimizer="adam", weight_decay=0.0)
            data = TensorData(e.cpu(), torch.zeros(len(e)))
            train(
                vae,
                Phase("vae", self.batches(data, salt=10 + i), vae_loss),
                recipe,
                device=dev,
                seed=self.seed + i,
                progress=request.progress,
                desc=f"{self.name}-vae",
            )
            vaes.append(vae.eval().requires_grad_(False))
        pairs = Paired(self.batches(retain_x), self.batches(forget_x, salt=1))
        phases = [
            Phase("unlearn-extractor", pairs, ExtractorUnlearningLoss(features, *vaes)),
            Phase("align", pairs, AlignmentLoss(features, reference, self.temperature)),
        ]
        head_ids = {id(p) for p in head.parameters()}
        owner = features if isinstance(features, nn.Module) else model
        extractor = [p for p in owner.parameters() if id(p) not in head_ids]
        ctx.fit(self, model, phases, request, params=extractor)
        return Outcome(model)
