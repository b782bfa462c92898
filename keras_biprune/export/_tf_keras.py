"""Rebuilds a Keras 3 model as an equivalent Keras 2 (``tf_keras``) model.

tensorflow-model-optimization only quantizes Keras 2 models. The rebuild walks
the Keras 3 graph node by node, creates each layer's ``tf_keras`` twin from its
config (without initializers, regularizers, constraints and Keras-3-only keys)
and copies the weights; `check_equal` then proves both compute the same.
``tf_keras`` is imported by the caller and passed in: it is an optional extra.
"""

import functools

import keras
import numpy as np
import tensorflow as tf

from keras_biprune import _keras_internals as internals
from keras_biprune.errors import QuantizationError, UnsupportedModelError
from keras_biprune.layers import ChannelSelect

_LAYERS = (
    keras.layers.Activation,
    keras.layers.Add,
    keras.layers.AveragePooling2D,
    keras.layers.BatchNormalization,
    keras.layers.Conv2D,
    keras.layers.Dense,
    keras.layers.DepthwiseConv2D,
    keras.layers.Dropout,
    keras.layers.Flatten,
    keras.layers.GlobalAveragePooling2D,
    keras.layers.MaxPooling2D,
    keras.layers.ReLU,
)
SUPPORTED = tuple(sorted(cls.__name__ for cls in _LAYERS)) + ("ChannelSelect",)
"""Names of the layer classes `rebuild` translates (exact classes, not subclasses)."""

_KERAS3_ONLY_KEYS = ("quantization_config", "lora_rank", "lora_alpha")
_UNTRANSLATED_SUFFIXES = ("_initializer", "_regularizer", "_constraint")


def rebuild(model, tf_keras, wrap=None):
    """Returns a ``tf_keras`` functional model with ``model``'s layers and weights.

    Args:
        model: a Keras 3 functional or Sequential model of `SUPPORTED` layers.
        tf_keras: the imported ``tf_keras`` module.
        wrap: optional ``wrap(keras3_layer, tf_keras_layer) -> layer`` applied to
            each new layer before it is called (e.g. a quantization annotation).

    Raises:
        UnsupportedModelError: ``model`` is not a graph model, or has a layer
            without a ``tf_keras`` twin (the message names it).
    """
    check_graph_model(model)
    inputs, outputs, nodes = internals.graph_of(model)
    new_inputs = [
        tf_keras.Input(batch_shape=t.shape, dtype=t.dtype, name=internals.input_name(t))
        for t in inputs
    ]
    tensor_map = {id(t): n for t, n in zip(inputs, new_inputs)}
    twins = {}
    for node in nodes:
        layer = node.operation
        if id(layer) not in twins:
            twin = _twin(layer, tf_keras)
            twins[id(layer)] = (layer, twin if wrap is None else wrap(layer, twin))
        args, kwargs = internals.node_arguments(node, tensor_map)
        new_outputs = tf.nest.flatten(twins[id(layer)][1](*args, **kwargs))
        for tensor, new in zip(node.outputs, new_outputs):
            tensor_map[id(tensor)] = new
    new_model = tf_keras.Model(
        new_inputs if len(new_inputs) > 1 else new_inputs[0],
        [tensor_map[id(t)] for t in outputs] if len(outputs) > 1 else tensor_map[id(outputs[0])],
        name=model.name,
    )
    for layer, twin in twins.values():
        try:
            twin.set_weights(layer.get_weights())
        except ValueError as error:
            raise UnsupportedModelError(
                f"Layer {layer.name!r} ({type(layer).__name__}) holds weights its Keras 2 twin "
                f"cannot take ({error}). Received: a layer with weights "
                f"{[tuple(w.shape) for w in layer.weights]}. Quantize this model after "
                "training with to_tflite(model, quantize='int8', representative_data=...)."
            ) from None
    return new_model


def check_graph_model(model):
    """Raises `UnsupportedModelError` unless ``model`` is a functional or built Sequential model."""
    if not internals.is_graph_model(model):
        raise UnsupportedModelError(
            "Quantization-aware training rebuilds a functional or Sequential Keras 3 model. "
            f"Received: model of type {type(model).__name__}. Build the model with "
            "keras.Model(inputs, outputs) or a built keras.Sequential."
        )


def check_equal(model, tf_keras_model, x, atol=1e-5):
    """Raises `QuantizationError` unless both models give equal outputs on ``x``."""
    expected = [np.asarray(a) for a in keras.tree.flatten(model(x, training=False))]
    received = [np.asarray(a) for a in tf.nest.flatten(tf_keras_model(x, training=False))]
    worst = max(float(np.max(np.abs(e - r), initial=0.0)) for e, r in zip(expected, received))
    if not worst <= atol:
        raise QuantizationError(
            f"The Keras 2 rebuild of model {model.name!r} must compute the same outputs as "
            f"the model (within {atol}). Received: a largest difference of {worst:.3g}. "
            "A layer config did not translate; quantize with to_tflite(model, "
            "quantize='int8', representative_data=...) instead, and report the model."
        )


def _twin(layer, tf_keras):
    """A new ``tf_keras`` layer configured like the Keras 3 ``layer``."""
    if type(layer) is ChannelSelect:
        return channel_select_class(tf_keras)(layer.indices, axis=layer.axis, name=layer.name)
    if type(layer) not in _LAYERS:
        kind = type(layer).__name__
        if not isinstance(layer, keras.layers.Layer):
            kind += ", a keras.ops call"
        raise UnsupportedModelError(
            f"Layer {layer.name!r} ({kind}) has no Keras 2 equivalent for "
            f"quantization-aware training. Received: a model with that layer. Supported "
            f"layers: {', '.join(SUPPORTED)}. Quantize this model with to_tflite(model, "
            "quantize='int8', representative_data=...) (post-training) instead."
        )
    config = {
        key: value
        for key, value in layer.get_config().items()
        if key not in _KERAS3_ONLY_KEYS and not key.endswith(_UNTRANSLATED_SUFFIXES)
    }
    config["dtype"] = layer.dtype_policy.name
    if not isinstance(config.get("activation", ""), str):
        raise UnsupportedModelError(
            f"Layer {layer.name!r} ({type(layer).__name__}) uses a custom activation, which "
            f"has no Keras 2 equivalent. Received: activation={config['activation']!r}. "
            "Use a built-in activation name such as 'relu'."
        )
    return getattr(tf_keras.layers, type(layer).__name__).from_config(config)


@functools.cache
def channel_select_class(tf_keras):
    """The ``tf_keras`` twin of `keras_biprune.layers.ChannelSelect`."""

    class TFKerasChannelSelect(tf_keras.layers.Layer):
        """Passes on a subset of its input's channels (Keras 2 twin of ChannelSelect)."""

        def __init__(self, indices, axis=-1, **kwargs):
            super().__init__(**kwargs)
            self.indices = [int(i) for i in indices]
            self.axis = int(axis)

        def call(self, inputs):
            return tf.gather(inputs, self.indices, axis=self.axis)

        def get_config(self):
            return {**super().get_config(), "indices": self.indices, "axis": self.axis}

    return TFKerasChannelSelect
