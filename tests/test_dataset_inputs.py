"""Hugging Face ``datasets.Dataset`` / ``DatasetDict`` and torch ``Dataset`` objects as inputs in every family:
image/label columns for classifiers, TOFU-style question/answer columns for language models, an image dataset
with class names for text-to-image models, image datasets for the GAN's negatives and positives."""

import copy

import datasets
import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import Dataset, TensorDataset

import unlearnkit as uk
from unlearnkit.data.tensors import as_tensor_data
from unlearnkit.errors import DataError


def image_dataset(n=24, channels=1, size=8, seed=0, names=("ant", "bee", "cat")):
    """``n`` random ``size``² images (greyscale or RGB) with ClassLabel labels, as the Hub serves them."""
    rng = np.random.default_rng(seed)
    shape = (size, size) if channels == 1 else (size, size, channels)
    pixels = rng.integers(0, 256, size=(n, *shape), dtype=np.uint8)
    labels = [i % len(names) for i in range(n)]
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=list(names))})
    ds = datasets.Dataset.from_dict({"image": [Image.fromarray(p) for p in pixels], "label": labels}, features)
    return ds, pixels, labels


def test_an_image_dataset_becomes_float_nchw_tensors():
    grey, pixels, labels = image_dataset()
    data = as_tensor_data(grey, "forget")
    assert data.x.shape == (24, 1, 8, 8) and data.x.dtype == torch.float32
    assert torch.equal(data.x[:, 0], torch.from_numpy(pixels).float() / 255)
    assert data.y.tolist() == labels
    rgb, pixels, _ = image_dataset(channels=3)
    x = as_tensor_data(datasets.DatasetDict({"train": rgb}), "retain").x  # one split: that split
    assert x.shape == (24, 3, 8, 8) and torch.equal(x[5, 2], torch.from_numpy(pixels[5, :, :, 2]).float() / 255)


def test_dataset_errors_name_the_fix():
    ds, _, _ = image_dataset()
    with pytest.raises(DataError, match=r"dd\['train'\]"):
        as_tensor_data(datasets.DatasetDict({"train": ds, "test": ds}), "forget")
    with pytest.raises(DataError, match="rename_columns"):
        as_tensor_data(ds.rename_column("label", "kind"), "forget")


def test_classifier_unlearns_from_hf_and_torch_datasets_as_from_tensors():
    ds, _, _ = image_dataset(n=30)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3))
    kw = {"epochs": 1, "batch_size": 8, "progress": False, "check_overlap": False}
    forget, retain = ds.select(range(6)), ds.select(range(6, 30))
    from_hf = uk.unlearn(model, forget, datasets.DatasetDict({"train": retain}), "ft", **kw)
    f, r = as_tensor_data(forget), as_tensor_data(retain)
    from_tensors = uk.unlearn(model, (f.x, f.y), (r.x, r.y), "ft", **kw)
    from_torch = uk.unlearn(model, TensorDataset(f.x, f.y), TensorDataset(r.x, r.y), "ft", **kw)
    for other in (from_tensors, from_torch):
        assert all(torch.equal(a, b) for a, b in zip(from_hf.model.parameters(), other.model.parameters()))
    assert not torch.equal(from_hf.model[1].weight, model[1].weight)


class Records(Dataset):
    def __init__(self, rows):
        self.rows = rows

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        return self.rows[i]


def test_lm_unlearns_from_a_qa_dataset_as_from_records():
    from .tiny_lm import tiny_lm

    model, tok, split = tiny_lm()
    kw = {"tokenizer": tok, "epochs": 1, "batch_size": 8, "lr": 1e-2, "progress": False}
    cols = ("question", "answer")
    forget = datasets.Dataset.from_list([{k: r[k] for k in cols} for r in split.forget])
    retain = datasets.DatasetDict(
        {"train": datasets.Dataset.from_list([{k: r[k] for k in cols} for r in split.retain])}
    )
    from_hf = uk.unlearn(model, forget, retain, "grad-diff", **kw)
    rows = [[{k: r[k] for k in cols} for r in rs] for rs in (split.forget, split.retain)]
    from_lists = uk.unlearn(model, rows[0], rows[1], "grad-diff", **kw)
    from_torch = uk.unlearn(model, Records(rows[0]), Records(rows[1]), "grad-diff", **kw)
    for other in (from_lists, from_torch):
        assert all(torch.equal(a, b) for a, b in zip(from_hf.model.parameters(), other.model.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(from_hf.model.parameters(), model.parameters()))


def test_text_to_image_takes_an_image_dataset_with_class_names(tmp_path):
    from unlearnkit.diffusion import build_concept_data
    from unlearnkit.diffusion.hf import load_pipeline, tiny_pipeline

    ds, pixels, labels = image_dataset(n=6)
    reference = build_concept_data(
        torch.from_numpy(pixels).float().unsqueeze(1) / 255, torch.tensor(labels), ["ant", "bee", "cat"]
    )
    folder = tiny_pipeline(reference.vocab.words[1:], tmp_path / "sd", latent=False, width=8)
    model = load_pipeline(folder, reference)
    kw = {"method": "esd-x", "steps": 1, "lr": 1e-2, "ddim_steps": 2, "progress": False}
    from_hf = uk.unlearn(model, "object:bee", ds, **kw)
    from_data = uk.unlearn(model, "object:bee", reference, **kw)
    assert all(torch.equal(a, b) for a, b in zip(from_hf.model.parameters(), from_data.model.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(from_hf.model.parameters(), model.parameters()))
    with pytest.raises(DataError, match="ClassLabel"):
        uk.unlearn(model, "object:bee", ds.cast_column("label", datasets.Value("int64")), **kw)


def test_gan_takes_image_datasets_for_its_samples():
    from unlearnkit.gan.adapt_unlearn import _check_images
    from unlearnkit.gan.models import GAN, GANConfig

    gan = GAN(GANConfig((1, 8, 8), z_dim=8, width=4))
    ds, pixels, _ = image_dataset(n=4)
    x = _check_images(ds, gan, "the negative samples")
    assert torch.allclose(x[:, 0], torch.from_numpy(pixels).float() / 255 * 2 - 1)  # the GAN's [-1, 1]
    y = _check_images(TensorDataset(x, torch.zeros(4)), copy.deepcopy(gan), "the positive samples")
    assert torch.equal(x, y)
