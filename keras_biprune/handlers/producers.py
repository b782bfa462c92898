"""Handlers of layers that make new channels: convolutions, dense layers, embeddings."""

import keras
import numpy as np

from keras_biprune.handlers.base import Channels, LayerHandler, channel_axis, positions

_CHANNEL_MIXING_ACTIVATIONS = ("softmax", "log_softmax")


def _activation_name(layer):
    activation = getattr(layer, "activation", None)
    return getattr(activation, "__name__", str(activation))


def _expect_weights(layer, names, ctx, inputs):
    """Returns None when the layer has exactly these weights (and its bias, if it
    uses one), else opaque outputs."""
    names = list(names) + (["bias"] if layer.use_bias else [])
    found = [w.name for w in layer.weights]
    if found != names:
        return ctx.opaque(
            inputs,
            f"{type(layer).__name__} has weights {found}, expected {names} "
            "(quantized or LoRA layers are not pruned)",
        )
    return None


class ConvHandler(LayerHandler):
    """``Conv1D/2D/3D`` (also ``groups > 1``) and ``Dense``.

    The output channels are new atoms. The kernel's input axis reads the input
    channels. With ``groups=G`` each of the G input blocks is tied position by
    position (every group keeps the same input offsets) and the output is G
    copies of one set of atoms, so the slim layer still has G equal groups.
    With one input channel per group (a depthwise conv written as a grouped
    conv, as in ConvNeXt) the outputs follow their input channel instead, and
    pruning a channel drops its whole group.
    """

    kernel_in_axis = -2
    kernel_out_axis = -1
    size_key = "filters"
    scores_inputs = True
    masks_kernel = True

    def _axis(self, layer, rank):
        return channel_axis(getattr(layer, "data_format", "channels_last"), rank)

    def trace(self, layer, inputs, ctx):
        opaque = _expect_weights(layer, ["kernel"], ctx, inputs)
        if opaque is not None:
            return opaque
        x = inputs[0]
        in_axis = self._axis(layer, len(ctx.input_shapes[0]))
        if x is not None and x.axis != in_axis:
            ctx.freeze(x, f"{type(layer).__name__} reads channels on axis {in_axis}, "
                          f"the input's channels are on axis {x.axis}")
            x = None
        groups = getattr(layer, "groups", 1)
        out_axis = self._axis(layer, len(ctx.output_shapes[0]))
        n = ctx.output_shapes[0][out_axis]
        if self._depthwise(layer, x):
            out = Channels(np.repeat(x.labels, n // groups), out_axis)
        else:
            if x is not None and groups > 1:
                block = len(x) // groups
                first = Channels(x.labels[:block], x.axis)
                for g in range(1, groups):
                    ctx.tie(Channels(x.labels[g * block:(g + 1) * block], x.axis), first)
            per_group = ctx.new(n // groups, out_axis)
            out = Channels(np.tile(per_group.labels, groups), out_axis)
        if _activation_name(layer) in _CHANNEL_MIXING_ACTIVATIONS:
            ctx.freeze(out, f"{_activation_name(layer)} activation mixes channels")
        return [out]

    @staticmethod
    def _depthwise(layer, x):
        """True when each group reads exactly one channel of ``x``."""
        groups = getattr(layer, "groups", 1)
        return groups > 1 and x is not None and len(x) == groups

    def prune_config(self, layer, config, io):
        if io.outputs[0] is not None:
            config[self.size_key] = int(io.outputs[0].sum())
        if self._depthwise(layer, io.input_channels[0]):
            config["groups"] = int(io.inputs[0].sum())
        return config

    def prune_weights(self, layer, weights, io, take):
        keep_in, keep_out = io.inputs[0], io.outputs[0]
        groups = getattr(layer, "groups", 1)
        if self._depthwise(layer, io.input_channels[0]):
            keep_in = None  # one input row per group: dropping a group drops its filters
        elif keep_in is not None and groups > 1:
            keep_in = keep_in[: len(keep_in) // groups]
        kernel = take(weights[0], self.kernel_in_axis, keep_in, consumed=True)
        kernel = take(kernel, self.kernel_out_axis, keep_out)
        return [kernel] + [take(b, -1, keep_out) for b in weights[1:]]

    def macs_per_entry(self, layer, input_shapes, output_shapes):
        """Each kernel entry works once per output position (a Dense layer on
        a rank > 2 tensor: once per entry of the non-batch, non-last axes)."""
        shape = output_shapes[0]
        return [positions(shape, self._axis(layer, len(shape)))]

    def kernel_columns(self, layer):
        kernel = np.moveaxis(keras.ops.convert_to_numpy(layer.kernel), self.kernel_out_axis, -1)
        return kernel.reshape(-1, kernel.shape[-1])

    def input_magnitudes(self, layer):
        """The absolute kernel summed over its spatial axes."""
        kernel = np.abs(keras.ops.convert_to_numpy(layer.kernel))
        kernel = kernel.reshape(-1, *kernel.shape[-2:]).sum(axis=0)
        return kernel.T if self.kernel_out_axis == -2 else kernel

    def sliced_kind(self, layer):
        """``"conv"`` for a 1-D or 2-D conv with ``groups=1`` and no causal padding."""
        if getattr(layer, "rank", None) in (1, 2) and getattr(layer, "groups", 1) == 1:
            return None if layer.padding == "causal" else "conv"
        return None


class DenseHandler(ConvHandler):
    """``Dense``: a kernel of shape (inputs, units) applied on the last axis."""

    size_key = "units"

    def sliced_kind(self, layer):
        """``"dense"`` for ``keras.layers.Dense`` itself (a subclass may change its call)."""
        return "dense" if type(layer) is keras.layers.Dense else None


class ConvTransposeHandler(ConvHandler):
    """``Conv1D/2D/3DTranspose``: the kernel stores (…, filters, inputs)."""

    kernel_in_axis = -1
    kernel_out_axis = -2
    masks_kernel = False

    def macs_per_entry(self, layer, input_shapes, output_shapes):
        """Each kernel entry works once per *input* position."""
        shape = input_shapes[0]
        return [positions(shape, self._axis(layer, len(shape)))]

    def sliced_kind(self, layer):
        """None: the sliced engine does not run transposed convolutions."""


class DepthwiseConvHandler(LayerHandler):
    """``DepthwiseConv1D/2D``: each input channel makes ``depth_multiplier``
    outputs, so the outputs are the input's atoms, each repeated."""

    scores_inputs = True

    def trace(self, layer, inputs, ctx):
        opaque = _expect_weights(layer, ["kernel"], ctx, inputs)
        if opaque is not None:
            return opaque
        x = inputs[0]
        axis = channel_axis(layer.data_format, len(ctx.input_shapes[0]))
        if x is None:
            return [None]
        if x.axis != axis:
            return ctx.opaque(inputs, "depthwise conv reads channels on another axis")
        return [Channels(np.repeat(x.labels, layer.depth_multiplier), axis)]

    def prune_weights(self, layer, weights, io, take):
        kernel = take(weights[0], -2, io.inputs[0])
        return [kernel] + [take(b, -1, io.outputs[0]) for b in weights[1:]]

    def macs_per_entry(self, layer, input_shapes, output_shapes):
        shape = output_shapes[0]
        return [positions(shape, channel_axis(layer.data_format, len(shape)))]

    def kernel_columns(self, layer):
        """Each output entry's depthwise kernel slice (the kernel is (…, inputs, multiplier))."""
        kernel = keras.ops.convert_to_numpy(layer.kernel)
        return kernel.reshape(-1, kernel.shape[-2] * kernel.shape[-1])

    def sliced_kind(self, layer):
        return "depthwise" if getattr(layer, "rank", None) == 2 else None


class SeparableConvHandler(LayerHandler):
    """``SeparableConv1D/2D``: depthwise (tied to the input) then pointwise (new
    output channels)."""

    scores_inputs = True

    def trace(self, layer, inputs, ctx):
        opaque = _expect_weights(layer, ["depthwise_kernel", "pointwise_kernel"], ctx, inputs)
        if opaque is not None:
            return opaque
        x = inputs[0]
        axis = channel_axis(layer.data_format, len(ctx.input_shapes[0]))
        if x is not None and x.axis != axis:
            ctx.freeze(x, "separable conv reads channels on another axis")
        out_axis = channel_axis(layer.data_format, len(ctx.output_shapes[0]))
        return [ctx.new(ctx.output_shapes[0][out_axis], out_axis)]

    def prune_config(self, layer, config, io):
        config["filters"] = int(io.outputs[0].sum())
        return config

    def prune_weights(self, layer, weights, io, take):
        keep_in, keep_out = io.inputs[0], io.outputs[0]
        depthwise = take(weights[0], -2, keep_in)
        keep_mid = None if keep_in is None else np.repeat(keep_in, layer.depth_multiplier)
        pointwise = take(weights[1], -2, keep_mid, consumed=True)
        pointwise = take(pointwise, -1, keep_out)
        return [depthwise, pointwise] + [take(b, -1, keep_out) for b in weights[2:]]

    def macs_per_entry(self, layer, input_shapes, output_shapes):
        """The depthwise kernel works at the (strided) output positions, and so
        does the pointwise one."""
        shape = output_shapes[0]
        n = positions(shape, channel_axis(layer.data_format, len(shape)))
        return [n, n]

    def kernel_columns(self, layer):
        """The pointwise filters."""
        kernel = keras.ops.convert_to_numpy(layer.pointwise_kernel)
        return kernel.reshape(-1, kernel.shape[-1])

    def input_magnitudes(self, layer):
        """Input channel ``c`` reaches filter ``f`` through its depthwise slices ``k``:
        the sum over ``k`` of ``sum|depthwise[..., c, k]| * |pointwise[c * multiplier + k, f]|``."""
        depthwise = np.abs(keras.ops.convert_to_numpy(layer.depthwise_kernel))
        pointwise = np.abs(keras.ops.convert_to_numpy(layer.pointwise_kernel))
        n_in, multiplier = depthwise.shape[-2:]
        spread = depthwise.reshape(-1, n_in, multiplier).sum(axis=0)
        pointwise = pointwise.reshape(n_in, multiplier, -1)
        return np.einsum("ck,ckf->cf", spread, pointwise)


class EmbeddingHandler(LayerHandler):
    """``Embedding``: each of its ``output_dim`` channels is a column of its
    table; a lookup does no multiply-accumulates."""

    def trace(self, layer, inputs, ctx):
        found = [w.name for w in layer.weights]
        if found != ["embeddings"]:
            return ctx.opaque(inputs, f"Embedding has weights {found}, expected ['embeddings'] "
                                      "(quantized or LoRA layers are not pruned)")
        for channels in inputs:
            ctx.freeze(channels, "Embedding reads token ids")
        return [ctx.new(layer.output_dim)]

    def prune_config(self, layer, config, io):
        if io.outputs[0] is not None:
            config["output_dim"] = int(io.outputs[0].sum())
        return config

    def prune_weights(self, layer, weights, io, take):
        return [take(weights[0], -1, io.outputs[0])]

    def macs_per_entry(self, layer, input_shapes, output_shapes):
        return ()

    def kernel_columns(self, layer):
        return keras.ops.convert_to_numpy(layer.embeddings)
