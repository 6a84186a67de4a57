import gzip

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import unlearnkit as uk
from unlearnkit.data.cifar import write_cifar_batch
from unlearnkit.data.idx import FASHION_MNIST, IdxFile, IdxSource, read_idx, verify, write_idx
from unlearnkit.data.tensors import Batches, as_tensor_data
from unlearnkit.errors import DataError


def _write_fake_idx(folder, n_train=20, n_test=10, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    write_idx(folder / "train-images-idx3-ubyte.gz", rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8))
    write_idx(folder / "train-labels-idx1-ubyte.gz", (np.arange(n_train) % 10).astype(np.uint8))
    write_idx(folder / "t10k-images-idx3-ubyte.gz", rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8))
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", (np.arange(n_test) % 10).astype(np.uint8))


def test_idx_roundtrip(tmp_path):
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "a.gz", arr)
    write_idx(tmp_path / "b", arr)
    assert np.array_equal(read_idx(tmp_path / "a.gz"), arr)
    assert np.array_equal(read_idx(tmp_path / "b"), arr)


def test_idx_rejects_truncated_and_garbage(tmp_path):
    arr = np.zeros((4, 5), dtype=np.uint8)
    write_idx(tmp_path / "x", arr)
    raw = (tmp_path / "x").read_bytes()
    (tmp_path / "short").write_bytes(raw[:-3])
    (tmp_path / "junk").write_bytes(b"hello world")
    with pytest.raises(DataError, match="truncated"):
        read_idx(tmp_path / "short")
    with pytest.raises(DataError, match="not an IDX"):
        read_idx(tmp_path / "junk")


def test_fashion_mnist_from_data_dir(tmp_path):
    _write_fake_idx(tmp_path / "fashion-mnist")
    b = uk.load_dataset("fashion-mnist", data_dir=tmp_path, download=False)
    assert b.train.x.shape == (20, 1, 28, 28) and b.test.x.shape == (10, 1, 28, 28)
    assert b.num_classes == 10 and b.class_names[0] == "T-shirt/top"
    sub = uk.load_dataset("fashion-mnist", data_dir=tmp_path, download=False, train_subset=10)
    assert len(sub.train) == 10 and sorted(sub.train.y.tolist()) == list(range(10))  # stratified


def test_env_var_is_searched(tmp_path, monkeypatch):
    _write_fake_idx(tmp_path / "mnist", seed=1)
    monkeypatch.setenv("UNLEARNKIT_DATA", str(tmp_path))
    b = uk.load_dataset("mnist", download=False)
    assert len(b.train) == 20


def test_missing_files_say_where_to_put_them(tmp_path, monkeypatch):
    monkeypatch.delenv("UNLEARNKIT_DATA", raising=False)
    src = IdxSource("nothing-here", "http://127.0.0.1:9/", FASHION_MNIST.files, debian_package="dataset-x")
    from unlearnkit.data.idx import locate

    with pytest.raises(DataError, match="apt-get install dataset-x") as err:
        locate(src, tmp_path, download=False)
    assert "--data-dir" in str(err.value)


def test_checksums_accept_raw_or_gz(tmp_path):
    arr = np.arange(10, dtype=np.uint8)
    write_idx(tmp_path / "f.gz", arr)
    import hashlib

    raw = gzip.decompress((tmp_path / "f.gz").read_bytes())
    good = IdxFile("f.gz", sha256_raw=hashlib.sha256(raw).hexdigest())
    bad = IdxFile("f.gz", sha256_raw="0" * 64)
    assert verify(tmp_path / "f.gz", good) and not verify(tmp_path / "f.gz", bad)


def test_system_fashion_mnist_matches_known_checksums():
    from pathlib import Path

    from unlearnkit.data.idx import verify_dir

    folder = Path("/usr/share/datasets/fashion-mnist")
    if not folder.is_dir():
        pytest.skip("Debian's dataset-fashion-mnist is not installed")
    verify_dir(FASHION_MNIST, folder)


@pytest.mark.parametrize("variant,key", [("cifar10", b"labels"), ("cifar100", b"fine_labels")])
def test_cifar_pickles(tmp_path, variant, key):
    rng = np.random.default_rng(0)
    files = [f"data_batch_{i}" for i in range(1, 6)] if variant == "cifar10" else ["train"]
    folder = tmp_path / ("cifar-10-batches-py" if variant == "cifar10" else "cifar-100-python")
    folder.mkdir()
    for f in files:
        write_cifar_batch(folder / f, rng.integers(0, 256, (4, 3072), dtype=np.uint8), np.arange(4) % 3, key)
    write_cifar_batch(
        folder / "test_batch" if variant == "cifar10" else folder / "test",
        rng.integers(0, 256, (3, 3072), dtype=np.uint8),
        np.arange(3),
        key,
    )
    b = uk.load_dataset(variant, data_dir=tmp_path)
    assert b.train.x.shape == (4 * len(files), 3, 32, 32) and b.test.x.shape == (3, 3, 32, 32)
    assert b.num_classes == 3


def test_cifar_needs_a_folder():
    with pytest.raises(DataError, match="--data-dir"):
        uk.load_dataset("cifar10")


def test_digits_split_is_fixed_and_stratified(digits):
    again = uk.load_dataset("digits")
    assert torch.equal(digits.train.y, again.train.y) and digits.input_shape == (1, 8, 8)
    counts = torch.bincount(digits.test.y)
    assert counts.min() >= 34 and len(digits.train) + len(digits.test) == 1797


def test_as_tensor_data_accepts_tuple_dataset_loader():
    x, y = torch.randn(10, 3), torch.arange(10)
    for obj in ((x, y), TensorDataset(x, y), DataLoader(TensorDataset(x, y), batch_size=4)):
        td = as_tensor_data(obj)
        assert torch.equal(td.x, x) and torch.equal(td.y, y)
    with pytest.raises(DataError, match="unsupported type"):
        as_tensor_data("nope")


def test_batches_are_seeded_and_cover_everything():
    td = uk.TensorData(torch.arange(10).float(), torch.arange(10))
    a = [b[1].tolist() for b in Batches(td, 4, seed=3)]
    b = [b[1].tolist() for b in Batches(td, 4, seed=3)]
    assert a == b and sorted(sum(a, [])) == list(range(10)) and len(a) == 3


def test_unknown_dataset():
    with pytest.raises(DataError, match="choose one of"):
        uk.load_dataset("imagenet")
