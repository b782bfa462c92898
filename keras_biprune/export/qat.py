"""Quantization-aware training (tensorflow-model-optimization) before int8 TFLite export.

tfmot only quantizes Keras 2 (``tf_keras``) models, and importing it sets
``TF_USE_LEGACY_KERAS=1`` in the process. `quantization_aware_tflite` rebuilds
the Keras 3 model as ``tf_keras``, fine-tunes the quantized twin and converts
it; it leaves the process as it found it: ``tf.keras`` stays Keras 3 and the
environment variable gets its old value back (or stays unset).
"""

import functools
import logging
import os

import numpy as np

from keras_biprune import _backend
from keras_biprune._data import as_dataset
from keras_biprune._validate import check_int
from keras_biprune.errors import DataError, InvalidExportError, MissingDependencyError
from keras_biprune.export.tflite import calibration_samples, convert
from keras_biprune.layers import ChannelSelect

logger = logging.getLogger(__name__)

_LEGACY_KERAS = "TF_USE_LEGACY_KERAS"
_CALIBRATION_BATCHES = 8


def quantization_aware_tflite(
    model,
    x,
    y,
    *,
    epochs=1,
    batch_size=32,
    optimizer="adam",
    learning_rate=1e-4,
    loss=None,
    representative_data=None,
    verbose=0,
):
    """Fine-tunes ``model`` with simulated int8 quantization; returns an int8 TFLite model.

    The Keras 3 model is rebuilt as a Keras 2 (``tf_keras``) model with the
    same weights (checked to compute the same outputs), quantized with
    ``tfmot.quantization.keras.quantize_model`` (conv + batch-norm folded),
    calibrated by a few training-mode forward passes (a fresh quantized model
    predicts at chance until its input quantizer has seen data), fine-tuned on
    ``(x, y)`` and converted to full-integer TFLite. The input and output stay
    float32, as with ``to_tflite(..., quantize="int8")``. ``model`` itself is
    not changed, nor is the process: ``tf.keras`` stays Keras 3 and
    ``TF_USE_LEGACY_KERAS`` keeps its value. Regularizers and constraints of
    the model's layers are not carried over to the fine-tuning.

    Supported layers: Conv2D, DepthwiseConv2D, BatchNormalization, ReLU,
    Activation, Add, MaxPooling2D, AveragePooling2D, GlobalAveragePooling2D,
    Flatten, Dense, Dropout and `keras_biprune.layers.ChannelSelect`.
    Requires the ``tfmot`` extra: ``pip install keras-biprune[tfmot]``.

    Args:
        model: a Keras 3 functional or Sequential model with one input.
        x: training inputs, an array.
        y: training targets, an array.
        epochs: quantization-aware fine-tuning epochs (0: calibrate only).
        batch_size: samples per fine-tuning step.
        optimizer: the name of a Keras optimizer (``"adam"``, ``"sgd"``...).
        learning_rate: the optimizer's learning rate; keep it small, the model
            is already trained.
        loss: the loss, a name or a Keras loss; ``None`` takes the loss
            ``model`` was compiled with.
        representative_data: inputs that calibrate the converter, up to 100
            samples (an array, ``(x, y)``, or a batched ``tf.data.Dataset``);
            ``None`` uses ``x``.
        verbose: ``fit``'s verbosity during fine-tuning.

    Returns:
        The int8 TFLite flatbuffer, as bytes.

    Raises:
        MissingDependencyError: tensorflow-model-optimization or tf-keras is
            not installed.
        UnsupportedModelError: the model has a layer without a Keras 2 twin.
        QuantizationError: the Keras 2 rebuild computes other outputs.

    Example:

    ```python
    from keras_biprune.export import quantization_aware_tflite, run_tflite
    int8_bytes = quantization_aware_tflite(
        slim_model, x_train, y_train, epochs=1,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    accuracy = (run_tflite(int8_bytes, x_test).argmax(-1) == y_test).mean()
    ```
    """
    _backend.require_tensorflow("Quantization-aware TFLite export")
    import tensorflow as tf

    from keras_biprune.export import _tf_keras  # imports TensorFlow

    _tf_keras.check_graph_model(model)
    x, y = _training_arrays(x, y)
    loss = _loss(model, loss)
    _check_settings(epochs, batch_size, optimizer)
    samples = calibration_samples(
        model, x if representative_data is None else representative_data, 100
    )
    previous = os.environ.get(_LEGACY_KERAS)
    try:
        tf_keras, tfmot = _import_tfmot()
        quantized = _quantized_twin(model, tf_keras, tfmot, x[:64])
        _calibrate(quantized, x, batch_size)
        quantized.compile(optimizer=_optimizer(tf_keras, optimizer, learning_rate), loss=loss)
        if epochs:
            logger.info("Quantization-aware fine-tuning: %d epoch(s)", epochs)
            quantized.fit(
                as_dataset(x, y, batch_size=batch_size, shuffle=True, seed=0),
                epochs=epochs,
                verbose=verbose,
            )
        return convert(tf.lite.TFLiteConverter.from_keras_model(quantized), samples)
    finally:
        if previous is None:
            os.environ.pop(_LEGACY_KERAS, None)
        else:
            os.environ[_LEGACY_KERAS] = previous


