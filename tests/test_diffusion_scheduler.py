"""The pipeline's scheduler kept as given: PNDM, Euler and DPM-Solver folders keep their class and config through
loading, training, evaluation sampling and saving (``scheduler/`` byte-identical), and a diffusers folder missing a
part is refused in one line that names it."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

pytest.importorskip("diffusers")

from unlearnkit.cli import main  # noqa: E402
from unlearnkit.diffusion import build_concept_data, ddim_sample, unlearn_concept  # noqa: E402
from unlearnkit.diffusion.hf import load_pipeline, tiny_pipeline  # noqa: E402
from unlearnkit.diffusion.io import save_model  # noqa: E402
from unlearnkit.errors import CheckpointError, ModelError  # noqa: E402

CLASSES = {"pndm": "PNDMScheduler", "euler": "EulerDiscreteScheduler", "dpm-solver": "DPMSolverMultistepScheduler"}


@pytest.fixture(scope="module")
def data():
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(8, 1, 8, 8, generator=gen)
    return build_concept_data(
        images, torch.arange(8) % 4, ["ant", "bee", "cat", "dog"], styles=("plain", "inverted"), synonyms={}
    )


def _folder(data, root, kind):
    return tiny_pipeline(data.vocab.words[1:], root / kind, latent=False, width=8, scheduler=kind)


def _files(folder):
    return {f.name: f.read_bytes() for f in sorted(folder.iterdir())}


@pytest.mark.parametrize("kind", sorted(CLASSES))
def test_scheduler_class_and_config_survive_unlearning_byte_for_byte(data, tmp_path, kind):
    folder = _folder(data, tmp_path, kind)
    config = folder / "scheduler" / "scheduler_config.json"
    config.write_text(json.dumps(json.loads(config.read_text()), indent=1) + "\n")  # as a user may have it
    model = load_pipeline(folder, data)
    assert type(model.scheduler).__name__ == CLASSES[kind]
    assert model.clip_sample is False, "no clamping the folder did not configure"
    # ᾱ_t of the folder's own config (SD's scaled-linear β), not a default DDPM schedule
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float32) ** 2
    torch.testing.assert_close(model.alphas_cumprod, torch.cumprod(1 - betas, 0))
    res = unlearn_concept(model, data, "object:cat", "esd-x", progress=False, steps=1, lr=1e-2, ddim_steps=2)
    out = save_model(res.model, tmp_path / f"{kind}-out")
    assert _files(out / "scheduler") == _files(folder / "scheduler")
    index = json.loads((out / "model_index.json").read_text())
    assert index["scheduler"] == ["diffusers", CLASSES[kind]]
    assert type(load_pipeline(out, data).scheduler).__name__ == CLASSES[kind]


@pytest.mark.parametrize("kind", sorted(CLASSES))
def test_evaluation_samples_with_the_pipelines_own_scheduler(data, tmp_path, kind, monkeypatch):
    model = load_pipeline(_folder(data, tmp_path, kind), data)
    cls = type(model.scheduler)
    assert cls.__name__ == CLASSES[kind]
    calls = []
    step = cls.step
    monkeypatch.setattr(cls, "step", lambda self, *a, **k: calls.append(1) or step(self, *a, **k))
    x = ddim_sample(model, data.prompts([0, 1], [0, 1]), steps=3, generator=torch.Generator().manual_seed(0))
    assert calls, f"{cls.__name__}.step was never called: the scheduler was replaced"
    assert x.shape == (2, *model.sample_shape) and torch.isfinite(x).all()


def test_a_replaced_scheduler_is_caught(data, tmp_path):
    """The guard of the two tests above: a saved DDPM scheduler differs from the input's PNDM files."""
    from diffusers import DDPMScheduler

    folder = _folder(data, tmp_path, "pndm")
    model = load_pipeline(folder, data)
    model.scheduler = DDPMScheduler.from_config(model.scheduler.config)
    model.scheduler_source = None
    out = save_model(model, tmp_path / "replaced")
    assert _files(out / "scheduler") != _files(folder / "scheduler")


@pytest.mark.parametrize(
    "part, remove", [("scheduler", "scheduler"), ("unet", "unet/config.json"), ("tokenizer", "tokenizer")]
)
def test_a_folder_missing_a_part_is_refused_in_one_line(data, tmp_path, part, remove):
    folder = _folder(data, tmp_path, "pndm")
    target = folder / remove
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    with pytest.raises(CheckpointError, match=f"no {remove}.*pipeline's {part}"):
        load_pipeline(folder, data)
    argv = ["diff-eval", "--model", str(folder), "--concept", "object:three", "--no-progress"]
    assert main(argv) == 2


def test_a_scheduler_without_a_noise_schedule_is_refused(data, tmp_path):
    folder = _folder(data, tmp_path, "pndm")
    cfg = json.loads((folder / "scheduler" / "scheduler_config.json").read_text())
    cfg["prediction_type"] = "v_prediction"
    (folder / "scheduler" / "scheduler_config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelError, match="v_prediction"):
        load_pipeline(folder, data)
    cfg = {"_class_name": "FlowMatchEulerDiscreteScheduler", "num_train_timesteps": 1000}
    (folder / "scheduler" / "scheduler_config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelError, match="no DDPM noise schedule"):
        load_pipeline(folder, data)


def test_components_no_method_edits_are_kept_as_given(data, tmp_path):
    """A safety checker and its feature extractor pass through unlearning byte for byte, with their index entries."""
    folder = _folder(data, tmp_path, "pndm")
    index = json.loads((folder / "model_index.json").read_text())
    index.update(
        safety_checker=["stable_diffusion", "StableDiffusionSafetyChecker"],
        feature_extractor=["transformers", "CLIPImageProcessor"],
        requires_safety_checker=True,
    )
    (folder / "model_index.json").write_text(json.dumps(index))
    for part, name in (("safety_checker", "config.json"), ("feature_extractor", "preprocessor_config.json")):
        (folder / part).mkdir()
        (folder / part / name).write_text(json.dumps({"kept": part}) + "\n")
    model = load_pipeline(folder, data)
    out = save_model(model, tmp_path / "out")
    saved = json.loads((out / "model_index.json").read_text())
    assert saved["safety_checker"] == ["stable_diffusion", "StableDiffusionSafetyChecker"]
    assert saved["feature_extractor"] == ["transformers", "CLIPImageProcessor"] and saved["requires_safety_checker"]
    for part in ("safety_checker", "feature_extractor"):
        assert _files(out / part) == _files(folder / part)


@pytest.mark.parametrize("part", ["unet", "text_encoder"])
def test_a_damaged_component_config_is_one_line(data, tmp_path, part):
    folder = _folder(data, tmp_path, "pndm")
    (folder / part / "config.json").write_text("{oops")
    with pytest.raises(CheckpointError, match=part):
        load_pipeline(folder, data)
