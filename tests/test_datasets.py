"""Data set loaders: the IDX reader, Fashion-MNIST sources, CIFAR wrappers, tf.data."""

import gzip
import struct
import sys

import keras
import numpy as np
import pytest

from keras_biprune import datasets
from keras_biprune.datasets import (
    DatasetUnavailableError,
    as_dataset,
    load_cifar10,
    load_cifar100,
    load_fashion_mnist,
    read_idx,
)
from keras_biprune.errors import MissingDependencyError

_CODES = {np.dtype("uint8"): 0x08, np.dtype("int32"): 0x0C}


def write_idx(path, array, compress=True):
    header = bytes([0, 0, _CODES[array.dtype], array.ndim])
    header += struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    with (gzip.open if compress else open)(path, "wb") as f:
        f.write(payload)


def fake_fashion_mnist(directory, n_train=5, n_test=3, seed=0):
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype="uint8"),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype="uint8"),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype="uint8"),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype="uint8"),
    }
    for name, array in arrays.items():
        write_idx(directory / f"{name}.gz", array)
    return arrays


@pytest.mark.parametrize("compress", [True, False])
@pytest.mark.parametrize("array", [
    np.arange(2 * 3 * 4, dtype="uint8").reshape(2, 3, 4),
    np.array([-70000, 1, 2**30], dtype="int32"),
])
def test_read_idx_round_trips(tmp_path, array, compress):
    path = tmp_path / ("a.idx.gz" if compress else "a.idx")
    write_idx(path, array, compress)
    read = read_idx(path)
    assert read.dtype == array.dtype and read.shape == array.shape
    np.testing.assert_array_equal(read, array)


def test_read_idx_rejects_other_files(tmp_path):
    path = tmp_path / "not.idx"
    path.write_bytes(b"PK\x03\x04rest")
    with pytest.raises(ValueError, match="IDX"):
        read_idx(path)


def test_fashion_mnist_from_a_directory(tmp_path):
    arrays = fake_fashion_mnist(tmp_path)
    (x_train, y_train), (x_test, y_test) = load_fashion_mnist(path=tmp_path)
    assert x_train.shape == (5, 28, 28, 1) and x_test.shape == (3, 28, 28, 1)
    assert x_train.dtype == x_test.dtype == np.float32
    assert y_train.dtype == y_test.dtype == np.int64 and y_train.shape == (5,)
    assert 0.0 <= x_train.min() and x_train.max() <= 1.0
    np.testing.assert_allclose(x_test[..., 0] * 255, arrays["t10k-images-idx3-ubyte"], atol=1e-4)
    np.testing.assert_array_equal(y_train, arrays["train-labels-idx1-ubyte"])


def test_fashion_mnist_directory_missing_a_file(tmp_path):
    fake_fashion_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DatasetUnavailableError, match="t10k-labels-idx1-ubyte") as info:
        load_fashion_mnist(path=tmp_path)
    assert isinstance(info.value, FileNotFoundError)


def test_fashion_mnist_falls_back_to_keras(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets, "DEBIAN_FASHION_MNIST_DIR", str(tmp_path))
    images, labels = np.full((2, 28, 28), 255, "uint8"), np.array([3, 7], "uint8")
    monkeypatch.setattr(keras.datasets.fashion_mnist, "load_data",
                        lambda: ((images, labels), (images[:1], labels[:1])))
    (x_train, y_train), (x_test, _) = load_fashion_mnist()
    assert x_train.shape == (2, 28, 28, 1) and x_test.shape == (1, 28, 28, 1)
    assert x_train.dtype == np.float32 and x_train.max() == 1.0
    assert y_train.dtype == np.int64 and list(y_train) == [3, 7]


def test_fashion_mnist_unavailable_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets, "DEBIAN_FASHION_MNIST_DIR", str(tmp_path))

    def offline():
        raise OSError("no network")

    monkeypatch.setattr(keras.datasets.fashion_mnist, "load_data", offline)
    with pytest.raises(DatasetUnavailableError, match="apt-get install dataset-fashion-mnist"):
        load_fashion_mnist()


@pytest.mark.parametrize("loader, module", [(load_cifar10, "cifar10"),
                                            (load_cifar100, "cifar100")])
def test_cifar_wrappers_scale_and_flatten(monkeypatch, loader, module):
    images = np.full((4, 32, 32, 3), 51, "uint8")
    labels = np.arange(4, dtype="uint8")[:, None]
    monkeypatch.setattr(getattr(keras.datasets, module), "load_data",
                        lambda *args, **kwargs: ((images, labels), (images, labels)))
    (x_train, y_train), _ = loader()
    assert x_train.shape == (4, 32, 32, 3) and x_train.dtype == np.float32
    np.testing.assert_allclose(x_train, 0.2)
    assert y_train.shape == (4,) and y_train.dtype == np.int64


def test_as_dataset_batches_shuffles_and_disables_autotune():
    x, y = np.arange(10, dtype="float32")[:, None], np.arange(10)
    data = as_dataset(x, y, batch_size=4, shuffle=True, seed=0)
    assert data.options().autotune.enabled is False
    batches = list(data.as_numpy_iterator())
    assert [len(b[1]) for b in batches] == [4, 4, 2]
    xs, ys = np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches])
    assert sorted(ys) == list(range(10)) and list(ys) != list(range(10))
    np.testing.assert_array_equal(xs[:, 0], ys)
    again = np.concatenate([b[1] for b in as_dataset(x, y, 4, True, 0).as_numpy_iterator()])
    np.testing.assert_array_equal(again, ys)


def test_as_dataset_without_tensorflow_names_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow", None)     # import tensorflow fails
    with pytest.raises(MissingDependencyError, match="needs TensorFlow. Received: no tensorflow"):
        as_dataset(np.arange(5))


def test_as_dataset_inputs_only_in_order():
    batches = list(as_dataset(np.arange(5), batch_size=2).as_numpy_iterator())
    assert [list(b) for b in batches] == [[0, 1], [2, 3], [4]]
