"""Tiny models and data shared by the export tests."""

import functools

import keras
import numpy as np
from zoo import randomize_weights

import keras_biprune as kb
from keras_biprune.datasets import as_dataset, load_digits

L = keras.layers


def chain(seed=0):
    """Conv-BN-ReLU x2, MaxPool, Flatten, Dense on 8x8x3 inputs, random weights."""
    inp = keras.Input((8, 8, 3))
    x = L.Conv2D(6, 3, padding="same", name="conv1")(inp)
    x = L.BatchNormalization(name="bn1")(x)
    x = L.ReLU(name="relu1")(x)
    x = L.Conv2D(8, 3, padding="same", name="conv2")(x)
    x = L.BatchNormalization(name="bn2")(x)
    x = L.ReLU(name="relu2")(x)
    x = L.MaxPooling2D(name="pool")(x)
    x = L.Flatten(name="flatten")(x)
    return randomize_weights(keras.Model(inp, L.Dense(4, name="dense")(x), name="chain"), seed)


def pruned_chain():
    """``(original, plan, slim)``: `chain` with conv1 pruned, conv2 reading 2 of its
    inputs (conv1 keeps those 2: nothing else reads it) and the dense layer the first
    half of its flattened inputs (every conv2 channel is still read there).

    The slim model holds a `keras_biprune.layers.ChannelSelect`.
    """
    original = chain()
    plan = kb.PruningPlan({"conv1": [0, 1, 3, 4]}, inputs={"conv2": [0, 3], "dense": range(64)},
                          signature=kb.trace(original).signature)
    slim = kb.apply_plan(original, plan)
    assert any(isinstance(layer, kb.layers.ChannelSelect) for layer in slim.layers)
    return original, plan, slim


def images(n=7, seed=0):
    return np.random.default_rng(seed).random((n, 8, 8, 3)).astype("float32")


def digits_cnn(channel_select=True):
    """A small CNN for 8x8 digits (Conv-BN-ReLU, strided Conv-BN-ReLU, Flatten, Dense)."""
    inp = keras.Input((8, 8, 1))
    x = L.Conv2D(16, 3, padding="same")(inp)
    x = L.BatchNormalization()(x)
    x = L.ReLU()(x)
    if channel_select:
        x = kb.layers.ChannelSelect([0, 1, 2, 4, 5, 7, 9, 11, 12, 15])(x)
    x = L.Conv2D(16, 3, strides=2, padding="same")(x)
    x = L.BatchNormalization()(x)
    x = L.ReLU()(x)
    x = L.Flatten()(x)
    return keras.Model(inp, L.Dense(10)(x), name="digits_cnn")


@functools.cache
def trained_digits():
    """``(model, (x_train, y_train), (x_test, y_test))``: `digits_cnn` trained 15 epochs."""
    (x_train, y_train), (x_test, y_test) = load_digits()
    keras.utils.set_random_seed(0)
    model = digits_cnn()
    model.compile(
        keras.optimizers.Adam(1e-3),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.fit(as_dataset(x_train, y_train, batch_size=32, shuffle=True, seed=0), epochs=15,
              shuffle=False, verbose=0)
    return model, (x_train, y_train), (x_test, y_test)


def accuracy(logits, y):
    return float(np.mean(np.argmax(logits, axis=-1) == y))
