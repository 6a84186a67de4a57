"""Callbacks: watch, log or stop a run of the training engine from outside.

Pass them to :func:`unlearnkit.unlearn` (``callbacks=[...]``); every training method (classifier methods and the
language-model methods) runs them inside :func:`unlearnkit.engine.train`. Override what you need:

* ``on_start(ctx)`` once before the first step,
* ``on_step(ctx)`` after every optimiser step,
* ``on_epoch(ctx)`` after every epoch,
* ``on_end(ctx)`` once after the last step (also when the run was stopped early).

``ctx`` is the engine's :class:`~unlearnkit.engine.StepContext`: ``ctx.metrics`` (``loss`` of the step just
taken, ``lr``, and after an epoch ``epoch_loss/PHASE``), ``ctx.epoch``, ``ctx.step`` (steps taken before this
one), ``ctx.total_steps``, ``ctx.desc`` (the method's name), ``ctx.recipe``, the ``ctx.model`` being trained,
and ``ctx.request_stop(reason)`` to end the run after the current step. A method that trains in several runs
(e.g. a pre-training stage and an unlearning stage) calls ``on_start`` … ``on_end`` once per run.

Two ready callbacks log the metrics: :class:`TensorBoardLogger` (extra ``tensorboard``) and :class:`MLflowLogger`
(extra ``mlflow``). The interface follows the callback objects of Keras (``keras.callbacks.Callback``) and of
the Hugging Face trainer (``transformers/trainer_callback.py``).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .engine import Hook, StepContext
from .errors import ConfigError, require

__all__ = ["Callback", "LossHistory", "MLflowLogger", "TensorBoardLogger", "check_callbacks"]


class Callback(Hook):
    """Base class of user callbacks (see the module docstring). The engine calls the :class:`Hook` methods;
    this class maps them onto ``on_start`` / ``on_step`` / ``on_epoch`` / ``on_end``."""

    def on_start(self, ctx: StepContext) -> None:
        """Called once, before the first step of a run."""

    def on_step(self, ctx: StepContext) -> None:
        """Called after every optimiser step (``ctx.metrics["loss"]`` is that step's loss)."""

    def on_epoch(self, ctx: StepContext) -> None:
        """Called after every epoch (``ctx.metrics`` then holds ``epoch_loss/PHASE``)."""

    def on_end(self, ctx: StepContext) -> None:
        """Called once after the last step of a run."""

    # the engine's hook points -> the public names
    def after_step(self, ctx: StepContext) -> None:
        self.on_step(ctx)

    def on_epoch_end(self, ctx: StepContext) -> None:
        self.on_epoch(ctx)


def check_callbacks(callbacks: Iterable[Any] | None) -> tuple[Hook, ...]:
    """``callbacks`` as a tuple, each a :class:`Callback` (or an engine :class:`~unlearnkit.engine.Hook`);
    anything else is a :class:`~unlearnkit.errors.ConfigError` raised before any work."""
    if callbacks is None:
        return ()
    if isinstance(callbacks, Hook):
        callbacks = [callbacks]
    try:
        items = tuple(callbacks)
    except TypeError:
        raise ConfigError(
            f"callbacks must be a list of unlearnkit.callbacks.Callback objects, got {type(callbacks).__name__}"
        ) from None
    for cb in items:
        if not isinstance(cb, Hook):
            raise ConfigError(
                f"callbacks must be unlearnkit.callbacks.Callback objects, got {type(cb).__name__}; subclass "
                "Callback and override on_start / on_step / on_epoch / on_end"
            )
    return items


class LossHistory(Callback):
    """Keeps the mean loss of each phase per epoch, over every run, in ``epochs`` (what
    :meth:`unlearnkit.UnlearnResult.plot` draws); reads only numbers the engine has already computed."""

    def __init__(self) -> None:
        self.epochs: list[dict[str, float]] = []

    def on_epoch(self, ctx: StepContext) -> None:
        if ctx.epoch_losses:
            self.epochs.append(dict(ctx.epoch_losses))


class _Counter:
    """Global step numbers that keep growing across the runs of one method (each run restarts ``ctx.step``)."""

    def __init__(self) -> None:
        self.offset = 0
        self.taken = 0

    def start(self) -> None:
        self.offset = self.taken

    def step(self, ctx: StepContext) -> int:
        self.taken = self.offset + ctx.step + 1
        return self.taken


class TensorBoardLogger(Callback):
    """Write ``ctx.metrics`` to TensorBoard event files in ``log_dir``: ``RUN/loss`` and ``RUN/lr`` every
    ``every`` steps, ``RUN/epoch_loss/PHASE`` every epoch (``RUN``: the method's name, or ``prefix``).
    View them with ``tensorboard --logdir LOG_DIR``. Needs ``pip install 'unlearnkit[tensorboard]'``.

    Reference: TensorBoard (``torch.utils.tensorboard.SummaryWriter``, pytorch/pytorch
    ``torch/utils/tensorboard/writer.py``)."""

    def __init__(self, log_dir: str | Path, *, prefix: str | None = None, every: int = 1) -> None:
        if int(every) != every or every < 1:
            raise ConfigError(f"every must be a positive integer, got {every!r}")
        require("tensorboard", extra="tensorboard")
        self.log_dir = Path(log_dir)
        self.prefix = prefix
        self.every = int(every)
        self._writer: Any = None
        self._count = _Counter()

    def _tag(self, ctx: StepContext, name: str) -> str:
        return f"{self.prefix or ctx.desc or 'train'}/{name}"

    def on_start(self, ctx: StepContext) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self._count.start()
        self._writer = SummaryWriter(log_dir=str(self.log_dir))

    def on_step(self, ctx: StepContext) -> None:
        step = self._count.step(ctx)
        if self._writer is None or step % self.every:
            return
        for name, value in ctx.metrics.items():
            if not name.startswith("epoch_loss/"):
                self._writer.add_scalar(self._tag(ctx, name), value, step)

    def on_epoch(self, ctx: StepContext) -> None:
        if self._writer is None:
            return
        for phase, value in ctx.epoch_losses.items():
            self._writer.add_scalar(self._tag(ctx, f"epoch_loss/{phase}"), value, ctx.epoch + 1)

    def on_end(self, ctx: StepContext) -> None:
        if self._writer is not None:
            self._writer.close()  # flushes; a later run opens a new event file in the same folder
            self._writer = None


class MLflowLogger(Callback):
    """Log each run to MLflow: one MLflow run per engine run (named after the method, or ``run_name``) in
    ``experiment``, with the recipe as parameters, ``loss`` and ``lr`` every ``every`` steps and
    ``epoch_loss/PHASE`` every epoch; a run that ends is marked FINISHED (tagged ``stopped`` with the reason
    when a callback or the probe ended it early). ``tracking_uri``: e.g. ``"file:/path/mlruns"``,
    ``"sqlite:///mlflow.db"`` or a server; None uses MLflow's own default (``MLFLOW_TRACKING_URI``). The ids of
    the runs are kept in ``run_ids``. Needs ``pip install 'unlearnkit[mlflow]'``.

    Reference: MLflow tracking (mlflow/mlflow ``mlflow/tracking/client.py``, ``MlflowClient``)."""

    def __init__(
        self,
        tracking_uri: str | None = None,
        *,
        experiment: str = "unlearnkit",
        run_name: str | None = None,
        every: int = 1,
    ) -> None:
        if int(every) != every or every < 1:
            raise ConfigError(f"every must be a positive integer, got {every!r}")
        if not isinstance(experiment, str) or not experiment:
            raise ConfigError(f"experiment must be a non-empty name, got {experiment!r}")
        require("mlflow", extra="mlflow")
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.run_name = run_name
        self.every = int(every)
        self.run_ids: list[str] = []
        self._client: Any = None
        self._run: str | None = None
        self._count = _Counter()

    def on_start(self, ctx: StepContext) -> None:
        from mlflow.tracking import MlflowClient

        if self._client is None:
            self._client = MlflowClient(tracking_uri=self.tracking_uri)
        found = self._client.get_experiment_by_name(self.experiment)
        exp_id = found.experiment_id if found is not None else self._client.create_experiment(self.experiment)
        run = self._client.create_run(exp_id, run_name=self.run_name or ctx.desc or "train")
        self._run = run.info.run_id
        self.run_ids.append(self._run)
        self._count.start()
        if ctx.recipe is not None:
            for key, value in ctx.recipe.to_dict().items():
                self._client.log_param(self._run, key, value)

    def on_step(self, ctx: StepContext) -> None:
        step = self._count.step(ctx)
        if self._run is None or step % self.every:
            return
        for name, value in ctx.metrics.items():
            if not name.startswith("epoch_loss/"):
                self._client.log_metric(self._run, name, value, step=step)

    def on_epoch(self, ctx: StepContext) -> None:
        if self._run is None:
            return
        for phase, value in ctx.epoch_losses.items():
            self._client.log_metric(self._run, f"epoch_loss/{phase}", value, step=ctx.epoch + 1)

    def on_end(self, ctx: StepContext) -> None:
        if self._run is not None:
            if ctx.stop:
                self._client.set_tag(self._run, "stopped", ctx.stop)
            self._client.set_terminated(self._run, "FINISHED")
            self._run = None