def _import_tfmot():
    """Imports tf_keras and tfmot, with ``tf.keras`` pinned to Keras 3 first.

    ``tf.keras`` (and ``tf.compat.v1.keras``) resolve lazily, on first use,
    from ``TF_USE_LEGACY_KERAS``; tfmot sets that variable to 1 at import and
    then touches them. Resolving them now keeps them Keras 3 for good.
    """
    import tensorflow as tf

    try:
        for api in (tf, tf.compat.v1):
            dir(api.keras)  # resolves the lazy module while TF_USE_LEGACY_KERAS is unchanged
        import tensorflow_model_optimization as tfmot
        import tf_keras
    except ImportError as error:
        raise MissingDependencyError(
            "Quantization-aware training needs tensorflow-model-optimization and tf-keras. "
            f"Received: ImportError ({error}). Install them with "
            "`pip install keras-biprune[tfmot]`."
        ) from None
    return tf_keras, tfmot


def _quantized_twin(model, tf_keras, tfmot, x):
    """The tfmot-quantized ``tf_keras`` rebuild of ``model``, checked on ``x``."""
    from keras_biprune.export import _tf_keras  # imports TensorFlow

    api = tfmot.quantization.keras
    channel_select = _tf_keras.channel_select_class(tf_keras)
    no_op = _no_op_quantize_config(tfmot)

    def annotate(layer, twin):
        # tfmot knows no ChannelSelect: a gather of channels, nothing to quantize.
        return api.quantize_annotate_layer(twin, no_op()) if type(layer) is ChannelSelect else twin

    twin = _tf_keras.rebuild(model, tf_keras, annotate)
    _tf_keras.check_equal(model, twin, x)
    with api.quantize_scope({channel_select.__name__: channel_select, no_op.__name__: no_op}):
        return api.quantize_model(twin)


def _calibrate(quantized, x, batch_size):
    """A few training-mode forward passes, so the quantizers learn their ranges.

    A fresh tfmot model's input quantizer has no range yet: the model predicts
    at chance until it has seen data in training mode.
    """
    for start in range(0, min(len(x), _CALIBRATION_BATCHES * batch_size), batch_size):
        quantized(x[start : start + batch_size], training=True)


@functools.cache
def _no_op_quantize_config(tfmot):
    class NoOpQuantizeConfig(tfmot.quantization.keras.QuantizeConfig):
        """Quantizes nothing: for layers that only move values (ChannelSelect)."""

        def get_weights_and_quantizers(self, layer):
            return []

        def get_activations_and_quantizers(self, layer):
            return []

        def set_quantize_weights(self, layer, quantize_weights):
            pass

        def set_quantize_activations(self, layer, quantize_activations):
            pass

        def get_output_quantizers(self, layer):
            return []

        def get_config(self):
            return {}

    return NoOpQuantizeConfig


def _optimizer(tf_keras, name, learning_rate):
    optimizer = tf_keras.optimizers.get(name)
    optimizer.learning_rate = learning_rate
    return optimizer


def _loss(model, loss):
    loss = getattr(model, "loss", None) if loss is None else loss
    if loss is None:
        raise InvalidExportError(
            f"Quantization-aware fine-tuning needs a loss. Received: loss=None and model "
            f"{model.name!r} is not compiled. Pass e.g. "
            "loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)."
        )
    return loss


def _check_settings(epochs, batch_size, optimizer):
    for name, value, low in (("epochs", epochs, 0), ("batch_size", batch_size, 1)):
        check_int(name, value, low, InvalidExportError)
    if not isinstance(optimizer, str):
        raise InvalidExportError(
            "The quantized model trains in Keras 2, which cannot take a Keras 3 optimizer. "
            f"Received: optimizer of type {type(optimizer).__name__}. Pass its name "
            "(e.g. optimizer='adam') and learning_rate=..."
        )


def _training_arrays(x, y):
    x, y = np.asarray(x), np.asarray(y)
    if not (np.issubdtype(x.dtype, np.number) and np.issubdtype(y.dtype, np.number)):
        raise DataError(
            "Quantization-aware fine-tuning takes numeric arrays x and y. Received: x of "
            f"dtype {x.dtype}, y of dtype {y.dtype}. Pass e.g. x_train, y_train as NumPy arrays."
        )
    if x.ndim == 0 or y.ndim == 0 or len(x) != len(y) or len(x) == 0:
        raise DataError(
            "x and y must hold the same number of samples, at least one. "
            f"Received: x of shape {x.shape} and y of shape {y.shape}."
        )
    return x, y
