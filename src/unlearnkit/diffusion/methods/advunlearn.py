"""AdvUnlearn: robust concept erasure by adversarial training of the text encoder."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ...data.tensors import Batches, Cycle, TensorData
from ...engine import Phase, Recipe, train
from ...methods.base import UnlearnRequest, hp, register
from ...methods.context import Outcome, RunContext
from ..attacks import ContinuousPrefix, attack_vocabulary, frozen_params
from ..schedule import sample_xt
from .common import DiffusionMethod
from .esd import ESDLoss


class AdvUnlearnLoss:
    """One outer step of ``train-scripts/AdvUnlearn.py`` (``retain_train='reg'``).

    x_t (``z``) is sampled from the frozen original (the reference samples with the unchanged UNet and the
    original's conditioning) up to a random DDIM step; the unlearning loss is MSE(ε_θ(z, c_adv),
    ε*(z, ∅) − η·(ε*(z, c) − ε*(z, ∅))) with c_adv the forget prompt behind the current adversarial prefix
    (the plain prompt during the warm-up); the retain loss distils the original on retain prompts r at the same
    timestep: MSE(ε_θ(z_r, r), ε*(z_r, r)). Total: unlearn + γ · retain.

    The inner attack (``utils/attack_util.py::soft_prompt_attack``, ``attack_embd_type='word_embd'``,
    ``attack_type='prefix_k'``) optimises k word embeddings after the start token with Adam so that
    MSE(ε_θ(z, c_adv), ε*(z, c)) is minimal — the *current* model, fed the adversarial prompt, regenerates what
    the original generates for the concept — warm-started from the previous prefix (``attack_init='latest'``)."""

    def __init__(self, method: AdvUnlearn, request: UnlearnRequest, frozen: nn.Module) -> None:
        self.m, self.request, self.frozen = method, request, frozen
        self.esd = ESDLoss(frozen, method.eta, method.ddim_steps, method.start_guidance, method.seed)
        prompts = request.retain.y
        prompt_set = TensorData(prompts, torch.zeros(len(prompts), dtype=torch.long))
        self.retain = Cycle(Batches(prompt_set, min(method.retain_batch, len(prompts)), seed=method.seed + 7))
        self.allowed = attack_vocabulary(request.data, request.concept)
        self.gen = torch.Generator().manual_seed(method.seed)
        self.step = 0
        self.prefix: torch.Tensor | None = None
        self.attack_losses: list[float] = []

    def _z(self, tokens: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        m = self.m
        return sample_xt(self.frozen, tokens, steps=m.ddim_steps, guidance=m.start_guidance, generator=self.gen, k=k)

    def _init_prefix(self, model: nn.Module) -> torch.Tensor:
        if self.m.attack_init == "latest" and self.prefix is not None:
            return self.prefix
        pick = self.allowed[torch.randint(0, len(self.allowed), (self.m.k,), generator=self.gen)]
        return model.word_embeddings(pick.to(model.alphas_cumprod.device)).detach()

    def attack(self, model: nn.Module, tokens: torch.Tensor) -> torch.Tensor:
        prefix = ContinuousPrefix(self._init_prefix(model))
        m = self.m

        def loss(_: nn.Module, batch) -> torch.Tensor:
            toks = batch[0]
            k = int(torch.randint(0, m.ddim_steps, (1,), generator=self.gen))
            z, t = self._z(toks, k)
            with torch.no_grad():
                e_p = self.frozen(z, t, toks)
            return F.mse_loss(model(z, t, context=model.encode(toks, prefix=prefix.vectors)), e_p)

        recipe = Recipe(epochs=1, lr=m.attack_lr, optimizer="adam", weight_decay=0.0, batch_size=len(tokens))
        with frozen_params(model):
            log = train(
                prefix,
                Phase("attack", [(tokens,)] * m.attack_steps, loss),
                recipe,
                device=tokens.device,
                progress=False,
            )
        if log.epoch_losses:
            self.attack_losses.append(log.epoch_losses[-1].get("attack", float("nan")))
        return prefix.vectors.detach()

    def __call__(self, model: nn.Module, batch) -> torch.Tensor:
        m = self.m
        tokens = batch[1]
        adversarial = self.step >= m.warmup
        if adversarial and (self.step - m.warmup) % m.attack_every == 0:
            self.prefix = self.attack(model, tokens)
        self.step += 1
        k = int(torch.randint(0, m.ddim_steps, (1,), generator=self.gen))
        z, t = self._z(tokens, k)
        context = model.encode(tokens, prefix=self.prefix if adversarial else None)
        loss = F.mse_loss(model(z, t, context=context), self.esd.target(z, t, tokens))
        if m.retain_weight == 0:
            return loss
        retain = self.retain.next()[0].to(tokens.device)
        z_r, t_r = self._z(retain, k)
        with torch.no_grad():
            e_r = self.frozen(z_r, t_r, retain)
        return loss + m.retain_weight * F.mse_loss(model(z_r, t_r, retain), e_r)


@register
@dataclass(kw_only=True, frozen=True)
class AdvUnlearn(DiffusionMethod):
    """AdvUnlearn (Zhang et al., "Defensive Unlearning with Adversarial Training for Robust Concept Erasure in
    Diffusion Models", NeurIPS 2024), following OPTML-Group/AdvUnlearn ``train-scripts/AdvUnlearn.py`` with
    ``retain_train='reg'`` (see :class:`AdvUnlearnLoss`): bi-level — the inner attack fits a k-token prefix of
    word embeddings (``attack_step`` 30 Adam steps at ``attack_lr`` 1e-3, warm-started) so the current model
    regenerates the concept; the outer step is the ESD loss on the adversarial prompt plus γ × the distillation
    loss on retain prompts, after ``warmup`` plain-prompt steps. Only the **text encoder** is trained:
    ``params="text_encoder_full"`` (the default) is the reference's set, its transformer layers and final layer
    norm without the token and position embeddings (``param_choices`` in ``train-scripts/AdvUnlearn.py``);
    ``params="text_encoder"`` trains the whole encoder, embeddings included. Published: lr 1e-5, 1000
    iterations, 200 warm-up, k = 1 (script default), γ = 0.3 (README), 5 retain prompts per step, η = 1, start
    guidance 3, 50 DDIM steps, prefix refreshed every step."""

    name = "advunlearn"
    needs_images = False

    k: int = hp(1, low=1, doc="adversarial prefix tokens (adv_prompt_num)")
    attack_steps: int = hp(30, low=1)
    attack_lr: float = hp(1e-3, low=0, low_open=True)
    attack_every: int = hp(1, low=1, doc="refresh the adversarial prefix every this many outer steps")
    attack_init: str = hp("latest", choices=("latest", "random"), doc="warm-start the prefix from the last one")
    warmup: int = hp(200, low=0, doc="outer steps on the plain prompt before the attack starts")
    retain_weight: float = hp(0.3, low=0, doc="γ, weight of the retain distillation loss")
    retain_batch: int = hp(5, low=1, doc="retain prompts per step")
    eta: float = hp(1.0, low=0)
    start_guidance: float = hp(3.0, low=0)
    ddim_steps: int = hp(50, low=1)
    steps: int = hp(1000, low=1)
    batch_size: int = hp(1, low=1)
    lr: float = hp(1e-5, low=0, low_open=True)
    params: str = hp(
        "text_encoder_full",
        choices=("text_encoder_full", "text_encoder"),
        doc="text-encoder tensors trained: the reference's layers + final norm, or all (embeddings too)",
    )

    def run(self, model: nn.Module, request: UnlearnRequest, ctx: RunContext) -> Outcome:
        loss = AdvUnlearnLoss(self, request, request.frozen_original())
        params = self.trainable(model, self.params)
        self.fit_steps(ctx, model, Phase("advunlearn", self.stream(request.forget), loss), request, params=params)
        return Outcome(model)
