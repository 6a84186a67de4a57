"""Public callbacks: on_start/on_step/on_epoch/on_end reach classifier, LM and diffusion methods through the
engine, see the step's metrics, can stop the run; the TensorBoard and MLflow loggers write local stores."""

import math

import pytest
import torch

import unlearnkit as uk
from unlearnkit.callbacks import Callback, MLflowLogger, TensorBoardLogger
from unlearnkit.errors import ConfigError


def _toy(n=48, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 6, generator=g)
    y = (x[:, 0] > 0).long()
    return x, y


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))


class Recorder(Callback):
    def __init__(self, stop_after=None):
        self.events, self.losses, self.epoch_metrics, self.stop_after = [], [], [], stop_after

    def on_start(self, ctx):
        self.events.append("start")

    def on_step(self, ctx):
        self.events.append("step")
        self.losses.append(ctx.metrics["loss"])
        if self.stop_after is not None and len(self.losses) >= self.stop_after:
            ctx.request_stop("enough")

    def on_epoch(self, ctx):
        self.events.append("epoch")
        self.epoch_metrics.append(ctx.metrics)

    def on_end(self, ctx):
        self.events.append("end")


def _unlearn(callbacks, **kw):
    x, y = _toy()
    return uk.unlearn(
        _model(), (x[:8], y[:8]), (x[8:], y[8:]), "ft", epochs=2, batch_size=16, lr=0.05, progress=False,
        callbacks=callbacks, check_overlap=False, **kw,
    )  # fmt: skip


def test_callbacks_reach_a_classifier_method_with_metrics():
    rec = Recorder()
    _unlearn([rec])
    steps = 2 * math.ceil(40 / 16)  # ft trains on the 40 retain examples for 2 epochs
    assert rec.events[0] == "start" and rec.events[-1] == "end"
    assert rec.events.count("step") == steps and rec.events.count("epoch") == 2
    assert all(math.isfinite(v) for v in rec.losses)
    assert set(rec.epoch_metrics[0]) >= {"loss", "lr"} and any(
        k.startswith("epoch_loss/") for k in rec.epoch_metrics[0]
    )
    means = [v for k, v in rec.epoch_metrics[0].items() if k.startswith("epoch_loss/")]
    assert means[0] == pytest.approx(sum(rec.losses[: steps // 2]) / (steps // 2), rel=1e-5)


def test_a_callback_stops_the_run():
    rec = Recorder(stop_after=2)
    res = _unlearn([rec])
    assert rec.events.count("step") == 2 and rec.events[-1] == "end"
    assert isinstance(res, uk.UnlearnResult)


def test_callbacks_are_validated_before_any_work():
    with pytest.raises(ConfigError, match="Callback"):
        _unlearn([lambda ctx: None])


def test_tensorboard_logger_writes_event_files(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _unlearn([TensorBoardLogger(tmp_path / "tb")])
    acc = EventAccumulator(str(tmp_path / "tb"))
    acc.Reload()
    tags = acc.Tags()["scalars"]
    assert "ft/loss" in tags and "ft/lr" in tags and "ft/epoch_loss/retain" in tags
    assert [e.step for e in acc.Scalars("ft/loss")] == list(range(1, 7))
    assert len(acc.Scalars("ft/epoch_loss/retain")) == 2


def test_mlflow_logger_writes_a_local_file_store(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow's plain-file store, kept local to the test
    uri = (tmp_path / "mlruns").as_uri()
    logger = MLflowLogger(uri, experiment="toy")
    _unlearn([logger])
    client = MlflowClient(uri)
    (run_id,) = logger.run_ids
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "ft"
    assert run.data.params["lr"] == "0.05"
    assert [m.step for m in client.get_metric_history(run_id, "loss")] == list(range(1, 7))
    assert len(client.get_metric_history(run_id, "epoch_loss/retain")) == 2


def test_callbacks_reach_lm_methods():
    from unlearnkit.lm import unlearn_lm

    from .tiny_lm import tiny_lm

    model, tok, split = tiny_lm()
    rec = Recorder()
    unlearn_lm(model, tok, split, "ga", epochs=1, batch_size=8, progress=False, callbacks=[rec], probe=False)
    assert rec.events[0] == "start" and rec.events[-1] == "end"
    assert rec.events.count("step") == math.ceil(len(split.forget) / 8) and rec.events.count("epoch") == 1


def test_callbacks_reach_diffusion_methods(tmp_path):
    from unlearnkit.diffusion import build_concept_data
    from unlearnkit.diffusion.hf import load_pipeline, tiny_pipeline

    images = torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    data = build_concept_data(images, torch.arange(6) % 3, ["ant", "bee", "cat"])
    model = load_pipeline(tiny_pipeline(data.vocab.words[1:], tmp_path / "sd", latent=False, width=8), data)
    rec = Recorder()
    res = uk.unlearn(model, "object:bee", data, method="esd-x", steps=2, lr=1e-2, ddim_steps=2, callbacks=[rec])
    assert rec.events[0] == "start" and rec.events[-1] == "end" and rec.events.count("step") == 2
    assert len(res.history) == rec.events.count("epoch")
