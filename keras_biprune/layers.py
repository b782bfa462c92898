"""Layers that pruned models may contain."""

import keras
import numpy as np


@keras.saving.register_keras_serializable(package="keras_biprune")
class ChannelSelect(keras.layers.Layer):
    """Passes on a subset of its input's channels, in order.

    `apply_plan` puts one in front of a layer whose plan reads only some of
    the channels its input carries (a lower-level, per-consumer channel mask),
    so the layer's kernel loses those rows while other readers of the tensor
    keep them. Import ``keras_biprune`` before loading a saved model with one.

    Args:
        indices: the kept channel indices, increasing.
        axis: the channel axis (negative, counted from the end).

    Example:

    ```python
    import numpy as np
    from keras_biprune.layers import ChannelSelect
    ChannelSelect([0, 2])(np.arange(4.0).reshape(1, 4))   # [[0., 2.]]
    ```
    """

    def __init__(self, indices, axis=-1, **kwargs):
        super().__init__(**kwargs)
        self.indices = [int(i) for i in np.asarray(indices).ravel()]
        self.axis = int(axis)

    def call(self, inputs):
        return keras.ops.take(inputs, np.asarray(self.indices, dtype="int32"), axis=self.axis)

    def compute_output_shape(self, input_shape):
        shape = list(input_shape)
        shape[self.axis] = len(self.indices)
        return tuple(shape)

    def get_config(self):
        return {**super().get_config(), "indices": list(self.indices), "axis": self.axis}


class KeptChannelsReference(keras.layers.Layer):
    """Runs a layer as if only the kept channels of its input existed.

    `keras_biprune.surgery.masked_model` wraps a layer that normalizes across
    channels in one, so the masked reference computes the statistics the slim
    layer computes (over the kept channels only). Reference models are not
    meant to be saved: this layer has no config.

    Args:
        layer: the (built or unbuilt) layer, with the original's full weights.
        masked_call: ``masked_call(layer, x, keep)``, the handler's
            `keras_biprune.LayerHandler.masked_call`.
        keep: 0/1 floats of the input's rank, the channel keep-mask on the
            channel axis and 1 elsewhere.
    """

    def __init__(self, layer, masked_call, keep, **kwargs):
        super().__init__(name=layer.name, **kwargs)
        self.layer = layer
        self.masked_call = masked_call
        self.keep = np.asarray(keep, "float32")

    def build(self, input_shape):
        self.layer.build(input_shape)

    def call(self, inputs):
        return self.masked_call(self.layer, inputs, self.keep)

    def compute_output_shape(self, input_shape):
        return input_shape
