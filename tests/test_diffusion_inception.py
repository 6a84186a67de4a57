"""Inception-feature FID from a local TorchScript file: clean-fid's preprocessing, the shared Fréchet distance,
clear errors without the file."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from unlearnkit.diffusion import ModelConfig, TextToImage, load_concept_data, parse_concept
from unlearnkit.diffusion.evaluate import SamplingConfig, evaluate_erasure
from unlearnkit.diffusion.evaluators import Evaluators
from unlearnkit.diffusion.inception import InceptionFID, clean_resize, load_feature_extractor
from unlearnkit.diffusion.metrics import frechet_distance
from unlearnkit.errors import CheckpointError
from unlearnkit.models.cnn import CNN

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")


class _Layers(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x.mean((2, 3)), x.amax((2, 3)), x[:, :, ::50, ::50].flatten(1)], 1)


class _InceptionLike(nn.Module):
    """The layout of ``inception-2015-12-05.pt``: the features come from the ``layers`` child."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = _Layers()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x) * 0  # clean-fid's "clean" mode never calls the top-level forward


@pytest.fixture(scope="module")
def script(tmp_path_factory):
    path = tmp_path_factory.mktemp("inception") / "inception-2015-12-05.pt"
    torch.jit.script(_InceptionLike()).save(str(path))
    return path


def test_clean_resize_matches_clean_fid():
    # Reference values: clean-fid (GaParmar/clean-fid, commit e88c4d6) run outside the repository,
    # cleanfid.resize.make_resizer("PIL", False, "bicubic", (299, 299)) on this 8x8 image repeated to RGB.
    g = torch.arange(64, dtype=torch.float32).reshape(8, 8) * 37 % 256
    out = clean_resize(g[None, None])
    assert out.shape == (1, 3, 299, 299) and torch.equal(out[:, 0], out[:, 2])
    refs = {(0, 0): 0.0, (10, 20): 0.0, (150, 150): 53.19645309448242, (77, 230): 30.891910552978516}
    for (i, j), ref in refs.items():
        assert float(out[0, 0, i, j]) == pytest.approx(ref, abs=1e-4)
    assert float(out.mean()) == pytest.approx(121.54499053955078, rel=1e-6)
    assert (float(out.min()), float(out.max())) == (0.0, 255.0)  # bicubic overshoot clipped


def test_frechet_distance_matches_clean_fid():
    # Reference: cleanfid.fid.fid_from_feats(a, b) (scipy sqrtm) = 1.5866614024052037 on these features.
    rng = np.random.default_rng(0)
    a = rng.normal(size=(50, 6))
    b = rng.normal(size=(40, 6)) * 1.3 + 0.2
    assert frechet_distance(a, b) == pytest.approx(1.5866614024052037, rel=1e-9)


def test_torchscript_layers_get_the_normalised_299_batch(script):
    fid = InceptionFID(script)
    for v in (0.0, 0.25, 1.0):
        feats = fid.features(torch.full((2, 1, 8, 8), v))
        assert feats.shape == (2, 3 + 3 + 3 * 6 * 6)  # ::50 of 299 keeps 6 rows and 6 columns
        assert feats[:, :3] == pytest.approx((255 * v - 128) / 128, abs=1e-5)  # (x - 128) / 128 of [0, 255]


def test_fid_uses_the_shared_frechet_distance(script):
    gen = torch.Generator().manual_seed(0)
    a = torch.rand(6, 1, 8, 8, generator=gen)
    b = (torch.rand(5, 1, 8, 8, generator=gen) * 0.5).clamp(0, 1)
    fid = InceptionFID(script, batch_size=4)
    assert fid.fid(a, a) == pytest.approx(0.0, abs=1e-6)
    assert fid.fid(a, b) == pytest.approx(frechet_distance(fid.features(a), fid.features(b)))
    assert fid.fid(a, b) > 1.0


def test_an_own_module_is_called_directly_and_missing_files_are_explained(tmp_path):
    own = InceptionFID(_Layers(), size=16)
    assert own.features(torch.zeros(2, 1, 4, 4)).shape == (2, 3 + 3 + 3)
    with pytest.raises(CheckpointError, match="inception-2015-12-05.pt"):
        load_feature_extractor(tmp_path)  # a folder without the file
    with pytest.raises(CheckpointError, match="no Inception feature extractor"):
        InceptionFID(tmp_path / "nowhere.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a torchscript archive")
    with pytest.raises(CheckpointError, match="TorchScript"):
        load_feature_extractor(bad)


def test_evaluate_erasure_reports_inception_fid(script):
    data = load_concept_data("digits", train_subset=40)
    torch.manual_seed(0)
    model = TextToImage(ModelConfig(vocab_size=len(data.vocab), base=8, text_dim=16)).eval()
    ev = Evaluators(CNN((1, 8, 8), 11).eval(), CNN((1, 8, 8), 7).eval(), none_label={"object": 10, "style": 6})
    sampling = SamplingConfig(steps=2, per_prompt=1)
    concept = parse_concept("object:three", data)
    plain = evaluate_erasure(model, data, concept, ev, sampling).metrics
    assert "fid_inception" not in plain
    with_fid = evaluate_erasure(model, data, concept, ev, sampling, inception=InceptionFID(script, size=64)).metrics
    assert with_fid["fid_inception"] > 0 and with_fid["fd_eval"] == plain["fd_eval"]
