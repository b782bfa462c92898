"""Handlers of layers whose output channels are their input channels."""

import keras
import numpy as np

from keras_biprune.errors import HandlerError
from keras_biprune.handlers.base import Channels, LayerHandler, channel_axis, normalize_axis


def _axes(axis, rank):
    axes = axis if isinstance(axis, (list, tuple)) else [axis]
    return {normalize_axis(a, rank) for a in axes}


class PassThroughHandler(LayerHandler):
    """Element-wise layers and operations (activations, dropout, noise, ``ops.relu``).

    The output carries the input's channels; there are no weights to slice.
    Activations that normalize across channels (softmax) freeze them.
    """

    def trace(self, layer, inputs, ctx):
        if _normalizes_channels(layer, inputs[0], len(ctx.input_shapes[0])):
            ctx.freeze(inputs[0], "softmax mixes channels")
        return [inputs[0]]

    def sliced_kind(self, layer):
        return "call"


def _normalizes_channels(layer, x, rank):
    if x is None:
        return False
    name = type(layer).__name__
    if name in ("Softmax", "LogSoftmax"):
        return x.axis in _axes(getattr(layer, "axis", -1), rank)
    activation = getattr(layer, "activation", None)
    return getattr(activation, "__name__", "") in ("softmax", "log_softmax")


class SpatialHandler(LayerHandler):
    """Pooling, padding, cropping, up-sampling and resizing: they act on the
    spatial axes given by ``data_format`` (channels last for the 1-D layers
    that have none) and keep every channel."""

    rearranges_only = True

    def trace(self, layer, inputs, ctx):
        x = inputs[0]
        rank = len(ctx.input_shapes[0])
        data_format = getattr(layer, "data_format", "channels_last")
        if x is not None and x.axis != channel_axis(data_format, rank):
            return ctx.opaque(inputs, f"{type(layer).__name__} treats the channel axis as spatial")
        return [x]

    def sliced_kind(self, layer):
        return "call"


class PadHandler(LayerHandler):
    """``ops.pad``: keeps every channel when it pads no entry of the channel axis."""

    rearranges_only = True

    def trace(self, layer, inputs, ctx):
        x = inputs[0]
        if x is None:
            return [None]
        widths = layer.pad_width
        rank = len(ctx.input_shapes[0])
        width = widths[0] if len(widths) == 1 else widths[rank + x.axis]
        if any(width):
            return ctx.opaque(inputs, f"pads the channel axis by {tuple(width)}")
        return [x]

    def sliced_kind(self, layer):
        return "call"


class GlobalPoolingHandler(LayerHandler):
    """``GlobalAveragePooling*``/``GlobalMaxPooling*``: channels survive, spatial axes go."""

    rearranges_only = True

    def trace(self, layer, inputs, ctx):
        x = inputs[0]
        rank = len(ctx.input_shapes[0])
        if x is None:
            return [None]
        if x.axis != channel_axis(layer.data_format, rank):
            return ctx.opaque(inputs, f"{type(layer).__name__} pools over the channel axis")
        axis = x.axis if layer.keepdims else -1
        return [Channels(x.labels, axis)]

    def sliced_kind(self, layer):
        return "call"


class ReductionHandler(LayerHandler):
    """``ops.mean``/``max``/``min``/``sum``/``var``/``std`` over non-channel axes
    (a squeeze-and-excite block's spatial mean): each channel is reduced on its own."""

    rearranges_only = True

    def trace(self, layer, inputs, ctx):
        x = inputs[0]
        if x is None:
            return [None]
        rank = len(ctx.input_shapes[0])
        axes = range(rank) if layer.axis is None else _axes(layer.axis, rank)
        axes = {normalize_axis(a, rank) for a in axes}
        if x.axis in axes:
            return ctx.opaque(inputs, f"{type(layer).__name__} reduces over the channel axis")
        if layer.keepdims:
            return [x]
        return [Channels(x.labels, x.axis + sum(1 for a in axes if a > x.axis))]

    def sliced_kind(self, layer):
        return "call"


