"""quantization_aware_tflite: the Keras 2 rebuild, QAT accuracy against PTQ, errors."""

import importlib.util
import os
import sys

import keras
import numpy as np
import pytest
from equivalence import weights_snapshot
from export_models import accuracy, images, pruned_chain, trained_digits
from zoo import randomize_weights

import keras_biprune as kb
from keras_biprune.errors import UnsupportedModelError
from keras_biprune.export import (
    InvalidExportError,
    MissingDependencyError,
    QuantizationError,
    _tf_keras,
    quantization_aware_tflite,
    run_tflite,
    to_tflite,
)

tf_keras = pytest.importorskip("tf_keras")
# Importing tfmot here would flip TF_USE_LEGACY_KERAS for the whole test process.
if importlib.util.find_spec("tensorflow_model_optimization") is None:
    pytest.skip("needs the tfmot extra", allow_module_level=True)
L = keras.layers


def every_supported_layer():
    """Two heads over Conv, DepthwiseConv, BN, ReLU, Activation, Add, ChannelSelect, pools."""
    inp = keras.Input((8, 8, 3))
    x = L.ReLU()(L.BatchNormalization()(L.Conv2D(6, 3, padding="same")(inp)))
    y = L.DepthwiseConv2D(3, padding="same")(x)
    y = L.Activation("relu")(L.BatchNormalization()(y))
    x = kb.layers.ChannelSelect([0, 2, 3, 5])(L.Add()([x, y]))
    x = L.MaxPooling2D(2, strides=1)(L.AveragePooling2D(2)(x))
    flat = L.Dropout(0.3)(L.Dense(8, activation="relu")(L.Flatten()(x)))
    outputs = [L.Dense(3)(flat), L.Dense(2, activation="softmax")(L.GlobalAveragePooling2D()(x))]
    return randomize_weights(keras.Model(inp, outputs, name="every_layer"), seed=1)


def test_keras_2_rebuild_computes_the_same_outputs():
    model = every_supported_layer()
    twin = _tf_keras.rebuild(model, tf_keras)
    assert all(isinstance(layer, tf_keras.layers.Layer) for layer in twin.layers)
    x = images(4)
    for expected, received in zip(model(x), twin(x, training=False)):
        np.testing.assert_allclose(np.asarray(received), np.asarray(expected), rtol=0, atol=1e-5)
    _tf_keras.check_equal(model, twin, x)
    twin.layers[1].set_weights([w + 1.0 for w in twin.layers[1].get_weights()])
    with pytest.raises(QuantizationError, match="largest difference"):
        _tf_keras.check_equal(model, twin, x)


def test_qat_int8_accuracy_is_close_to_float_and_ptq():
    model, (x_train, y_train), (x_test, y_test) = trained_digits()
    weights = weights_snapshot(model)
    float_accuracy = accuracy(model.predict(x_test, verbose=0), y_test)
    ptq = to_tflite(model, quantize="int8", representative_data=x_train)
    qat = quantization_aware_tflite(model, x_train, y_train, epochs=1)
    ptq_accuracy = accuracy(run_tflite(ptq, x_test), y_test)
    qat_accuracy = accuracy(run_tflite(qat, x_test), y_test)
    print(f"digits: float {float_accuracy:.4f}  PTQ int8 {ptq_accuracy:.4f}  "
          f"QAT int8 {qat_accuracy:.4f}")
    assert float_accuracy >= 0.9
    assert qat_accuracy >= float_accuracy - 0.03
    assert ptq_accuracy >= float_accuracy - 0.05
    for before, after in zip(weights, model.get_weights()):
        np.testing.assert_array_equal(before, after)


def test_calibration_alone_keeps_accuracy():
    # A fresh tfmot model predicts at chance until its input quantizer saw data.
    model, (x_train, y_train), (x_test, y_test) = trained_digits()
    calibrated = quantization_aware_tflite(model, x_train, y_train, epochs=0)
    float_accuracy = accuracy(model.predict(x_test, verbose=0), y_test)
    assert accuracy(run_tflite(calibrated, x_test), y_test) >= float_accuracy - 0.05


def twice(x):
    return 2 * x


@pytest.mark.parametrize("build, match", [
    (lambda inp: L.LayerNormalization(name="norm")(inp), r"Layer 'norm' \(LayerNormalization\)"),
    (lambda inp: inp + inp, r"\(Add, a keras.ops call\)"),
    (lambda inp: L.Conv2D(2, 3, activation=twice, name="conv")(inp),
     "Layer 'conv' .* custom activation"),
])
def test_unsupported_layers_are_named(build, match):
    inp = keras.Input((8, 8, 3))
    model = keras.Model(inp, L.Flatten()(build(inp)))
    before = os.environ.get("TF_USE_LEGACY_KERAS")
    with pytest.raises(UnsupportedModelError, match=match):
        quantization_aware_tflite(model, images(4), np.zeros(4), loss="mse")
    assert os.environ.get("TF_USE_LEGACY_KERAS") == before


def test_missing_tfmot_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow_model_optimization", None)
    before = os.environ.get("TF_USE_LEGACY_KERAS")
    with pytest.raises(MissingDependencyError, match=r"pip install keras-biprune\[tfmot\]") as e:
        quantization_aware_tflite(pruned_chain()[2], images(4), np.zeros(4), loss="mse")
    assert isinstance(e.value, ImportError)
    assert os.environ.get("TF_USE_LEGACY_KERAS") == before


@pytest.mark.parametrize("kwargs, match", [
    ({}, "Received: loss=None and model 'chain' is not compiled"),
    ({"loss": "mse", "optimizer": keras.optimizers.Adam()}, "Received: optimizer of type Adam"),
    ({"loss": "mse", "epochs": -1}, "Received: epochs=-1"),
])
def test_bad_settings_are_refused(kwargs, match):
    with pytest.raises(InvalidExportError, match=match):
        quantization_aware_tflite(pruned_chain()[2], images(4), np.zeros(4), **kwargs)


class Subclassed(keras.Model):
    def __init__(self):
        super().__init__()
        self.dense = L.Dense(2)

    def call(self, inputs):
        return self.dense(L.Flatten()(inputs))


def test_subclassed_models_are_refused():
    model = Subclassed()
    model(images(1))
    with pytest.raises(UnsupportedModelError, match="Received: model of type Subclassed"):
        quantization_aware_tflite(model, images(4), np.zeros(4), loss="mse")
    with pytest.raises(UnsupportedModelError, match="Received: model of type Subclassed"):
        to_tflite(model, quantize="int8", representative_data=images(4))
