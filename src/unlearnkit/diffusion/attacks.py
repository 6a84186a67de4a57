"""Attacks on concept erasure: UnlearnDiffAtk (discrete prompt prefix) and the continuous prefix embedding that
AdvUnlearn trains against. Both optimise through the shared engine with the attacked model frozen."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ..engine import Hook, Phase, Recipe, StepContext, train
from ..errors import ConfigError
from .concepts import ConceptData, ConceptSpec
from .evaluators import Evaluators
from .schedule import ddim_sample, diffusion_loss


@contextmanager
def frozen_params(model: nn.Module) -> Iterator[None]:
    """Temporarily stop gradients into ``model``'s parameters (restoring each flag afterwards)."""
    flags = [(p, p.requires_grad) for p in model.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, f in flags:
            p.requires_grad_(f)


def project_simplex(v: torch.Tensor) -> torch.Tensor:
    """Euclidean projection of each row of ``v`` onto the probability simplex (Duchi et al., 2008)."""
    n = v.shape[-1]
    u, _ = torch.sort(v, dim=-1, descending=True)
    css = u.cumsum(-1) - 1
    ind = torch.arange(1, n + 1, device=v.device, dtype=v.dtype)
    cond = u - css / ind > 0
    rho = cond.to(v.dtype).cumsum(-1).argmax(-1, keepdim=True)  # last index where cond holds
    theta = css.gather(-1, rho) / (rho + 1).to(v.dtype)
    return (v - theta).clamp_min(0)


class RelaxedPrefix(nn.Module):
    """k prefix tokens as distributions over ``allowed`` token ids; the forward pass uses the argmax token
    (straight-through), so the prompt the model sees is always made of real vocabulary tokens."""

    def __init__(self, k: int, allowed: torch.Tensor, seed: int = 0) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.register_buffer("allowed", allowed.clone().long())
        self.weights = nn.Parameter(project_simplex(torch.rand(k, len(allowed), generator=gen)))

    def token_ids(self) -> torch.Tensor:
        return self.allowed[self.weights.argmax(-1)]

    def forward(self, embedding: nn.Embedding) -> torch.Tensor:
        soft = self.weights
        hard = F.one_hot(soft.argmax(-1), soft.shape[-1]).to(soft.dtype)
        st = hard + soft - soft.detach()
        return st @ embedding.weight[self.allowed]


class SimplexHook(Hook):
    @torch.no_grad()
    def after_step(self, ctx: StepContext) -> None:
        w = ctx.model.weights
        w.copy_(project_simplex(w))


class ContinuousPrefix(nn.Module):
    """k free prefix vectors in the token-embedding space (AdvUnlearn's inner attack)."""

    def __init__(self, init: torch.Tensor) -> None:
        super().__init__()
        self.vectors = nn.Parameter(init.clone())

    def forward(self, embedding: nn.Embedding | None = None) -> torch.Tensor:
        return self.vectors


def prefixed_context(model: nn.Module, prefix: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Text context of ``[prefix embeddings] + prompt`` for every prompt row."""
    emb = model.text_encoder.embed(tokens)
    return model.encode(embeds=torch.cat([prefix.unsqueeze(0).expand(len(tokens), -1, -1), emb], dim=1))


def optimise_prefix(
    model: nn.Module,
    prefix: nn.Module,
    images: torch.Tensor,
    tokens: torch.Tensor,
    *,
    steps: int,
    lr: float,
    hooks: Sequence[Hook] = (),
    device: torch.device | str | None = None,
) -> float:
    """Minimise ``model``'s diffusion loss on (images, prefix + tokens) over the prefix only (model frozen);
    returns the last loss."""
    emb = model.text_encoder.token_embedding

    def loss(_: nn.Module, batch) -> torch.Tensor:
        ctx = prefixed_context(model, prefix(emb), batch[1])
        return diffusion_loss(model, batch, context=ctx)

    recipe = Recipe(epochs=1, lr=lr, optimizer="adam", weight_decay=0.0, batch_size=len(images))
    batches = [(images, tokens)] * steps
    with frozen_params(model):
        log = train(prefix, Phase("attack", batches, loss), recipe, hooks=hooks, device=device, progress=False)
    return log.epoch_losses[-1].get("attack", float("nan")) if log.epoch_losses else float("nan")


@dataclass
class AttackResult:
    """Attack success rates (percent) and the adversarial prompts found.

    ``asr``: post-attack rate — an image counts when the plain prompt *or* the adversarial prompt (same noise)
    yields the concept, so it is never below ``asr_plain``; ``asr_prefix_only`` counts adversarial images only."""

    asr: float
    asr_plain: float = float("nan")
    asr_prefix_only: float = float("nan")
    prompts: list[str] = field(default_factory=list)


def attack_vocabulary(data: ConceptData, concept: ConceptSpec, exclude_concept: bool = True) -> torch.Tensor:
    """Token ids the attack may use: everything but padding and, by default, the erased concept's own words."""
    banned = {0}
    if exclude_concept:
        banned.add(data.vocab.index[concept.word])
        syn = data.synonyms.get(concept.word)
        if syn:
            banned.add(data.vocab.index[syn])
    return torch.tensor([i for i in range(len(data.vocab)) if i not in banned], dtype=torch.long)


def unlearndiffatk(
    model: nn.Module,
    data: ConceptData,
    concept: ConceptSpec,
    evaluators: Evaluators,
    *,
    k: int = 3,
    steps: int = 40,
    lr: float = 0.01,
    targets: int = 16,
    per_prompt: int = 6,
    ddim_steps: int = 25,
    guidance: float = 2.0,
    exclude_concept: bool = True,
    seed: int = 0,
) -> AttackResult:
    """UnlearnDiffAtk (Zhang et al., "To Generate or Not? Safety-Driven Unlearned Diffusion Models Are Still
    Easy To Generate Unsafe Images ... For Now", ECCV 2024): for each prompt of the erased concept, optimise
    ``k`` prefix tokens (relaxed distributions projected to the simplex, straight-through argmax) so that the
    *unlearned model's own* diffusion loss on real images of the concept is minimal; then generate with the
    adversarial and with the plain prompt from the same noise. An image succeeds when the evaluator classifies
    either as the concept (the attack is only needed where the plain prompt fails), see :class:`AttackResult`."""
    if k < 1:
        raise ConfigError(f"k (prefix tokens) must be >= 1, got {k}")
    dev = model.alphas_cumprod.device
    allowed = attack_vocabulary(data, concept, exclude_concept)
    labels = data.labels(concept.axis)
    other = data.labels(concept.other_axis)
    adv_prompts, images, plain = [], [], []
    gen = torch.Generator().manual_seed(seed)
    for j in range(len(data.names(concept.other_axis))):
        mask = (labels == concept.index) & (other == j)
        idx = mask.nonzero().flatten()
        if len(idx) == 0:
            continue
        idx = idx[torch.randperm(len(idx), generator=gen)[:targets]]
        o, s = (concept.index, j) if concept.axis == "object" else (j, concept.index)
        prompt = data.prompt(o, s, pad=False).unsqueeze(0)
        prefix = RelaxedPrefix(k, allowed, seed=seed + j).to(dev)
        imgs = data.images[idx].to(dev)
        optimise_prefix(
            model,
            prefix,
            imgs,
            prompt.expand(len(imgs), -1).to(dev),
            steps=steps,
            lr=lr,
            hooks=[SimplexHook()],
            device=dev,
        )
        adv = torch.cat([prefix.token_ids().cpu(), prompt[0]]).unsqueeze(0)
        padded = data.prompt(o, s).unsqueeze(0)
        adv_prompts.append(data.vocab.decode(adv[0]))
        noise_seed = int(torch.randint(0, 2**31 - 1, (1,), generator=gen))
        for toks, out in ((adv, images), (padded, plain)):
            g = torch.Generator().manual_seed(noise_seed)
            out.append(
                ddim_sample(model, toks.repeat(per_prompt, 1), steps=ddim_steps, guidance=guidance, generator=g).cpu()
            )
    hit_adv = evaluators.predict(concept.axis, torch.cat(images)) == concept.index
    hit_plain = evaluators.predict(concept.axis, torch.cat(plain)) == concept.index
    return AttackResult(
        asr=100.0 * float((hit_adv | hit_plain).float().mean()),
        asr_plain=100.0 * float(hit_plain.float().mean()),
        asr_prefix_only=100.0 * float(hit_adv.float().mean()),
        prompts=adv_prompts,
    )
