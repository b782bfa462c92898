"""The CPU path of the evaluator (TensorFlow backend): each candidate at its own size.

A CPU is compute-bound, so scoring a population in one masked pass costs as
much as scoring it candidate by candidate at full width. Here each candidate
runs with its *sliced* weights instead, and so costs its own, smaller number
of multiply-accumulates. One ``tf.function`` over the flattened graph takes
the weights as arguments with relaxed shapes: it is traced a few times, then
serves every candidate, whatever its widths.

Each layer's handler says whether and how the engine runs it
(`LayerHandler.sliced_kind`): built in, channels_last ``Conv1D/2D``
(``groups=1``, not causal), ``DepthwiseConv2D``, ``Dense``,
``BatchNormalization`` over the last axis, and weightless layers whose
channels pass through unchanged (activations, pooling, padding, merges,
concatenation, flatten, dropout). A model with anything else is scored by
the masked program.
"""

import keras
import numpy as np
import tensorflow as tf

from keras_biprune.handlers import lookup
from keras_biprune.handlers.take import Slice
from keras_biprune.plan import PruningPlan, kernel_mask, node_io

_COMPUTED = ("bn", "conv", "depthwise", "dense")


def unsupported_reason(program):
    """Why the sliced path cannot run this model (``None`` when it can)."""
    if tf.config.list_logical_devices("GPU"):
        return "a GPU is visible: the batched masked pass is faster there"
    for step in program.steps:
        op = step.op
        if not getattr(op, "weights", None):
            if _kind(op) == "call":
                continue
            return f"{step.path}: {type(op).__name__} is not supported by the sliced path"
        if _kind(op) not in _COMPUTED:
            return f"{step.path}: {type(op).__name__} with these settings is not supported"
    return None


def _kind(op):
    """The handler's `LayerHandler.sliced_kind` of ``op``, None where the engine cannot
    run it (channels_first, or a kernel layer with more weights than kernel and bias)."""
    kind = lookup(op).sliced_kind(op)
    if kind == "bn":
        return kind
    if getattr(op, "data_format", "channels_last") == "channels_first":
        return None
    if kind != "call" and len(getattr(op, "weights", [])) > 2:
        return None
    return kind


class SlicedEngine:
    """Runs candidates one at a time with sliced weights, in one relaxed-shape function.

    The engine interface is `keras_biprune.evaluate._masked.MaskedEngine`'s,
    with ``group_size`` 1. The functions are traced once each, on first use,
    for signatures whose batch and channel dimensions are unknown: no
    candidate, whatever its widths, and no batch size retraces them. A
    candidate's weights go in as two tensors (every array flattened into one
    vector, and their shapes), since a call costs time per argument. The
    model's weights are read once per `start` (once per ``evaluate`` call);
    candidates are sliced from that copy. With adaptive batch norm, a
    candidate's calibrated statistics replace the moving statistics among its
    weights.
    """

    name = "sliced"
    group_size = 1

    def __init__(self, graph, program, adaptive_bn):
        self.graph = graph
        self.program = program
        self.adaptive_bn = adaptive_bn
        self.weighted = [s for s in program.steps if getattr(s.op, "weights", None)]
        self._index = {id(s): i for i, s in enumerate(self.weighted)}
        self.read_weights()
        self._moments = []  # (step, where its moving mean and variance are among its weights)
        for i, step in enumerate(self.weighted):
            if _kind(step.op) == "bn":
                names = [v.name for v in step.op.weights]
                self._moments.append(
                    (i, names.index("moving_mean"), names.index("moving_variance")))
        self._dtypes = [keras.backend.standardize_dtype(t.dtype) for t in program.input_tensors]
        self._signature = (
            [tf.TensorSpec((None, *t.shape[1:]), d)
             for t, d in zip(program.input_tensors, self._dtypes)],
            tf.TensorSpec([None], "float32"),
            tf.TensorSpec([None], "int32"),
        )
        self.calibrates = bool(adaptive_bn and self._moments)
        self._functions = {}

    def read_weights(self):
        """Reads the model's current weights, which `weights` slices."""
        self._values = [step.op.get_weights() for step in self.weighted]

    def start(self, plans):
        """Reads the model's weights as they are at the start of an ``evaluate`` call."""
        self.read_weights()

    def _function(self, name):
        """The concrete function ``name``, traced the first time it is asked for."""
        if name not in self._functions:
            fn = self._calibrate_fn if name == "calibrate" else self._predict_fn
            self._functions[name] = tf.function(fn).get_concrete_function(*self._signature)
        return self._functions[name]

    def weights(self, plan):
        """Each weighted step's sliced weights under ``plan`` (lower-level masks as zeros)."""
        atom_keep = self.graph.atom_keep(plan.keep)
        # Slice by the groups only: the layer still receives every channel its
        # groups keep, so lower-level masks become zero kernel entries.
        upper = PruningPlan(plan.keep, kernels=plan.kernels)
        result = []
        for step, values in zip(self.weighted, self._values):
            record = self.graph.record(step.path)
            io = node_io(record, atom_keep, upper)
            sliced = lookup(step.op).prune_weights(step.op, values, io, Slice())
            if _kind(step.op) in ("conv", "dense"):
                sliced[0] = sliced[0] * self._lower_mask(record, atom_keep, plan, io)
            result.append(sliced)
        return result

    @staticmethod
    def _lower_mask(record, atom_keep, plan, io):
        """The plan's lower-level masks on a sliced (…, inputs, filters) kernel, as 0/1."""
        carried = io.inputs[0]
        rows = np.ones(1) if carried is None else node_io(record, atom_keep, plan).inputs[0][carried]
        mask = np.asarray(rows, "float32")[:, None]
        return mask if io.kernel is None else mask * kernel_mask(io)

    def prepare(self, plans, x_calibration):
        """Each plan's state for `predict` and its outputs on the calibration samples."""
        return [self._prepare_one(plan, x_calibration) for plan in plans]

    def _prepare_one(self, plan, x_calibration):
        """The plan's packed weights, batch norms calibrated, and the calibration
        pass's outputs (None when nothing is calibrated)."""
        weights = self.weights(plan)
        if not self.calibrates:
            return _pack(weights), None
        moments, outputs = self._function("calibrate")(self._inputs(x_calibration),
                                                       *_pack(weights))
        moments = moments.numpy()
        start = 0
        for i, mean, variance in self._moments:
            size = len(weights[i][mean])
            weights[i][mean] = moments[start:start + size]
            weights[i][variance] = moments[start + size:start + 2 * size]
            start += 2 * size
        return _pack(weights), outputs.numpy()

    def predict(self, states, batches):
        """Per state, the outputs of each batch in ``batches`` (NumPy arrays)."""
        run = self._function("predict")
        return [[run(self._inputs(xs), *state).numpy() for xs in batches] for state in states]

    def _inputs(self, xs):
        return [tf.constant(np.asarray(x, d)) for x, d in zip(xs, self._dtypes)]

    def _unpack(self, flat, shapes):
        """The weights that `_pack` packed, each with its static rank (and kernel size)."""
        arrays = [w for values in self._values for w in values]
        pieces = tf.split(flat, shapes[:len(arrays)], num=len(arrays))
        dims = tf.split(shapes[len(arrays):], [w.ndim for w in arrays], num=len(arrays))
        unpacked = []
        for piece, shape, array in zip(pieces, dims, arrays):
            weight = tf.reshape(piece, shape)
            weight.set_shape(_relaxed(array.shape))
            unpacked.append(weight)
        result = []
        for values in self._values:
            result.append(unpacked[:len(values)])
            unpacked = unpacked[len(values):]
        return result

    def _calibrate_fn(self, xs, flat, shapes):
        moments = []
        outputs = self._run(xs, self._unpack(flat, shapes), moments)
        return tf.concat([t for pair in moments for t in pair], 0), outputs

    def _predict_fn(self, xs, flat, shapes):
        return self._run(xs, self._unpack(flat, shapes), None)

    def _run(self, xs, weights, collect):
        def call(step, args, kwargs):
            index = self._index.get(id(step))
            if index is None:
                return step.op(*args, **kwargs)
            op, w, x = step.op, weights[index], args[0]
            kind = _kind(op)
            if kind == "bn":
                return _batch_norm(op, x, w, collect)
            if kind == "conv":
                y = tf.nn.convolution(x, w[0], strides=list(op.strides),
                                      padding=op.padding.upper(),
                                      dilations=list(op.dilation_rate))
            elif kind == "depthwise":
                y = tf.nn.depthwise_conv2d(x, w[0], strides=[1, *op.strides, 1],
                                           padding=op.padding.upper(),
                                           dilations=list(op.dilation_rate))
            else:
                y = tf.tensordot(x, w[0], [[len(x.shape) - 1], [0]])
            if len(w) > 1:
                y = y + w[1]
            activation = getattr(op, "activation", None)
            return y if activation is None else activation(y)

        outputs, _ = self.program.run(list(xs), call=call)
        return outputs[0]


