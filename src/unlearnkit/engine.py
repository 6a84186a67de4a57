"""The one optimisation loop of unlearnkit.

Original training, retraining and every unlearning method run through :func:`train`. A run is a list of
:class:`Phase` objects (a stream of batches plus a loss) repeated for ``recipe.epochs`` epochs, driven by one
optimiser and learning-rate schedule. Methods customise it with :class:`Hook` objects (gradient masks,
extra loss terms, projections, per-step callbacks) instead of writing loops of their own; users watch or stop a
run with the public :class:`unlearnkit.callbacks.Callback`, a :class:`Hook` that sees the same context.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from .errors import ConfigError, DivergenceError
from .runtime import resolve_device, seed_everything, timed

Batch = tuple[torch.Tensor, ...]
LossFn = Callable[[nn.Module, Batch], torch.Tensor]

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("constant", "cosine", "step", "warmup-linear", "warmup-cosine")
#: ``warmup-linear``: the share of the run spent warming up (1 of TOFU's 10 epochs)
WARMUP_FRACTION = 0.1


@dataclass
class Recipe:
    """How to optimise: the knobs shared by training, retraining and every method."""

    epochs: int = 10
    lr: float = 0.01
    optimizer: str = "sgd"
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "constant"
    batch_size: int = 128
    grad_clip: float | None = None

    def __post_init__(self) -> None:
        for name in ("epochs", "lr", "momentum", "weight_decay", "batch_size", "grad_clip"):
            value = getattr(self, name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"{name} must be a finite number, got {value!r}")
        if int(self.epochs) != self.epochs or self.epochs < 0:
            raise ConfigError(f"epochs must be a non-negative integer, got {self.epochs!r}")
        if not self.lr > 0:
            raise ConfigError(f"lr must be > 0, got {self.lr!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"unknown optimizer {self.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"unknown schedule {self.schedule!r}; choose one of {', '.join(SCHEDULES)}")
        if self.weight_decay < 0 or not 0 <= self.momentum < 1:
            raise ConfigError("weight_decay must be >= 0 and momentum in [0, 1)")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size!r}")
        if self.grad_clip is not None and self.grad_clip <= 0:
            raise ConfigError(f"grad_clip must be > 0 or None, got {self.grad_clip!r}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Phase:
    """One stream of batches and the loss to minimise on it.

    ``batches`` is re-iterated every epoch in which ``active(epoch)`` is true (all epochs by default).
    ``train_mode`` chooses ``model.train()`` or ``model.eval()`` while the phase runs.
    """

    name: str
    batches: Iterable[Batch]
    loss: LossFn
    active: Callable[[int], bool] | None = None
    train_mode: bool = True

    def runs_in(self, epoch: int) -> bool:
        return self.active is None or bool(self.active(epoch))


@dataclass
class StepContext:
    """What a hook can see and use at each step."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    params: list[nn.Parameter]
    device: torch.device
    epoch: int = 0
    step: int = 0
    total_steps: int = 1
    phase: str = ""
    batch: Batch | None = None
    #: multiplies the scheduled learning rate (a hook lowers it, e.g. after a rollback)
    lr_scale: float = 1.0
    #: a hook sets a reason here to end the run after the current step
    stop: str | None = None
    #: the run's name (the method's name, ``train``, ``lm-train``...)
    desc: str = ""
    #: the recipe the run optimises with
    recipe: Recipe | None = None
    #: the loss of the step just taken (detached; reading it as a float waits for the device)
    loss: torch.Tensor | None = None
    #: mean loss of each phase over the epoch just ended (empty while an epoch runs)
    epoch_losses: dict[str, float] = field(default_factory=dict)

    @property
    def progress(self) -> float:
        """Fraction of the run completed before this step, in [0, 1)."""
        return self.step / max(1, self.total_steps)

    @property
    def lr(self) -> float:
        """The learning rate of the step just taken (schedule and ``lr_scale`` applied)."""
        return float(self.optimizer.param_groups[0]["lr"])

    @property
    def metrics(self) -> dict[str, float]:
        """The numbers to log now: ``loss`` of the step just taken, its ``lr``, and after an epoch each phase's
        mean loss over it as ``epoch_loss/PHASE``."""
        out = {"lr": self.lr}
        if self.loss is not None:
            out["loss"] = float(self.loss)
        out.update({f"epoch_loss/{k}": v for k, v in self.epoch_losses.items()})
        return out

    def request_stop(self, reason: str) -> None:
        """End the run after the current step (the model keeps the weights it has then); ``reason`` is kept
        in ``TrainLog.stopped``."""
        self.stop = str(reason) or "stopped"


