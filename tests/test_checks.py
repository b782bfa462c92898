"""Data mistakes raise the library's DataError before any search starts."""

import keras
import numpy as np
import pytest

import keras_biprune as kb
from keras_biprune import pruner as pruner_module
from keras_biprune._checks import check_data
from keras_biprune.errors import DataError

N = 64


def _model(classes=10, loss=None):
    inputs = keras.Input((6, 6, 1))
    h = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="c1")(inputs)
    h = keras.layers.GlobalAveragePooling2D()(h)
    model = keras.Model(inputs, keras.layers.Dense(classes, name="fc")(h))
    model.compile("adam", loss or keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(N, 6, 6, 1)).astype("float32"), rng.integers(0, 10, N)


@pytest.fixture(scope="module")
def sparse_model():
    return _model()


@pytest.fixture
def no_search(monkeypatch):
    """Fails the test if the search would start (the evaluator is its first step)."""
    def evaluator(*args, **kwargs):
        raise AssertionError("the search started before the data was checked")

    monkeypatch.setattr(pruner_module, "Evaluator", evaluator)


def _fit(model, x, y, **kwargs):
    pruner = kb.BiLevelPruner(model, verbose=0, search_kwargs={"generations": 1})
    pruner.fit(x, y, epochs=1, **kwargs)


def test_x_and_y_of_different_lengths(sparse_model, data, no_search):
    x, y = data
    with pytest.raises(DataError, match=r"same number of samples.*x with 64 samples, y with 63"):
        _fit(sparse_model, x, y[:-1])


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_inputs(sparse_model, data, no_search, bad):
    x, y = data
    x = x.copy()
    x[7, 1, 2, 0] = bad
    with pytest.raises(DataError, match=r"must be finite.*the first in sample 7"):
        _fit(sparse_model, x, y)


def test_one_hot_targets_for_a_sparse_loss(sparse_model, data, no_search):
    x, y = data
    with pytest.raises(DataError, match=r"integer class labels.*shape \(64, 10\): one-hot rows"):
        _fit(sparse_model, x, np.eye(10)[y])


def test_labels_beyond_the_model_outputs(sparse_model, data, no_search):
    x, y = data
    with pytest.raises(DataError, match=r"10 outputs.*labels 0 to 9.*from 10 to 19"):
        _fit(sparse_model, x, y + 10)


def test_validation_labels_are_checked_too(sparse_model, data, no_search):
    x, y = data
    with pytest.raises(DataError, match=r"y of validation_data with labels from -1"):
        _fit(sparse_model, x, y, validation_data=(x[:8], np.full(8, -1)))


def test_integer_labels_for_a_categorical_loss(data, no_search):
    x, y = data
    model = _model(loss=keras.losses.CategoricalCrossentropy(from_logits=True))
    with pytest.raises(DataError, match=r"one-hot targets with 10 columns.*to_categorical"):
        _fit(model, x, y)


def test_search_with_arrays_is_checked(sparse_model, data, no_search):
    x, y = data
    pruner = kb.BiLevelPruner(sparse_model, verbose=0)
    with pytest.raises(DataError, match="same number of samples"):
        pruner.search(x, y[:10])
    with pytest.raises(DataError, match="search_data"):
        pruner.search(search_data=(x, np.eye(10)[y]))


def test_compile_kwargs_loss_is_the_one_checked(sparse_model, data, no_search):
    x, y = data
    pruner = kb.BiLevelPruner(sparse_model, verbose=0, compile_kwargs={
        "optimizer": "adam", "loss": "categorical_crossentropy"})
    with pytest.raises(DataError, match="categorical_crossentropy takes one-hot"):
        pruner.fit(x, y, epochs=1)


def test_good_data_and_datasets_pass(sparse_model, data):
    x, y = data
    check_data(sparse_model, x, y, validation_data=(x, y.reshape(-1, 1)), search_data=(x, y))
    check_data(_model(loss="categorical_crossentropy"), x, np.eye(10)[y])
    check_data(_model(classes=1, loss="binary_crossentropy"), x, (y > 4).astype("float32"))
    dataset = kb.datasets.as_dataset(x, y + 10, batch_size=16)      # read lazily: not checked
    check_data(sparse_model, dataset, validation_data=dataset)


def test_data_errors_are_value_errors():
    assert issubclass(DataError, ValueError) and issubclass(DataError, kb.BiPruneError)
