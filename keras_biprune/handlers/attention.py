"""The handler of ``MultiHeadAttention``: heads and head widths prune as groups.

A ``MultiHeadAttention(num_heads=H, key_dim=K, value_dim=V)`` layer prunes
four things:

* its output channels (the output projection's units, new atoms: they follow
  the residual stream when an ``Add`` ties them to it);
* whole heads (``num_heads``): the ``"heads"`` internal group;
* the query/key width of every head (``key_dim``, the same positions in
  every head, as the layer has one ``key_dim``): ``"key_dim"``;
* the value width of every head (``value_dim``): ``"value_dim"``.

Its query and value inputs are read through the projection kernels like a
dense layer's input. The masked reference zeroes the query projection's
pruned ``key_dim`` columns (a pruned width then adds nothing to the scores)
and the output projection's rows of pruned heads and value widths. Keras
scales the scores by ``1 / sqrt(key_dim)``: the slim layer, whose
``key_dim`` is smaller, gets query weights scaled by ``sqrt(kept / key_dim)``
so its scores equal the masked reference's.
"""

import math
import warnings

import keras
import numpy as np

from keras_biprune.errors import HandlerError
from keras_biprune.handlers.base import LayerHandler, positions

_WEIGHTS = ["query/kernel", "query/bias", "key/kernel", "key/bias", "value/kernel",
            "value/bias", "attention_output/kernel", "attention_output/bias"]


def _names(layer):
    return ["/".join(w.path.split("/")[-2:]) for w in layer.weights]