def _pack(weights):
    """Every array of ``weights`` flattened into one float32 vector, and their shapes.

    The shapes vector holds each array's size, then every array's dimensions.
    """
    arrays = [np.asarray(w, "float32") for values in weights for w in values]
    flat = np.concatenate([a.ravel() for a in arrays])
    shapes = [a.size for a in arrays] + [d for a in arrays for d in a.shape]
    return tf.constant(flat), tf.constant(shapes, "int32")


def _relaxed(shape):
    """A weight's shape with its (sliceable) channel dimensions unknown."""
    return [None] * len(shape) if len(shape) < 3 else [*shape[:-2], None, None]


def _batch_norm(layer, x, w, collect):
    """Batch norm with the moments of ``x`` (appended to ``collect``) or the moving ones."""
    values = dict(zip([v.name for v in layer.weights], w))
    gamma, beta = values.get("gamma"), values.get("beta")
    if len(x.shape) != 4:
        if collect is not None:
            mean, variance = tf.nn.moments(x, list(range(len(x.shape) - 1)))
            collect.append((mean, variance))
        else:
            mean, variance = values["moving_mean"], values["moving_variance"]
        return tf.nn.batch_normalization(x, mean, variance, beta, gamma, layer.epsilon)
    # One fused kernel instead of a multiply and an add over x (Grappler can
    # also fold it into a convolution just before it); when calibrating, the
    # same kernel computes the moments in one pass, several times faster than
    # tf.nn.moments on this CPU.
    channels = tf.shape(x)[-1:]
    gamma = tf.ones(channels) if gamma is None else gamma
    beta = tf.zeros(channels) if beta is None else beta
    if collect is None:
        return tf.raw_ops.FusedBatchNormV3(
            x=x, scale=gamma, offset=beta, mean=values["moving_mean"],
            variance=values["moving_variance"], epsilon=layer.epsilon, is_training=False)[0]
    empty = tf.zeros([0])
    y, mean, variance = tf.raw_ops.FusedBatchNormV3(
        x=x, scale=gamma, offset=beta, mean=empty, variance=empty, epsilon=layer.epsilon,
        is_training=True)[:3]
    # The kernel returns the unbiased variance; batch norm uses the biased one.
    n = tf.cast(tf.reduce_prod(tf.shape(x)[:-1]), variance.dtype)
    collect.append((mean, variance * ((n - 1) / n)))
    return y
