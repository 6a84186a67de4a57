"""A small DCGAN-style generator and discriminator for 1×8×8 digits and 1×28×28 Fashion-MNIST.

DCGAN (Radford et al., 2016, "Unsupervised Representation Learning with Deep Convolutional Generative
Adversarial Networks"): a linear projection of the latent code to a coarse feature map, two stride-2
transposed convolutions up to the image size, ``tanh`` output; the discriminator mirrors it with stride-2
convolutions and LeakyReLU(0.2). Deliberately without BatchNorm, so that sampling does not depend on the
train/eval mode and the generator is a plain function of its parameters (the parameter distances the
Adapt-then-Unlearn repulsion works on are then the whole story).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from ..errors import ConfigError, ModelError


@dataclass
class GANConfig:
    """Shape of the images, width of the latent code and of the networks."""

    image_shape: tuple[int, int, int] = (1, 8, 8)
    z_dim: int = 32
    width: int = 32

    def __post_init__(self) -> None:
        self.image_shape = tuple(int(v) for v in self.image_shape)  # type: ignore[assignment]
        if len(self.image_shape) != 3:
            raise ModelError(f"image_shape must be (C, H, W), got {self.image_shape}")
        c, h, w = self.image_shape
        if c < 1:
            raise ModelError(f"image_shape needs at least one channel, got {self.image_shape}; use (1, H, W) for grey")
        if h != w or h % 4 or h < 8:
            raise ModelError(f"the GAN needs square images with a side divisible by 4 and >= 8, got {h}×{w}")
        if self.z_dim < 1 or self.width < 1:
            raise ConfigError(f"z_dim and width must be >= 1, got {self.z_dim} and {self.width}")

    def to_dict(self) -> dict:
        return asdict(self)


class Generator(nn.Module):
    """z (N, z_dim) → images (N, C, H, W) in [-1, 1]."""

    def __init__(self, cfg: GANConfig) -> None:
        super().__init__()
        c, h, _ = cfg.image_shape
        self.side = h // 4
        self.top = 2 * cfg.width
        self.project = nn.Linear(cfg.z_dim, self.top * self.side * self.side)
        self.body = nn.Sequential(
            nn.ReLU(),
            nn.ConvTranspose2d(self.top, cfg.width, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.ConvTranspose2d(cfg.width, c, 4, stride=2, padding=1),
            nn.Tanh(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(self.project(z).view(len(z), self.top, self.side, self.side))


class Discriminator(nn.Module):
    """images (N, C, H, W) → one real/fake logit per image, shaped (N,)."""

    def __init__(self, cfg: GANConfig) -> None:
        super().__init__()
        c, h, _ = cfg.image_shape
        side = h // 4
        self.body = nn.Sequential(
            nn.Conv2d(c, cfg.width, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(cfg.width, 2 * cfg.width, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2),
            nn.Flatten(),
            nn.Linear(2 * cfg.width * side * side, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).squeeze(1)


class GAN(nn.Module):
    """A generator and its discriminator in one module (one checkpoint, one engine run).

    ``forward(z)`` is the generator, so the engine's output checks and :meth:`sample` see images.
    """

    def __init__(self, cfg: GANConfig | None = None) -> None:
        super().__init__()
        self.config = cfg or GANConfig()
        self.generator = Generator(self.config)
        self.discriminator = Discriminator(self.config)

    @property
    def z_dim(self) -> int:
        return self.config.z_dim

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.generator(z)

    def noise(self, n: int, *, seed: int | None = None, device: torch.device | str | None = None) -> torch.Tensor:
        """``n`` latent codes N(0, I); seeded when ``seed`` is given (on the CPU, then moved)."""
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        z = torch.randn(n, self.z_dim, generator=gen)
        return z.to(device or next(self.parameters()).device)

    @torch.no_grad()
    def sample(self, n: int, *, seed: int = 0, batch_size: int = 1024) -> torch.Tensor:
        """``n`` generated images on the CPU (the same ``seed`` gives the same latent codes)."""
        if n < 1:
            raise ConfigError(f"the number of samples must be >= 1, got {n}")
        was = self.training
        self.eval()
        z = self.noise(n, seed=seed)
        out = torch.cat([self.generator(z[i : i + batch_size]).cpu() for i in range(0, n, batch_size)])
        self.train(was)
        return out


def generator_distance(a: GAN, b: GAN) -> float:
    """Euclidean distance ‖θ_a − θ_b‖ between two generators' parameter vectors."""
    sq = 0.0
    for p, q in zip(a.generator.parameters(), b.generator.parameters(), strict=True):
        sq += float(((p.detach().cpu() - q.detach().cpu()) ** 2).sum())
    return sq**0.5