class MultiHeadAttentionHandler(LayerHandler):
    """``keras.layers.MultiHeadAttention`` called as ``mha(query, value)``.

    Frozen (opaque) when called with a separate ``key`` or mask tensors, with
    ``use_gate``, a multi-axis ``output_shape`` or weights it does not know
    (quantized, LoRA); the heads are kept whole when the layer also returns
    its attention scores (their shape follows the heads).
    """

    scores_inputs = True

    def trace(self, layer, inputs, ctx):
        config = layer.get_config()
        expected = _WEIGHTS if config["use_bias"] else _WEIGHTS[::2]
        output_shape = config["output_shape"]
        reason = None
        if len(inputs) != 2:
            reason = "MultiHeadAttention called with key or mask tensors"
        elif config.get("use_gate"):
            reason = "MultiHeadAttention with use_gate"
        elif output_shape is not None and len(np.atleast_1d(output_shape)) != 1:
            reason = f"MultiHeadAttention with output_shape={output_shape}"
        elif _names(layer) != expected:
            reason = f"MultiHeadAttention has weights {_names(layer)}, expected {expected}"
        if reason is not None:
            return ctx.opaque(inputs, reason)
        for x, name in zip(inputs, ("query", "value")):
            if x is not None and x.axis != -1:
                ctx.freeze(x, f"MultiHeadAttention reads its {name} channels on the last "
                              f"axis, the input's channels are on axis {x.axis}")
        heads = ctx.internal(config["num_heads"], "heads")
        ctx.internal(config["key_dim"], "key_dim")
        ctx.internal(config["value_dim"] or config["key_dim"], "value_dim")
        out = ctx.new(ctx.output_shapes[0][-1], -1)
        if len(ctx.output_shapes) > 1:
            ctx.freeze(heads, "MultiHeadAttention returns its attention scores, shaped by "
                              "the heads")
        return [out] + [None] * (len(ctx.output_shapes) - 1)

    def prune_config(self, layer, config, io):
        for key, name in (("heads", "num_heads"), ("key_dim", "key_dim"),
                          ("value_dim", "value_dim")):
            keep = io.internal.get(key)
            if keep is not None:
                config[name] = int(keep.sum())
        return _output_shape(layer, config, io, lambda keep: int(keep.sum()))

    def grow_config(self, layer, config, io):
        grown = [key for key, keep in io.internal.items() if not keep.all()]
        if grown:
            raise HandlerError(
                f"MultiHeadAttention {layer.name!r} cannot grow its {grown}. Received: a "
                "plan that widens them. Leave attention heads and widths fixed."
            )
        return _output_shape(layer, config, io, len)

    def prune_weights(self, layer, weights, io, take):
        query, value = io.inputs[0], io.inputs[1] if len(io.inputs) > 1 else None
        heads, key_dim, value_dim = (io.internal.get(k) for k in ("heads", "key_dim",
                                                                    "value_dim"))
        use_bias = len(weights) == 8
        wq, wk, wv, wo = weights[::2] if use_bias else weights
        kept_key = take(np.ones(wq.shape[-1], "float32"), 0, key_dim)
        scale = math.sqrt(len(kept_key) / wq.shape[-1])

        def project(kernel, bias, read, width, consumed_width):
            kernel = take(kernel, 0, read, consumed=True)
            kernel = take(take(kernel, 1, heads), 2, width, consumed=consumed_width)
            if bias is not None:
                bias = take(take(bias, 0, heads), 1, width, consumed=consumed_width)
            return kernel, bias

        q = project(wq, weights[1] if use_bias else None, query, key_dim, True)
        if scale != 1.0 and np.asarray(q[0]).dtype.kind == "f":
            q = tuple(None if w is None else w * np.asarray(scale, w.dtype) for w in q)
        k = project(wk, weights[3] if use_bias else None, value, key_dim, False)
        v = project(wv, weights[5] if use_bias else None, value, value_dim, False)
        wo = take(take(wo, 0, heads, consumed=True), 1, value_dim, consumed=True)
        o = (take(wo, 2, io.outputs[0]),
             take(weights[7], 0, io.outputs[0]) if use_bias else None)
        return [w for pair in (q, k, v, o) for w in pair if w is not None]

    def macs_per_entry(self, layer, input_shapes, output_shapes):
        """Projections: each kernel entry once per query (Q, output) or value
        (K, V) position. The attention itself, ``QK^T`` and ``AV``, is
        ``heads × key_dim`` (and ``heads × value_dim``) multiply-accumulates per
        (query, attended value) pair: counted through the query and value
        biases, which have one entry per head and width (without biases it is
        not counted, and a warning says so)."""
        queries = positions(input_shapes[0], -1)
        values = positions(input_shapes[1], -1)
        attended = _attended(layer, input_shapes[1])
        pairs = None if queries is None or attended is None else queries * attended
        if not layer.get_config()["use_bias"]:
            warnings.warn(f"cost: MultiHeadAttention {layer.name!r} has no biases; its "
                          "QK^T and AV multiply-accumulates are not counted.", stacklevel=2)
            return [queries, values, values, queries]
        return [queries, pairs, values, 0, values, pairs, queries, 0]

    def kernel_columns(self, layer):
        kernel = keras.ops.convert_to_numpy(layer.weights[_names(layer).index(
            "attention_output/kernel")])
        return kernel.reshape(-1, kernel.shape[-1])

    def input_magnitudes(self, layer):
        """Query channel ``c`` reaches output channel ``o`` through every head ``h``:
        the sum over ``h`` of ``sum|query[c, h, :]| * sum|output[h, :, o]|``."""
        named = dict(zip(_names(layer), layer.weights))
        query = np.abs(keras.ops.convert_to_numpy(named["query/kernel"])).sum(axis=-1)
        output = np.abs(keras.ops.convert_to_numpy(named["attention_output/kernel"])).sum(axis=1)
        return query @ output

    def internal_columns(self, layer, key):
        """A head's (or a width position's) query, key and value weights."""
        named = dict(zip(_names(layer), layer.weights))
        arrays = {n: keras.ops.convert_to_numpy(named[f"{n}/kernel"])
                  for n in ("query", "key", "value")}
        if key == "heads":
            return np.concatenate([np.moveaxis(a, 1, -1).reshape(-1, a.shape[1])
                                   for a in arrays.values()])
        names = ("query", "key") if key == "key_dim" else ("value",)
        return np.concatenate([arrays[n].reshape(-1, arrays[n].shape[-1]) for n in names])


def _output_shape(layer, config, io, width):
    """``config`` with ``output_shape`` set when the output width (``width`` of the
    output mask) is not the query's, which Keras would default it to."""
    keep_out, keep_query = io.outputs[0], io.inputs[0]
    if keep_out is None:
        return config
    query = layer.weights[0].shape[0] if keep_query is None else width(keep_query)
    if config["output_shape"] is not None or width(keep_out) != query:
        config["output_shape"] = (width(keep_out),)
    return config


def _attended(layer, value_shape):
    """How many value positions each query attends to (its ``attention_axes``)."""
    axes = layer.get_config()["attention_axes"]
    rank = len(value_shape)
    axes = range(1, rank - 1) if axes is None else axes
    dims = [value_shape[a] for a in axes]
    return None if None in dims else math.prod(dims)
