"""Image data sets for examples and benchmarks, offline where possible."""

import gzip
import os
import struct

import numpy as np

from keras_biprune._data import as_dataset
from keras_biprune.errors import BiPruneError

__all__ = ["DEBIAN_FASHION_MNIST_DIR", "DatasetUnavailableError", "as_dataset", "load_cifar10",
           "load_cifar100", "load_digits", "load_fashion_mnist", "read_idx"]


def load_digits(test_fraction=0.2, seed=0):
    """scikit-learn's bundled 8×8 handwritten digits (1,797 images), offline.

    Args:
        test_fraction: share of the images held out for testing.
        seed: seed of the shuffle before the split.

    Returns:
        ``((x_train, y_train), (x_test, y_test))`` with images of shape
        ``(n, 8, 8, 1)`` scaled to [0, 1] (float32) and integer labels 0–9.

    Example:

    ```python
    from keras_biprune.datasets import load_digits
    (x_train, y_train), (x_test, y_test) = load_digits()
    ```
    """
    from sklearn.datasets import load_digits as sklearn_digits

    data = sklearn_digits()
    x = (data.images[..., None] / 16.0).astype("float32")
    y = data.target.astype("int64")
    order = np.random.default_rng(seed).permutation(len(x))
    n_test = round(test_fraction * len(x))
    test, train = order[:n_test], order[n_test:]
    return (x[train], y[train]), (x[test], y[test])


DEBIAN_FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
"""Where the Debian package ``dataset-fashion-mnist`` puts its IDX files."""

_FASHION_MNIST_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}

_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class DatasetUnavailableError(BiPruneError, FileNotFoundError):
    """A data set is neither on disk nor downloadable; the message says how to get it."""


def read_idx(path):
    """Reads an IDX file (the MNIST format), gzipped or not, into a NumPy array.

    Args:
        path: path of the file; names ending in ``.gz`` are decompressed.

    Returns:
        The array with the file's shape and dtype (``uint8`` for MNIST images).

    Example:

    ```python
    from keras_biprune.datasets import read_idx
    labels = read_idx("/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz")
    ```
    """
    opener = gzip.open if os.fspath(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    zeros, code, ndim = data[:2], data[2], data[3]
    if zeros != b"\0\0" or code not in _IDX_DTYPES:
        raise ValueError(f"Expected an IDX file (magic 0x0000, a known type code). "
                         f"Received: path={os.fspath(path)!r}, header={data[:4].hex()}")
    shape = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    array = np.frombuffer(data, dtype=_IDX_DTYPES[code], offset=4 + 4 * ndim)
    return array.reshape(shape).astype(array.dtype.newbyteorder("="))


def _find_idx(directory, name):
    for candidate in (name + ".gz", name):
        path = os.path.join(directory, candidate)
        if os.path.isfile(path):
            return path
    return None


def _scale_images(x):
    x = np.asarray(x)
    return ((x[..., None] if x.ndim == 3 else x) / 255.0).astype("float32")


def _labels(y):
    return np.asarray(y).reshape(-1).astype("int64")


def load_fashion_mnist(path=None, download=True):
    """Fashion-MNIST (60,000 + 10,000 28×28 grayscale clothing images), offline.

    Looks in this order: the directory ``path`` (if given, nothing else is
    tried); the Debian package's directory ``/usr/share/datasets/fashion-mnist``
    (``apt-get install dataset-fashion-mnist``); ``keras.datasets.fashion_mnist``
    (its cache in ``~/.keras/datasets``, or a download), unless ``download``
    is False.

    Args:
        path: a directory holding the four IDX files under their usual names
            (``train-images-idx3-ubyte`` etc., gzipped or not).
        download: fall back to ``keras.datasets`` (which may download).

    Returns:
        ``((x_train, y_train), (x_test, y_test))`` with images of shape
        ``(n, 28, 28, 1)`` scaled to [0, 1] (float32) and integer labels 0–9
        (int64).

    Raises:
        DatasetUnavailableError: ``path`` lacks a file, or no source is
            available; the message says how to install the Debian package.

    Example:

    ```python
    from keras_biprune.datasets import load_fashion_mnist
    (x_train, y_train), (x_test, y_test) = load_fashion_mnist()
    ```
    """
    directory = DEBIAN_FASHION_MNIST_DIR if path is None else os.fspath(path)
    files = {key: _find_idx(directory, name) for key, name in _FASHION_MNIST_FILES.items()}
    if all(files.values()):
        arrays = {key: read_idx(file) for key, file in files.items()}
        return ((_scale_images(arrays["x_train"]), _labels(arrays["y_train"])),
                (_scale_images(arrays["x_test"]), _labels(arrays["y_test"])))
    if path is not None:
        missing = [name for key, name in _FASHION_MNIST_FILES.items() if not files[key]]
        raise DatasetUnavailableError(
            f"Expected the Fashion-MNIST IDX files {missing} (optionally .gz) in the "
            f"directory given. Received: path={directory!r}")
    if not download:
        raise DatasetUnavailableError(
            f"Fashion-MNIST is not in {DEBIAN_FASHION_MNIST_DIR}. Received: download=False. "
            "Install it offline with `apt-get install dataset-fashion-mnist` (Debian/Ubuntu), "
            "or pass download=True to fetch it through keras.datasets.")
    import keras

    try:
        (x_train, y_train), (x_test, y_test) = keras.datasets.fashion_mnist.load_data()
    except Exception as error:
        raise DatasetUnavailableError(
            f"Fashion-MNIST is not in {DEBIAN_FASHION_MNIST_DIR} and keras.datasets could "
            f"not download it ({type(error).__name__}: {error}). Install it offline with "
            f"`apt-get install dataset-fashion-mnist` (Debian/Ubuntu), or pass "
            f"path=<a directory with the four IDX files>.") from error
    return (_scale_images(x_train), _labels(y_train)), (_scale_images(x_test), _labels(y_test))


def load_cifar10():
    """CIFAR-10 through ``keras.datasets`` (downloaded once to ``~/.keras/datasets``).

    Returns:
        ``((x_train, y_train), (x_test, y_test))`` with images of shape
        ``(n, 32, 32, 3)`` scaled to [0, 1] (float32) and labels 0–9 (int64, 1-D).

    Example:

    ```python
    from keras_biprune.datasets import load_cifar10
    (x_train, y_train), (x_test, y_test) = load_cifar10()
    ```
    """
    import keras

    (x_train, y_train), (x_test, y_test) = keras.datasets.cifar10.load_data()
    return (_scale_images(x_train), _labels(y_train)), (_scale_images(x_test), _labels(y_test))


def load_cifar100(label_mode="fine"):
    """CIFAR-100 through ``keras.datasets`` (downloaded once to ``~/.keras/datasets``).

    Args:
        label_mode: ``"fine"`` (100 classes) or ``"coarse"`` (20 superclasses).

    Returns:
        ``((x_train, y_train), (x_test, y_test))`` with images of shape
        ``(n, 32, 32, 3)`` scaled to [0, 1] (float32) and 1-D int64 labels.

    Example:

    ```python
    from keras_biprune.datasets import load_cifar100
    (x_train, y_train), (x_test, y_test) = load_cifar100(label_mode="coarse")
    ```
    """
    import keras

    (x_train, y_train), (x_test, y_test) = keras.datasets.cifar100.load_data(label_mode)
    return (_scale_images(x_train), _labels(y_train)), (_scale_images(x_test), _labels(y_test))
