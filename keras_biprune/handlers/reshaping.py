"""Handlers of layers that move elements around: flatten, reshape, permute.

Each is traced by moving a map of channel labels (one label per element) the
way the layer moves the data, then asking whether the result still has one
channel axis: labels varying along exactly one axis and constant along all
others. If so, the layer is provably channel-preserving and pruning a channel
removes whole slices of its output; otherwise its channels are frozen.
"""

import numpy as np

from keras_biprune.errors import HandlerError
from keras_biprune.handlers.base import Channels, LayerHandler


def _element_labels(channels, shape):
    """An array of ``shape`` (no batch axis) holding each element's channel label."""
    axis = len(shape) + channels.axis
    view = [1] * len(shape)
    view[axis] = len(channels)
    return np.broadcast_to(channels.labels.reshape(view), shape)


def _single_channel_axis(labels):
    """The negative axis along which ``labels`` vary while constant elsewhere, or None."""
    for axis in range(labels.ndim - 1, -1, -1):
        index = [0] * labels.ndim
        index[axis] = slice(None)
        line = labels[tuple(index)]
        view = [1] * labels.ndim
        view[axis] = len(line)
        if np.array_equal(labels, np.broadcast_to(line.reshape(view), labels.shape)):
            return Channels(np.ascontiguousarray(line), axis - labels.ndim)
    return None


class ElementMapHandler(LayerHandler):
    """Base for layers that permute or reshape elements without computing."""

    rearranges_only = True

    def move(self, layer, labels, out_shape):
        """Moves the label map as the layer moves data; None when it cannot tell."""
        raise NotImplementedError

    def trace(self, layer, inputs, ctx):
        x = inputs[0]
        if x is None:
            return [None]
        in_shape, out_shape = ctx.input_shapes[0][1:], ctx.output_shapes[0][1:]
        if None in in_shape or None in out_shape:
            return ctx.opaque(inputs, f"{type(layer).__name__} with unknown static shape")
        try:
            moved = self.move(layer, _element_labels(x, in_shape), out_shape)
        except ValueError:  # the batch axis is folded into the others
            moved = None
        out = None if moved is None else _single_channel_axis(moved)
        if out is None:
            return ctx.opaque(inputs, f"{type(layer).__name__} mixes channels with other axes")
        return [out]


class ReshapeHandler(ElementMapHandler):
    """``Reshape``, ``ops.reshape``, ``ops.expand_dims`` and ``ops.squeeze``.

    The target shape's entry on the channel axis becomes the kept count.
    """

    def move(self, layer, labels, out_shape):
        return labels.reshape(out_shape)

    def prune_config(self, layer, config, io):
        key = "target_shape" if "target_shape" in config else "newshape"
        if key not in config or io.outputs[0] is None:
            return config
        shape = list(config[key])
        axis = len(shape) + io.output_channels[0].axis
        if shape[axis] != -1:
            keep = io.outputs[0]
            shape[axis] = int(keep.sum())
        config[key] = tuple(shape)
        return config


class FlattenHandler(ElementMapHandler):
    """``Flatten``: each channel owns H·W entries (consecutive ones in
    ``channels_first``, strided ones in ``channels_last``)."""

    def move(self, layer, labels, out_shape):
        if layer.data_format == "channels_first" and labels.ndim > 1:
            labels = np.moveaxis(labels, 0, -1)
        return labels.reshape(out_shape)

    def sliced_kind(self, layer):
        return "call"


class PermuteHandler(ElementMapHandler):
    """``Permute`` and ``ops.transpose`` (with the batch axis left first)."""

    def move(self, layer, labels, out_shape):
        dims = getattr(layer, "dims", None)
        if dims is not None:
            return labels.transpose([d - 1 for d in dims])
        axes = layer.axes
        if axes is None or axes[0] != 0:
            return None  # moves the batch axis
        return labels.transpose([a - 1 for a in axes[1:]])


class ChannelSelectHandler(LayerHandler):
    """``keras_biprune.layers.ChannelSelect``: its output carries the selected atoms."""

    def trace(self, layer, inputs, ctx):
        x = inputs[0]
        if x is None:
            return [None]
        if x.axis != layer.axis:
            return ctx.opaque(inputs, "ChannelSelect reads another axis than the channels")
        return [Channels(x.labels[layer.indices], x.axis)]

    def prune_config(self, layer, config, io):
        keep_in = io.inputs[0]
        if keep_in is not None:
            position = np.cumsum(keep_in) - 1
            config["indices"] = [int(position[i]) for i in layer.indices if keep_in[i]]
        return config

    def grow_config(self, layer, config, io):
        if io.inputs[0] is None or io.inputs[0].all():
            return config
        raise HandlerError(
            f"ChannelSelect {layer.name!r} passes on chosen channels only; new channels would "
            "not reach its consumer. Received: a group to grow through it. Grow the model "
            "before lower-level pruning, or leave the group's width fixed."
        )


class _BlockHandler(LayerHandler):
    """``ops.depth_to_space`` and ``ops.space_to_depth`` in channels last."""

    rearranges_only = True

    def trace(self, layer, inputs, ctx):
        x = inputs[0]
        if x is None:
            return [None]
        if layer.data_format != "channels_last":
            return ctx.opaque(inputs, f"{type(layer).__name__} with channels_first")
        return [self.channels(x, layer.block_size ** 2, ctx)]

    def channels(self, x, blocks, ctx):
        """The output's channels, for ``blocks`` positions per block."""
        raise NotImplementedError

    def sliced_kind(self, layer):
        return "call"


class DepthToSpaceHandler(_BlockHandler):
    """``ops.depth_to_space``: output channel ``c`` gathers input channels
    ``k·C' + c`` of every block position ``k``, which are tied."""

    def channels(self, x, blocks, ctx):
        rows = x.labels.reshape(blocks, -1)
        for row in rows[1:]:
            ctx.tie(Channels(rows[0], x.axis), Channels(row, x.axis))
        return Channels(rows[0], x.axis)


class SpaceToDepthHandler(_BlockHandler):
    """``ops.space_to_depth``: the output repeats the input's channels once
    per block position."""

    def channels(self, x, blocks, ctx):
        return Channels(np.tile(x.labels, blocks), x.axis)
