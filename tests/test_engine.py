import pytest
import torch

from unlearnkit.data.tensors import Batches, TensorData
from unlearnkit.engine import Hook, Phase, Recipe, lr_factor, train
from unlearnkit.errors import ConfigError
from unlearnkit.losses import cross_entropy


def _toy(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(64, 5, generator=g)
    y = (x[:, 0] > 0).long()
    return TensorData(x, y)


def _model(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))


def test_training_lowers_loss_and_is_deterministic():
    data = _toy()
    logs, states = [], []
    for _ in range(2):
        m = _model()
        logs.append(
            train(
                m,
                Phase("t", Batches(data, 16, seed=1), cross_entropy),
                Recipe(epochs=5, lr=0.1),
                seed=1,
                progress=False,
            )
        )
        states.append(m.state_dict())
    assert logs[0].epoch_losses[-1]["t"] < logs[0].epoch_losses[0]["t"]
    assert logs[0].steps == 20
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


def test_hooks_are_called_in_order_and_can_edit_gradients():
    calls = []

    class Recorder(Hook):
        def on_start(self, ctx):
            calls.append("start")

        def extra_loss(self, ctx):
            calls.append("extra")
            return torch.zeros(())

        def after_backward(self, ctx):
            calls.append("backward")
            for p in ctx.params:
                p.grad.zero_()  # a mask that freezes everything

        def after_step(self, ctx):
            calls.append("step")

        def on_epoch_end(self, ctx):
            calls.append("epoch")

    m = _model()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    recipe = Recipe(epochs=1, lr=0.1, momentum=0.0, weight_decay=0.0)
    train(m, Phase("t", Batches(_toy(), 32), cross_entropy), recipe, hooks=[Recorder()], progress=False)
    assert calls == ["start", "extra", "backward", "step", "extra", "backward", "step", "epoch"]
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())


def test_phase_activity_and_params_subset():
    m = _model()
    first = list(m[0].parameters())
    frozen = m[2].weight.detach().clone()
    seen = []

    def loss(model, batch):
        seen.append(1)
        return cross_entropy(model, batch)

    phases = [Phase("a", Batches(_toy(), 64), loss, active=lambda e: e == 0)]
    log = train(m, phases, Recipe(epochs=3, lr=0.1), params=first, progress=False)
    assert len(seen) == 1 and log.steps == 1
    assert torch.equal(m[2].weight, frozen)


def test_schedules():
    assert lr_factor("constant", 0.9) == 1.0
    assert lr_factor("cosine", 0.0) == 1.0 and lr_factor("cosine", 0.5) == pytest.approx(0.5)
    assert lr_factor("step", 0.6) == pytest.approx(0.1) and lr_factor("step", 0.8) == pytest.approx(0.01)
    assert lr_factor("warmup-cosine", 0.0) == pytest.approx(0.04) and lr_factor("warmup-cosine", 0.3) == pytest.approx(
        1.0
    )
    assert lr_factor("warmup-cosine", 0.15) == pytest.approx(0.52) and lr_factor("warmup-cosine", 1.0) == pytest.approx(
        0.0
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"lr": 0},
        {"optimizer": "lbfgs"},
        {"schedule": "warm"},
        {"batch_size": 0},
        {"epochs": -1},
        {"momentum": 1.0},
        {"grad_clip": 0},
    ],
)
def test_bad_recipes(kwargs):
    with pytest.raises(ConfigError):
        Recipe(**kwargs)