class Hook:
    """Customises :func:`train`; override only what you need."""

    def on_start(self, ctx: StepContext) -> None:
        """Called once, before the first step."""

    def extra_loss(self, ctx: StepContext) -> torch.Tensor | None:
        """A term added to the phase loss before ``backward``."""
        return None

    def after_backward(self, ctx: StepContext) -> None:
        """Called after ``backward`` and before clipping and the optimiser step (edit ``.grad`` here)."""

    def after_step(self, ctx: StepContext) -> None:
        """Called after the optimiser step (project or restore weights here)."""

    def on_epoch_end(self, ctx: StepContext) -> None:
        """Called at the end of each epoch."""

    def on_end(self, ctx: StepContext) -> None:
        """Called once after the last step (also when a hook stopped the run early)."""


@dataclass
class TrainLog:
    """What a run did: mean loss per epoch and phase, steps and wall-clock seconds."""

    epoch_losses: list[dict[str, float]] = field(default_factory=list)
    steps: int = 0
    seconds: float = 0.0
    #: why a hook ended the run early (None: it ran its whole recipe)
    stopped: str | None = None


def make_optimizer(params: Sequence[nn.Parameter], recipe: Recipe) -> torch.optim.Optimizer:
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(params, lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay)
    if recipe.optimizer == "adam":
        return torch.optim.Adam(params, lr=recipe.lr, weight_decay=recipe.weight_decay)
    return torch.optim.AdamW(params, lr=recipe.lr, weight_decay=recipe.weight_decay)


def lr_factor(schedule: str, progress: float) -> float:
    """Multiplier of the base learning rate at ``progress`` in [0, 1] of the run."""
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    if schedule == "warmup-linear":  # linear warm-up from 0, then linear decay to 0 (transformers' "linear")
        if progress < WARMUP_FRACTION:
            return progress / WARMUP_FRACTION
        return max(0.0, (1.0 - progress) / (1.0 - WARMUP_FRACTION))
    if schedule == "step":  # x0.1 at 50 % and again at 75 % of the run, the CIFAR recipe
        return 0.01 if progress >= 0.75 else 0.1 if progress >= 0.5 else 1.0
    if schedule == "warmup-cosine":  # a one-cycle shape (Smith & Topin 2019), not torch's OneCycleLR exactly:
        # linear warm-up over 30 % of the run from lr/25 to lr, then cosine to 0 (OneCycleLR anneals both
        # phases by cosine and ends at lr/2.5e5)
        if progress < 0.3:
            return 0.04 + 0.96 * progress / 0.3
        return 0.5 * (1.0 + math.cos(math.pi * (progress - 0.3) / 0.7))
    return 1.0


#: a loss whose magnitude reaches this is treated as diverged even while it is still a finite float
EXPLODED_LOSS = 1e20


def _diverged(what: str, desc: str, where: str, lr: float | None) -> DivergenceError:
    fix = f"e.g. lr={lr / 10:g} (was {lr:g})" if lr else "via its lr hyper-parameter"
    return DivergenceError(
        f"{desc} diverged{where}: {what}; the run was stopped and its model discarded. "
        f"Try a smaller learning rate, {fix}, or set grad_clip"
    )


def check_loss(loss: torch.Tensor, *, desc: str, epoch: int, step: int, lr: float) -> None:
    """Raise :class:`DivergenceError` when ``loss`` is non-finite or has exploded (``|loss| >= EXPLODED_LOSS``)."""
    value = float(loss)
    if not math.isfinite(value) or abs(value) >= EXPLODED_LOSS:
        raise _diverged(f"the loss is {value:g}", desc, f" at epoch {epoch + 1}, step {step + 1}", lr)


