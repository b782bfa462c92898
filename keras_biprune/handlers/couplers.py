"""Handlers of layers that combine tensors (element-wise merges, concatenation)
and of the split that undoes a concatenation."""

import numpy as np

from keras_biprune.handlers.base import Channels, LayerHandler, normalize_axis


class MergeHandler(LayerHandler):
    """``Add``/``Subtract``/``Multiply``/``Average``/``Maximum``/``Minimum`` and
    the same ``keras.ops`` calls (``x + y``): the inputs' channels are tied
    position by position. An input broadcast along the channel axis (size 1)
    is frozen; so is a per-channel constant operand."""

    def trace(self, layer, inputs, ctx):
        out_shape = ctx.output_shapes[0]
        if any(np.size(c) > 1 for c in ctx.constants if isinstance(c, (list, tuple, np.ndarray))):
            return ctx.opaque(inputs, "combines channels with a per-channel constant")
        labelled = [c for c in inputs if c is not None]
        if len(labelled) < len(inputs):
            for channels in labelled:
                ctx.freeze(channels, "combined with an untracked (whole) tensor")
            return [None]
        full = [c for c in labelled if len(c) == out_shape[c.axis] and len(c) > 1]
        if not full:
            return [labelled[0]] if labelled else [None]
        first = full[0]
        for channels in labelled:
            if channels is first:
                continue
            if channels.axis == first.axis and len(channels) == len(first):
                ctx.tie(first, channels)
            else:
                ctx.freeze(channels, "broadcast against the channels of another input")
                ctx.freeze(first, "combined with a broadcast tensor on another axis")
        return [first]

    def sliced_kind(self, layer):
        return "call"


class ConcatenateHandler(LayerHandler):
    """``Concatenate`` and ``ops.concatenate``: on the channel axis the output's
    channels are the inputs' side by side; on another axis the inputs are tied."""

    def trace(self, layer, inputs, ctx):
        rank = len(ctx.output_shapes[0])
        axis = normalize_axis(layer.axis, rank)
        labelled = [c for c in inputs if c is not None]
        if not labelled:
            return [None]
        if all(c.axis == axis for c in labelled):
            parts = []
            for i, channels in enumerate(inputs):
                if channels is None:
                    n = ctx.input_shapes[i][axis]
                    channels = ctx.frozen(n, axis, "concatenated untracked tensor", key=f"in{i}")
                parts.append(channels.labels)
            return [Channels(np.concatenate(parts), axis)]
        if len(labelled) < len(inputs) or any(c.axis == axis for c in labelled):
            return ctx.opaque(inputs, "concatenates along an axis that mixes channel layouts")
        for channels in labelled[1:]:
            ctx.tie(labelled[0], channels)
        return [labelled[0]]

    def sliced_kind(self, layer):
        return "call"


class SplitHandler(LayerHandler):
    """``ops.split``: along the channel axis each output carries its slice of
    the input's channels (a CSP block's halves); along another axis every
    output carries them all. The pruned split cuts at the kept counts."""

    def trace(self, layer, inputs, ctx):
        x = inputs[0]
        if x is None:
            return [None] * len(ctx.output_shapes)
        rank = len(ctx.input_shapes[0])
        if normalize_axis(layer.axis, rank) != x.axis:
            return [x] * len(ctx.output_shapes)
        ends = np.cumsum([shape[x.axis] for shape in ctx.output_shapes])
        return [Channels(x.labels[end - shape[x.axis]:end], x.axis)
                for end, shape in zip(ends, ctx.output_shapes)]

    def prune_config(self, layer, config, io):
        if io.output_channels[0] is None or io.output_channels[0] is io.input_channels[0]:
            return config
        kept = [len(c) if m is None else int(m.sum())
                for m, c in zip(io.outputs, io.output_channels)]
        config["indices_or_sections"] = [int(i) for i in np.cumsum(kept)[:-1]]
        return config
