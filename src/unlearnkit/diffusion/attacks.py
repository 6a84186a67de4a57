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
from .schedule import ddim_sample


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


class SampleStraightThrough(torch.autograd.Function):
    """Forward: a one-hot row drawn from each row of ``weights`` (a distribution, ``torch.multinomial``);
    backward: the incoming gradient clipped to [−1, 1] (``STERandSelect`` of Diffusion-MU-Attack
    ``src/attackers/text_grad_.py``)."""

    @staticmethod
    def forward(ctx, weights: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        pick = torch.multinomial(weights.clamp_min(0) + 1e-12, 1).view(-1)
        return F.one_hot(pick, weights.shape[-1]).to(weights.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return F.hardtanh(grad)


class RelaxedPrefix(nn.Module):
    """k prefix tokens as distributions over ``allowed`` token ids (initialised uniform, as ``init_adv`` with
    ``rand_init=False``). The forward pass feeds the embedding of a token *sampled* from each distribution
    (sampling straight-through), so the model always sees real vocabulary tokens; ``token_ids`` is the argmax."""

    def __init__(self, k: int, allowed: torch.Tensor, seed: int = 0) -> None:
        super().__init__()
        self.register_buffer("allowed", allowed.clone().long())
        self.weights = nn.Parameter(torch.full((k, len(allowed)), 1.0 / len(allowed)))

    def token_ids(self) -> torch.Tensor:
        return self.allowed[self.weights.argmax(-1)]

    def forward(self, model: nn.Module) -> torch.Tensor:
        onehot = SampleStraightThrough.apply(self.weights)
        return onehot @ model.word_embeddings(self.allowed)


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

    def forward(self, model: nn.Module | None = None) -> torch.Tensor:
        return self.vectors


def prefixed_context(model: nn.Module, prefix: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Text context of ``[prefix embeddings] + prompt`` for every prompt row (after the start token for CLIP)."""
    return model.encode(tokens, prefix=prefix)


def attack_round(
    model: nn.Module,
    prefix: nn.Module,
    x0: torch.Tensor,
    tokens: torch.Tensor,
    t: int,
    *,
    steps: int,
    lr: float,
    weight_decay: float = 0.0,
    hooks: Sequence[Hook] = (),
) -> float:
    """One round of UnlearnDiffAtk at timestep ``t``: ``steps`` Adam steps on the prefix only (model frozen)
    minimising MSE(ε, ε_θ(√ᾱ_t·x0 + √(1−ᾱ_t)·ε, [prefix] + prompt)) with fresh noise ε each step
    (``ClassifierTask.get_loss``); returns the round's mean loss."""
    ab = model.alphas_cumprod[t]

    def loss(_: nn.Module, batch) -> torch.Tensor:
        noise = torch.randn_like(x0)
        x_t = ab.sqrt() * x0 + (1 - ab).sqrt() * noise
        tt = torch.full((len(x0),), t, device=x0.device, dtype=torch.long)
        return F.mse_loss(model(x_t, tt, context=prefixed_context(model, prefix(model), tokens)), noise)

    recipe = Recipe(epochs=1, lr=lr, optimizer="adam", weight_decay=weight_decay, batch_size=len(x0))
    with frozen_params(model):
        log = train(
            prefix, Phase("attack", [(x0,)] * steps, loss), recipe, hooks=hooks, device=x0.device, progress=False
        )
    return log.epoch_losses[-1].get("attack", float("nan")) if log.epoch_losses else float("nan")


@dataclass
class PromptAttackResult:
    """Attack success rates (percent of attacked prompt instances) and the adversarial prompts found.

    One *instance* is a prompt of the erased concept with one evaluation seed (the reference attacks each
    prompt of its data set with its own seed). ``asr_plain``: instances whose plain-prompt image already shows
    the concept (pre-attack ASR; the reference then stops); ``asr``: instances that succeed with the plain
    prompt or in any attack round (post-attack ASR, never below ``asr_plain``)."""

    asr: float
    asr_plain: float = float("nan")
    instances: int = 0
    rounds_used: list[int] = field(default_factory=list)
    prompts: list[str] = field(default_factory=list)


def attack_vocabulary(data: ConceptData, concept: ConceptSpec, exclude_concept: bool = True) -> torch.Tensor:
    """Token ids the attack may use: everything but padding and, by default, the erased concept's own words."""
    banned = {0}
    own_words = getattr(data, "own_words", None)
    if exclude_concept and own_words is not None:  # a free-text concept: the words only its prompt uses
        banned.update(data.vocab.index[w] for w in own_words(concept.index))
    elif exclude_concept:
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
    rounds: int = 50,
    iterations: int = 40,
    lr: float = 0.01,
    weight_decay: float = 0.1,
    seeds_per_prompt: int = 4,
    ddim_steps: int = 25,
    guidance: float = 2.0,
    exclude_concept: bool = True,
    seed: int = 0,
) -> PromptAttackResult:
    """UnlearnDiffAtk (Zhang et al., "To Generate or Not? Safety-Driven Unlearned Diffusion Models Are Still
    Easy To Generate Unsafe Images ... For Now", ECCV 2024), following OPTML-Group/Diffusion-MU-Attack
    ``src/attackers/text_grad_.py`` (``prefix_k``, ``sequential``) and ``src/tasks/classifier_.py``.

    For every prompt of the erased concept (each setting of the other axis) and each of ``seeds_per_prompt``
    evaluation seeds: generate one image with the plain prompt; if the evaluator already sees the concept the
    instance succeeds without attack. Otherwise ``k`` prefix tokens, distributions over the vocabulary (the
    concept's own words excluded unless ``exclude_concept=False``), start uniform; for each of ``rounds``
    timesteps t = T/rounds/2, 3T/rounds/2, … (``sampled_t``) they take ``iterations`` Adam steps (lr 0.01,
    weight decay 0.1) on the diffusion loss of a real image of that prompt through the sampled-token prefix,
    are projected back onto the simplex after each step, and after each round the argmax prompt generates an
    image from the instance's seed — success stops the attack. ASR is the percentage of instances that succeed
    (the paper counts per prompt). Published: k = 3, 50 rounds × 40 iterations. Deviation: a fresh Adam state
    per round (each round is one run of the shared engine)."""
    if k < 1 or rounds < 1 or iterations < 1 or seeds_per_prompt < 1:
        raise ConfigError("k, rounds, iterations and seeds_per_prompt must all be >= 1")
    dev = model.alphas_cumprod.device
    T = model.num_timesteps
    start = T // rounds // 2
    sampled_t = list(range(start, T, max(1, T // rounds)))[:rounds]
    allowed = attack_vocabulary(data, concept, exclude_concept)
    labels, other = data.labels(concept.axis), data.labels(concept.other_axis)
    gen = torch.Generator().manual_seed(seed)
    decode = getattr(model, "from_latents", None) or (lambda x: x)
    encode = getattr(model, "to_latents", None) or (lambda x: x)

    def hit(tokens: torch.Tensor, noise_seed: int) -> bool:
        g = torch.Generator().manual_seed(noise_seed)
        img = ddim_sample(model, tokens.to(dev), steps=ddim_steps, guidance=guidance, generator=g)
        return bool(evaluators.predict(concept.axis, decode(img).cpu())[0] == concept.index)

    success, plain_success, rounds_used, adv_prompts = [], [], [], []
    model.eval()
    for j in range(len(data.names(concept.other_axis))):
        idx = ((labels == concept.index) & (other == j)).nonzero().flatten()
        if len(idx) == 0:
            continue
        o, s = (concept.index, j) if concept.axis == "object" else (j, concept.index)
        padded = data.prompt(o, s).unsqueeze(0)
        for _ in range(seeds_per_prompt):
            noise_seed = int(torch.randint(0, 2**31 - 1, (1,), generator=gen))
            target = idx[int(torch.randint(0, len(idx), (1,), generator=gen))]
            if hit(padded, noise_seed):
                success.append(True)
                plain_success.append(True)
                rounds_used.append(0)
                continue
            plain_success.append(False)
            x0 = encode(data.images[target : target + 1]).to(dev)
            prefix = RelaxedPrefix(k, allowed).to(dev)
            won, used = False, 0
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(noise_seed)
                for t in sampled_t:
                    used += 1
                    attack_round(
                        model, prefix, x0, padded.to(dev), t, steps=iterations, lr=lr,
                        weight_decay=weight_decay, hooks=[SimplexHook()],
                    )  # fmt: skip
                    adv = torch.cat([prefix.token_ids().cpu(), data.prompt(o, s, pad=False)]).unsqueeze(0)
                    if hit(adv, noise_seed):
                        won = True
                        break
            success.append(won)
            rounds_used.append(used)
            adv_prompts.append(data.vocab.decode(adv[0]))
    if not success:
        raise ConfigError(f"no training images of {concept.axis} {concept.word!r} to attack with")
    return PromptAttackResult(
        asr=100.0 * sum(success) / len(success),
        asr_plain=100.0 * sum(plain_success) / len(plain_success),
        instances=len(success),
        rounds_used=rounds_used,
        prompts=adv_prompts,
    )
