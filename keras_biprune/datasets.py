"""Small image data sets available offline."""

import numpy as np


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
