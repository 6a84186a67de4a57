"""Hub model ids (``org/name``) are read from a local Hugging Face cache that the tests lay out themselves
(``models--org--name/{blobs,snapshots/REV,refs/main}``, offline): the causal-LM loader, ``lm-unlearn --model
ID``, a diffusers pipeline id; a missing entry, a malformed id and pickle-only weights are clear errors."""

import hashlib
import os
from pathlib import Path

import pytest
import torch

from unlearnkit.cli import main
from unlearnkit.errors import CheckpointError
from unlearnkit.hub import cached_snapshot, is_hub_id, resolve_model_source
from unlearnkit.lm import load_causal_lm, save_causal_lm

from .tiny_lm import tiny_lm

REV = "0123456789abcdef0123456789abcdef01234567"


def cache_entry(cache: Path, repo_id: str, folder: Path) -> Path:
    """Lay ``folder`` out as huggingface_hub does: files as blobs named by hash, the snapshot as symlinks to
    them, and ``refs/main`` naming the snapshot's revision."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    snap = repo / "snapshots" / REV
    for src in sorted(p for p in folder.rglob("*") if p.is_file()):
        data = src.read_bytes()
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = snap / src.relative_to(folder)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(REV)
    return snap


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    cache = tmp_path / "hf" / "hub"
    cache.mkdir(parents=True)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # never the network
    return cache


@pytest.fixture(scope="module")
def lm_folder(tmp_path_factory):
    model, tok, split = tiny_lm()
    folder = save_causal_lm(model, tok, tmp_path_factory.mktemp("lm") / "tiny")
    return folder, split


def _logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits


def test_a_hub_id_loads_the_cached_snapshot(hub_cache, lm_folder):
    folder, _ = lm_folder
    snap = cache_entry(hub_cache, "acme/tiny-lm", folder)
    model, tok = load_causal_lm("acme/tiny-lm")
    reference, _ = load_causal_lm(folder)
    ids = torch.tensor([tok("Who wrote the book?")["input_ids"]])
    assert torch.equal(_logits(model, ids), _logits(reference, ids))
    assert resolve_model_source("acme/tiny-lm") == snap
    assert not any(p.name.startswith(".") for p in hub_cache.rglob("*"))  # nothing written into the cache


def test_lm_unlearn_takes_a_hub_id(hub_cache, lm_folder, tmp_path, capsys):
    folder, split = lm_folder
    snap = cache_entry(hub_cache, "acme/tiny-lm", folder)
    import json

    (tmp_path / "f.jsonl").write_text("".join(json.dumps(r) + "\n" for r in split.forget))
    (tmp_path / "r.jsonl").write_text("".join(json.dumps(r) + "\n" for r in split.retain))
    out = tmp_path / "out"
    args = ["lm-unlearn", "--model", "acme/tiny-lm", "--method", "ga", "--forget", str(tmp_path / "f.jsonl")]
    args += ["--retain", str(tmp_path / "r.jsonl"), "--out", str(out), "--hp", "epochs=1", "--hp", "lr=1e-3"]
    assert main([*args, "--no-progress"]) == 0
    assert json.loads((out / "unlearnkit.json").read_text())["source"] == "acme/tiny-lm"
    assert load_causal_lm(out)[0] is not None
    onto = [a if a != str(out) else str(snap) for a in args]  # the cached model is an input: never replaced
    assert main([*onto, "--overwrite", "--no-progress"]) != 0
    assert json.loads((snap / "config.json").read_text()) == json.loads((folder / "config.json").read_text())
    assert not (snap / "unlearnkit.json").exists()


def test_a_missing_cache_entry_is_one_error_saying_how_to_fill_the_cache(hub_cache):
    with pytest.raises(CheckpointError, match=r"hf download acme/absent") as info:
        load_causal_lm("acme/absent")
    assert str(hub_cache) in str(info.value) and "\n" not in str(info.value)


def test_an_id_is_never_a_path(hub_cache):
    assert is_hub_id("acme/tiny-lm") and is_hub_id("Org.A/name_1")
    for bad in ("../etc", "acme/..", "acme/.hidden", "/abs/path", "a/b/c", "acme/", "acme\\x", "acme/x y"):
        assert not is_hub_id(bad)
    with pytest.raises(CheckpointError, match="ORG/NAME"):
        cached_snapshot("acme/../../x")


def test_pickle_weights_in_the_cache_are_refused(hub_cache, tmp_path, lm_folder):
    folder, _ = lm_folder
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "config.json").write_text((folder / "config.json").read_text())
    (pickled / "pytorch_model.bin").write_bytes(b"not loaded")
    cache_entry(hub_cache, "acme/pickled", pickled)
    with pytest.raises(CheckpointError, match="pickle"):
        load_causal_lm("acme/pickled")


def test_a_diffusers_pipeline_id_loads_from_the_cache(hub_cache, tmp_path):
    from unlearnkit.diffusion import build_concept_data
    from unlearnkit.diffusion.hf import tiny_pipeline
    from unlearnkit.diffusion.io import load_model

    images = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    data = build_concept_data(images, torch.arange(4) % 2, ["ant", "bee"], styles=("plain",), synonyms={})
    folder = tiny_pipeline(data.vocab.words[1:], tmp_path / "sd", latent=False, width=8)
    cache_entry(hub_cache, "acme/tiny-sd", folder)
    model = load_model("acme/tiny-sd", data)
    direct = load_model(folder, data)
    for (name, a), (_, b) in zip(model.named_parameters(), direct.named_parameters()):
        assert torch.equal(a, b), name
