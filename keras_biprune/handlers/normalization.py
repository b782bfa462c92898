"""Handlers of layers that normalize across channels: layer, RMS and group norm.

Their output depends on which channels exist, not only on their values: the
slim layer computes its statistics over the kept channels only. That is the
defined reference. `masked_model` and the evaluator's batched engine, which
keep every channel and zero the pruned ones where a conv or dense layer reads
them, run these layers through `NormalizationHandler.masked_call`: the same
formula with the statistics taken over the kept channels, so slim == masked
holds. The pruned channels' outputs of the masked reference are never read.

``GroupNormalization(groups=G)`` keeps its ``G`` groups: the channels of
every group are tied position by position (as in a grouped conv), so each
group keeps the same offsets and the slim layer has ``G`` equal groups of
fewer channels, each normalized over its kept channels. With one channel per
group (``groups=-1`` or ``groups=C``, instance normalization) the statistics
do not cross channels and every channel prunes on its own.
"""

import keras
import numpy as np

from keras_biprune import _keras_internals as internals
from keras_biprune.errors import HandlerError
from keras_biprune.handlers.base import Channels, LayerHandler, normalize_axis


def _reduced_axes(layer, rank):
    """The negative axes a layer or RMS norm reduces over, sorted."""
    axes = layer.axis if isinstance(layer.axis, (list, tuple)) else [layer.axis]
    return sorted(normalize_axis(a, rank) for a in axes)


class NormalizationHandler(LayerHandler):
    """``LayerNormalization``, ``RMSNormalization`` and ``GroupNormalization``.

    Over the channel axis their channels prune with statistics over the kept
    channels (see the module docstring); over other axes only (a layer norm
    over the spatial axes) they are per-channel and have nothing to slice on
    the channel axis.
    """

    channel_statistics = True

    def trace(self, layer, inputs, ctx):
        x = inputs[0]
        if x is None:
            return [None]
        rank = len(ctx.input_shapes[0])
        if not isinstance(layer, keras.layers.GroupNormalization):
            axes = _reduced_axes(layer, rank)
            if x.axis in axes and len(axes) > 1:
                return ctx.opaque(inputs, f"{type(layer).__name__} normalizes over the "
                                          "channel axis and other axes together")
            return [x]
        if normalize_axis(layer.axis, rank) != x.axis:
            return ctx.opaque(inputs, "GroupNormalization axis is not the channel axis")
        groups = _groups(layer, len(x))
        if groups == len(x):
            return [x]  # instance normalization: no statistics across channels
        block = len(x) // groups
        first = Channels(x.labels[:block], x.axis)
        for g in range(1, groups):
            ctx.tie(Channels(x.labels[g * block:(g + 1) * block], x.axis), first)
        return [x]

    def prune_config(self, layer, config, io):
        keep = io.inputs[0]
        if keep is not None and isinstance(layer, keras.layers.GroupNormalization) \
                and config["groups"] == len(keep):
            config["groups"] = int(keep.sum())  # one group per channel
        return config

    def grow_config(self, layer, config, io):
        """Only instance normalization grows: elsewhere new channels would enter the
        statistics of the existing ones and change the layer's function."""
        keep = io.inputs[0]
        if keep is None or keep.all():
            return config
        if not (isinstance(layer, keras.layers.GroupNormalization)
                and config["groups"] == int(keep.sum())):
            raise HandlerError(
                f"{type(layer).__name__} {layer.name!r} normalizes across channels: new "
                "channels would change the statistics of the existing ones. Received: a "
                "group to grow through it. Leave the group's width fixed."
            )
        config["groups"] = len(keep)
        return config

    def prune_weights(self, layer, weights, io, take):
        x, keep = io.input_channels[0], io.inputs[0]
        if x is None:
            return list(weights)
        axis = self._weight_axis(layer, x, weights)
        if axis is None:
            return list(weights)
        return [take(w, axis, keep) for w in weights]

    def macs_per_entry(self, layer, input_shapes, output_shapes):
        return ()  # scales and shifts: no multiply-accumulates, as for batch norm

    @staticmethod
    def _weight_axis(layer, x, weights):
        """The channel axis of the layer's weights (negative), None when they do
        not follow the channels."""
        if isinstance(layer, keras.layers.GroupNormalization):
            return -1
        if not weights or x.axis not in _reduced_axes(layer, internals.first_input_rank(layer)):
            return None
        return -1

    def masked_call(self, layer, x, keep):
        """Layer, RMS or group norm with statistics over the channels where ``keep`` is 1."""
        dtype = x.dtype
        x = keras.ops.cast(x, "float32")
        keep = keras.ops.cast(keep, "float32")
        rank = len(x.shape)
        if isinstance(layer, keras.layers.GroupNormalization):
            return keras.ops.cast(_masked_group_norm(layer, x, keep), dtype)
        axes = _reduced_axes(layer, rank)
        view = [1] * rank
        for a in axes:
            view[a] = x.shape[a]

        def weight(w):
            return keras.ops.reshape(keras.ops.cast(w, "float32"), view)

        if isinstance(layer, keras.layers.RMSNormalization):
            square = _masked_mean(keras.ops.square(x), keep, axes)
            y = x * keras.ops.rsqrt(square + layer.epsilon) * weight(layer.scale)
            return keras.ops.cast(y, dtype)
        mean = _masked_mean(x, keep, axes)
        variance = _masked_mean(keras.ops.square(x - mean), keep, axes)
        inv = keras.ops.rsqrt(variance + layer.epsilon)
        if layer.rms_scaling:
            y = x * inv
            return keras.ops.cast(y * weight(layer.gamma) if layer.scale else y, dtype)
        y = (x - mean) * inv
        if layer.scale:
            y = y * weight(layer.gamma)
        if layer.center:
            y = y + weight(layer.beta)
        return keras.ops.cast(y, dtype)


