"""Only safetensors weights are loaded: LM and diffusers folders whose weights are pickle files are one-line
project errors that say how to convert, and no pickle is ever unpickled."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("transformers")

from unlearnkit.errors import CheckpointError  # noqa: E402
from unlearnkit.lm import TinyLMConfig, build_tiny_lm, load_causal_lm, save_causal_lm, train_tokenizer  # noqa: E402


@pytest.fixture
def no_unpickling(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a pickle file was unpickled")

    monkeypatch.setattr(torch, "load", refuse)


def _pickled(folder, name):
    """Replace the folder's safetensors weights by a pickle file ``name`` with the same tensors."""
    from safetensors.torch import load_file

    [st] = folder.glob("*.safetensors")
    torch.save(load_file(st), folder / name)
    st.unlink()


def test_an_lm_folder_with_only_pytorch_model_bin_is_refused_without_unpickling(tmp_path, capsys, no_unpickling):
    from unlearnkit.cli import main

    tok = train_tokenizer(["Alma lives in Oslo.", "Bo lives in Rome."], vocab_size=300)
    folder = save_causal_lm(build_tiny_lm(TinyLMConfig(d_model=16, n_layers=1, n_heads=2), tok), tok, tmp_path / "lm")
    load_causal_lm(folder)  # safetensors: loads
    _pickled(folder, "pytorch_model.bin")
    with pytest.raises(CheckpointError, match=r"pytorch_model.bin.*only safetensors.*safe_serialization=True") as err:
        load_causal_lm(folder)
    assert "\n" not in str(err.value)
    qa = tmp_path / "qa.jsonl"
    qa.write_text('{"question": "Where does Alma live?", "answer": "Oslo."}\n')
    assert main(["lm-eval", "--model", str(folder), "--forget", str(qa), "--retain", str(qa)]) == 2
    assert "only safetensors" in capsys.readouterr().err.strip().splitlines()[-1]


def test_a_diffusers_unet_as_a_pickle_bin_is_refused_without_unpickling(tmp_path, no_unpickling):
    pytest.importorskip("diffusers")
    from unlearnkit.diffusion import build_concept_data
    from unlearnkit.diffusion.hf import load_pipeline, tiny_pipeline

    images = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    data = build_concept_data(images, torch.arange(4) % 2, ["ant", "bee"], styles=("plain",), synonyms={})
    folder = tiny_pipeline(data.vocab.words[1:], tmp_path / "pipe", latent=False, width=8)
    _pickled(folder / "unet", "diffusion_pytorch_model.bin")
    with pytest.raises(CheckpointError, match=r"unet.*diffusion_pytorch_model.bin.*only safetensors"):
        load_pipeline(folder, data)