class LossWatch:
    """Divergence checks of the step losses without a device sync per step: on the CPU every loss is checked as
    it comes (reading it costs nothing); on an accelerator the detached losses of ``every`` steps are read in one
    transfer. Either way the error names the first bad step; call :meth:`flush` at each epoch end."""

    def __init__(self, device: torch.device, *, desc: str, lr: float, every: int = 32) -> None:
        self.every = 1 if device.type == "cpu" else max(1, every)
        self.desc, self.lr = desc, lr
        self._window: list[tuple[int, int, torch.Tensor]] = []

    def add(self, loss: torch.Tensor, *, epoch: int, step: int) -> None:
        if self.every == 1:
            check_loss(loss, desc=self.desc, epoch=epoch, step=step, lr=self.lr)
            return
        self._window.append((epoch, step, loss))
        if len(self._window) >= self.every:
            self.flush()

    def flush(self) -> None:
        if not self._window:
            return
        window, self._window = self._window, []
        values = torch.stack([loss.reshape(()).float() for _, _, loss in window]).cpu()  # one sync
        for (epoch, step, _), value in zip(window, values):
            check_loss(value, desc=self.desc, epoch=epoch, step=step, lr=self.lr)


def check_weights(model: nn.Module, *, desc: str, lr: float | None, where: str = "") -> None:
    """Raise :class:`DivergenceError` when a floating parameter or buffer of ``model`` is non-finite."""
    for name, t in list(model.named_parameters()) + list(model.named_buffers()):
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise _diverged(f"{name} holds non-finite values", desc, where, lr)


def check_outputs(model: nn.Module, x: torch.Tensor, *, desc: str, lr: float | None) -> None:
    """Raise :class:`DivergenceError` when ``model`` (weights finite or not) returns non-finite or exploded
    outputs on the inputs ``x`` (e.g. weights so large that activations overflow)."""
    check_weights(model, desc=desc, lr=lr)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(x)
    finally:
        model.train(was_training)
    if isinstance(out, torch.Tensor) and out.is_floating_point():
        peak = float(out.detach().abs().max()) if out.numel() else 0.0
        if not math.isfinite(peak) or peak >= EXPLODED_LOSS:
            raise _diverged(f"its outputs reach {peak:g}", desc, "", lr)


def _count_steps(phases: Sequence[Phase], epochs: int) -> int:
    total = 0
    for epoch in range(epochs):
        for ph in phases:
            if ph.runs_in(epoch):
                total += len(ph.batches)  # type: ignore[arg-type]
    return total


def _steps_of(phases: Sequence[Phase], epoch: int, interleave: bool) -> Iterator[tuple[Phase, Batch]]:
    """The (phase, batch) pairs of one epoch: each active phase's batches in turn, or with ``interleave`` one
    batch of each active phase in turn (round-robin) until every stream is exhausted."""
    active = [ph for ph in phases if ph.runs_in(epoch)]
    if not interleave:
        for ph in active:
            for batch in ph.batches:
                yield ph, batch
        return
    streams = [(ph, iter(ph.batches)) for ph in active]
    while streams:
        alive = []
        for ph, it in streams:
            batch = next(it, None)
            if batch is not None:
                alive.append((ph, it))
                yield ph, batch
        streams = alive