def _groups(layer, channels):
    return channels if layer.groups == -1 else layer.groups


def _masked_mean(x, keep, axes):
    """The mean of ``x`` over ``axes`` counting only the entries where ``keep`` is 1."""
    total = keras.ops.sum(x * keep, axis=axes, keepdims=True)
    count = keras.ops.sum(keep * keras.ops.ones_like(x), axis=axes, keepdims=True)
    return total / keras.ops.maximum(count, 1.0)


def _masked_group_norm(layer, x, keep):
    """Group norm with each group's statistics over its kept channels (``keep`` has
    ``x``'s rank)."""
    rank = len(x.shape)
    axis = normalize_axis(layer.axis, rank) + rank
    channels = x.shape[axis]
    groups = _groups(layer, channels)

    def split(t):
        shape = [-1, *t.shape[1:]]
        shape[axis:axis + 1] = [groups, channels // groups]
        return keras.ops.reshape(t, shape)

    grouped = split(x)
    axes = [a for a in range(1, rank + 1) if a != axis]
    mean = _masked_mean(grouped, split(keep), axes)
    variance = _masked_mean(keras.ops.square(grouped - mean), split(keep), axes)
    y = keras.ops.reshape((grouped - mean) * keras.ops.rsqrt(variance + layer.epsilon),
                          keras.ops.shape(x))
    view = [1] * rank
    view[axis] = channels
    if layer.scale:
        y = y * keras.ops.reshape(keras.ops.cast(layer.gamma, "float32"), view)
    if layer.center:
        y = y + keras.ops.reshape(keras.ops.cast(layer.beta, "float32"), view)
    return y


def channel_keep(keep, axis, rank):
    """A 0/1 float array of rank ``rank`` with ``keep`` on ``axis`` (for `masked_call`)."""
    view = [1] * rank
    view[axis] = len(keep)
    return np.asarray(keep, "float32").reshape(view)