class PerChannelHandler(LayerHandler):
    """Layers with one weight entry per channel: ``BatchNormalization``,
    ``PReLU``, ``Normalization``, ConvNeXt's ``LayerScale``.

    Every weight of rank ≥ 1 is sliced on its channel axis: the tensor's channel
    axis when the weight is shaped like the input (PReLU's alpha), else its last.

    Args:
        size_key: the config key holding the channel count, for custom
            per-channel layers that take it as an argument (ConvNeXt's
            ``LayerScale(projection_dim=...)``).
    """

    def __init__(self, size_key=None):
        self.size_key = size_key

    def trace(self, layer, inputs, ctx):
        x = inputs[0]
        if x is None:
            return [None]
        rank = len(ctx.input_shapes[0])
        name = type(layer).__name__
        if name == "PReLU":
            shared = {normalize_axis(a, rank) for a in (layer.shared_axes or [])}
            if x.axis in shared:
                ctx.freeze(x, "PReLU shares its alpha across channels")
            return [x]
        if hasattr(layer, "axis") and _axes(layer.axis, rank) != {x.axis}:
            ctx.freeze(x, f"{name} axis {layer.axis} is not the channel axis {x.axis}")
        return [x]

    def prune_config(self, layer, config, io):
        keep = io.inputs[0]
        if keep is None:
            return config
        if self.size_key is not None:
            config[self.size_key] = int(keep.sum())
        for key in ("mean", "variance"):
            value = config.get(key)
            if value is not None and np.size(value) > 1:
                value = np.asarray(value)
                config[key] = np.compress(keep, value, axis=self._axis(value, io)).tolist()
        return config

    def grow_config(self, layer, config, io):
        keep = io.inputs[0]
        if keep is None or keep.all():
            return config
        for key in ("mean", "variance"):
            if np.size(config.get(key)) > 1:
                raise HandlerError(
                    f"{type(layer).__name__} {layer.name!r} holds per-channel {key} values in "
                    "its config, which new channels have none of. Received: a group to grow "
                    "through it. Adapt the layer after growing, or leave the group's width fixed."
                )
        if self.size_key is not None:
            config[self.size_key] = len(keep)
        return config

    def prune_weights(self, layer, weights, io, take):
        keep = io.inputs[0]
        return [w if w.ndim == 0 else take(w, self._axis(w, io), keep) for w in weights]

    def macs_per_entry(self, layer, input_shapes, output_shapes):
        return ()  # scales and shifts: no multiply-accumulates by convention

    def sliced_kind(self, layer):
        """``"bn"`` for a ``BatchNormalization`` over the last axis."""
        if isinstance(layer, keras.layers.BatchNormalization) and layer.axis in (
                -1, len(layer.input.shape) - 1):
            return "bn"
        return None

    @staticmethod
    def _axis(array, io):
        x = io.input_channels[0]
        return x.axis if x is not None and array.ndim >= -x.axis else -1


class RescalingHandler(PassThroughHandler):
    """``Rescaling`` with scalar scale and offset is element-wise."""

    def trace(self, layer, inputs, ctx):
        if np.size(layer.scale) > 1 or np.size(layer.offset) > 1:
            return ctx.opaque(inputs, "Rescaling with per-channel scale or offset")
        return [inputs[0]]


class InferenceIdentityHandler(LayerHandler):
    """The handler of a layer no handler is registered for.

    A weightless layer that returns its input unchanged at inference (a
    user's ``StochasticDepth`` or drop-path, which only acts while training)
    passes its channels on; the tracer finds out by calling it once, with
    ``training=False``, on a random tensor of its input's shape. Any other
    layer is opaque: its channels are frozen.
    """

    def trace(self, layer, inputs, ctx):
        if _identity_at_inference(layer, ctx):
            return [inputs[0]]
        return super().trace(layer, inputs, ctx)

    def sliced_kind(self, layer):
        return "call"


def _identity_at_inference(layer, ctx):
    shapes = ctx.input_shapes
    if (not isinstance(layer, keras.layers.Layer) or layer.weights or len(shapes) != 1
            or ctx.output_shapes != shapes or ctx.constants):
        return False
    shape = tuple(2 if d is None else d for d in shapes[0])
    probe = np.random.default_rng(0).standard_normal(shape).astype(keras.config.floatx())
    try:
        output = layer(probe, training=False)
    except Exception:  # noqa: BLE001 - a layer that cannot be probed is opaque
        return False
    return np.array_equal(keras.ops.convert_to_numpy(output), probe)