def train(
    model: nn.Module,
    phases: Sequence[Phase] | Phase,
    recipe: Recipe,
    *,
    device: str | torch.device | None = None,
    hooks: Sequence[Hook] = (),
    params: Sequence[nn.Parameter] | None = None,
    seed: int | None = None,
    progress: bool = True,
    desc: str = "train",
    accelerator: Any | None = None,
    interleave: bool = False,
) -> TrainLog:
    """Optimise ``model`` in place over ``phases`` for ``recipe.epochs`` epochs.

    ``params`` restricts which parameters the optimiser updates (default: all that require grad).
    Batches are moved to ``device`` (CUDA when available and ``device`` is None).
    With a Hugging Face ``accelerate.Accelerator``, the model and optimiser are prepared by it, batches go
    to its device and ``accelerator.backward`` replaces ``loss.backward`` (data-parallel training under
    ``accelerate launch``; each process must be given its own part of the data).
    With ``interleave``, the phases of an epoch take one step each in turn instead of one after the other
    (adversarial training: a discriminator step, then a generator step, and so on). Every step updates only the
    parameters its loss gave a gradient to (the others keep ``grad=None`` and are skipped by the optimiser,
    weight decay included).
    """
    if isinstance(phases, Phase):
        phases = [phases]
    if not phases:
        raise ConfigError("train() needs at least one phase")
    dev = resolve_device(device) if accelerator is None else accelerator.device
    if seed is not None:
        seed_everything(seed)
    if len({str(d) for d in (getattr(model, "hf_device_map", None) or {}).values()}) <= 1:
        model.to(dev)  # a model split over several devices by a device_map stays where its layers are
    trainable = [p for p in (params if params is not None else model.parameters()) if p.requires_grad]
    if not trainable:
        raise ConfigError("no trainable parameters: every parameter has requires_grad=False")
    optimizer = make_optimizer(trainable, recipe)
    if accelerator is not None:
        model, optimizer = accelerator.prepare(model, optimizer)
    total = _count_steps(phases, recipe.epochs)
    ctx = StepContext(
        model=model,
        optimizer=optimizer,
        params=trainable,
        device=dev,
        total_steps=max(1, total),
        desc=desc,
        recipe=recipe,
    )
    log = TrainLog()
    for h in hooks:
        h.on_start(ctx)
    bar = tqdm(total=total, desc=desc, disable=not progress or total == 0, leave=False, unit="step")
    watch = LossWatch(dev, desc=desc, lr=recipe.lr)
    with timed() as clock, bar:  # the bar is closed even when the run stops with an error
        for epoch in range(recipe.epochs):
            if ctx.stop:
                break
            ctx.epoch = epoch
            ctx.epoch_losses = {}
            sums: dict[str, torch.Tensor] = {}
            counts: dict[str, int] = {}
            for ph, batch in _steps_of(phases, epoch, interleave):
                model.train(ph.train_mode)
                ctx.phase = ph.name
                batch = tuple(t.to(dev, non_blocking=True) for t in batch)
                ctx.batch = batch
                factor = lr_factor(recipe.schedule, ctx.progress)
                for group in optimizer.param_groups:
                    group["lr"] = recipe.lr * factor * ctx.lr_scale
                optimizer.zero_grad(set_to_none=True)
                loss = ph.loss(model, batch)
                for h in hooks:
                    extra = h.extra_loss(ctx)
                    if extra is not None:
                        loss = loss + extra
                if accelerator is None:
                    loss.backward()
                else:
                    accelerator.backward(loss)
                for h in hooks:
                    h.after_backward(ctx)
                if recipe.grad_clip is not None:
                    torch.nn.utils.clip_grad_norm_(trainable, recipe.grad_clip)
                optimizer.step()
                detached = ctx.loss = loss.detach()
                for h in hooks:
                    h.after_step(ctx)
                watch.add(detached, epoch=epoch, step=ctx.step)
                sums[ph.name] = sums[ph.name] + detached if ph.name in sums else detached
                counts[ph.name] = counts.get(ph.name, 0) + 1
                ctx.step += 1
                bar.update(1)
                if ctx.stop:
                    break
            watch.flush()
            check_weights(model, desc=desc, lr=recipe.lr, where=f" by the end of epoch {epoch + 1}")
            means = {k: float(v) / counts[k] for k, v in sums.items()}
            log.epoch_losses.append(means)
            ctx.epoch_losses = dict(means)
            if means:
                bar.set_postfix({k: f"{v:.3f}" for k, v in means.items()}, refresh=False)
            for h in hooks:
                h.on_epoch_end(ctx)
        for h in hooks:
            h.on_end(ctx)
    model.eval()
    log.steps = ctx.step
    log.stopped = ctx.stop
    log.seconds = clock.seconds
    return log
