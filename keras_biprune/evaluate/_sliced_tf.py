"""The CPU path of the evaluator (TensorFlow backend): each candidate at its own size.

A CPU is compute-bound, so scoring a population in one masked pass costs as
much as scoring it candidate by candidate at full width. Here each candidate
runs with its *sliced* weights instead, and so costs its own, smaller number
of multiply-accumulates. One ``tf.function`` over the flattened graph takes
the weights as arguments with relaxed shapes: it is traced a few times, then
serves every candidate, whatever its widths.

Supported: channels_last ``Conv1D/2D`` (``groups=1``, not causal),
``DepthwiseConv2D``, ``Dense``, ``BatchNormalization`` over the last axis,
and weightless layers whose channels pass through unchanged (activations,
pooling, padding, merges, concatenation, flatten, dropout). A model with
anything else is scored by the masked program.
"""

import keras
import numpy as np
import tensorflow as tf

from keras_biprune.handlers import lookup
from keras_biprune.handlers.channelwise import (
    GlobalPoolingHandler,
    PassThroughHandler,
    SpatialHandler,
)
from keras_biprune.handlers.couplers import ConcatenateHandler, MergeHandler
from keras_biprune.handlers.reshaping import FlattenHandler
from keras_biprune.surgery.apply import _slice, kernel_mask, node_io
from keras_biprune.surgery.plan import PruningPlan

_SHAPE_FREE = (PassThroughHandler, SpatialHandler, GlobalPoolingHandler, MergeHandler,
               ConcatenateHandler, FlattenHandler)


def unsupported_reason(program):
    """Why the sliced path cannot run this model (``None`` when it can)."""
    if tf.config.list_logical_devices("GPU"):
        return "a GPU is visible: the batched masked pass is faster there"
    for step in program.steps:
        op = step.op
        if not getattr(op, "weights", None):
            if isinstance(lookup(op), _SHAPE_FREE) and not _channels_first(op):
                continue
            return f"{step.path}: {type(op).__name__} is not supported by the sliced path"
        kind = _kind(op)
        if kind is None:
            return f"{step.path}: {type(op).__name__} with these settings is not supported"
    return None


def _channels_first(op):
    return getattr(op, "data_format", "channels_last") == "channels_first"


def _kind(op):
    if isinstance(op, keras.layers.BatchNormalization):
        return "bn" if op.axis in (-1, len(op.input.shape) - 1) else None
    if _channels_first(op) or len(getattr(op, "weights", [])) > 2:
        return None
    if isinstance(op, keras.layers.DepthwiseConv2D):
        return "depthwise"
    if isinstance(op, (keras.layers.Conv1D, keras.layers.Conv2D)) and not isinstance(
        op, (keras.layers.Conv1DTranspose, keras.layers.Conv2DTranspose,
             keras.layers.SeparableConv1D, keras.layers.SeparableConv2D)
    ):
        return "conv" if op.groups == 1 and op.padding != "causal" else None
    if type(op) is keras.layers.Dense:
        return "dense"
    return None


class SlicedProgram:
    """Runs candidates one at a time with sliced weights, in one relaxed-shape function.

    The functions are traced once each, on first use, for input signatures
    whose batch and channel dimensions are unknown: no candidate, whatever
    its widths, and no batch size retraces them. The model's weights are read
    once; a candidate's are sliced from that copy.
    """

    def __init__(self, graph, program, adaptive_bn):
        self.graph = graph
        self.program = program
        self.adaptive_bn = adaptive_bn
        self.weighted = [s for s in program.steps if getattr(s.op, "weights", None)]
        self._index = {id(s): i for i, s in enumerate(self.weighted)}
        self._values = [s.op.get_weights() for s in self.weighted]
        self._bn_count = sum(_kind(s.op) == "bn" for s in self.weighted)
        self._dtypes = [keras.backend.standardize_dtype(t.dtype) for t in program.input_tensors]
        xs = [tf.TensorSpec((None, *t.shape[1:]), d)
              for t, d in zip(program.input_tensors, self._dtypes)]
        weights = [[tf.TensorSpec(_relaxed(w.shape), "float32") for w in values]
                   for values in self._values]
        stats = [(tf.TensorSpec([None]),) * 2] * (self._bn_count if adaptive_bn else 0)
        self._signatures = {"calibrate": (xs, weights), "predict": (xs, weights, stats)}
        self._functions = {}

    def _function(self, name):
        """The concrete function ``name``, traced the first time it is asked for."""
        if name not in self._functions:
            fn = self._calibrate_fn if name == "calibrate" else self._predict_fn
            self._functions[name] = tf.function(fn).get_concrete_function(
                *self._signatures[name])
        return self._functions[name]

    @property
    def tracing_count(self):
        """How many functions have been traced (at most 2: calibration, prediction)."""
        return len(self._functions)

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
            sliced = lookup(step.op).prune_weights(step.op, values, io, _slice)
            if _kind(step.op) in ("conv", "dense"):
                sliced[0] = sliced[0] * self._lower_mask(record, atom_keep, plan, io)
            result.append([tf.constant(w, "float32") for w in sliced])
        return result

    @staticmethod
    def _lower_mask(record, atom_keep, plan, io):
        """The plan's lower-level masks on a sliced (…, inputs, filters) kernel, as 0/1."""
        carried = io.inputs[0]
        rows = np.ones(1) if carried is None else node_io(record, atom_keep, plan).inputs[0][carried]
        mask = np.asarray(rows, "float32")[:, None]
        return mask if io.kernel is None else mask * kernel_mask(io)

    def prepare(self, plan, x_calibration):
        """One plan's state for `predict`: its sliced weights and batch-norm statistics."""
        weights = self.weights(plan)
        if not self.adaptive_bn:
            return weights, []
        return weights, self._function("calibrate")(self._inputs(x_calibration), weights)

    def predict(self, state, batches):
        """The outputs of each batch in ``batches`` for a prepared plan (NumPy arrays)."""
        weights, stats = state
        run = self._function("predict")
        return [run(self._inputs(xs), weights, stats).numpy() for xs in batches]

    def _inputs(self, xs):
        return [tf.constant(np.asarray(x, d)) for x, d in zip(xs, self._dtypes)]

    def _calibrate_fn(self, xs, weights):
        stats = []
        self._run(xs, weights, None, stats)
        return stats

    def _predict_fn(self, xs, weights, stats):
        return self._run(xs, weights, stats or None, None)

    def _run(self, xs, weights, stats, collect):
        bn_count = []

        def call(step, args, kwargs):
            index = self._index.get(id(step))
            if index is None:
                return step.op(*args, **kwargs)
            op, w, x = step.op, weights[index], args[0]
            kind = _kind(op)
            if kind == "bn":
                k = len(bn_count)
                bn_count.append(k)
                return _batch_norm(op, x, w, None if stats is None else stats[k], collect)
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
            if op.use_bias:
                y = y + w[1]
            return y if op.activation is None else op.activation(y)

        outputs, _ = self.program.run(list(xs), call=call)
        return outputs[0]


def _relaxed(shape):
    """A weight's shape with its (sliceable) channel dimensions unknown."""
    return [None] * len(shape) if len(shape) < 3 else [*shape[:-2], None, None]


def _batch_norm(layer, x, w, stats, collect):
    names = [v.name for v in layer.weights]
    values = dict(zip(names, w))
    if stats is None and collect is not None:
        axes = list(range(len(x.shape) - 1))
        mean, variance = tf.nn.moments(x, axes)
        collect.append((mean, variance))
    elif stats is not None:
        mean, variance = stats
    else:
        mean, variance = values["moving_mean"], values["moving_variance"]
    gamma, beta = values.get("gamma"), values.get("beta")
    if len(x.shape) != 4:
        return tf.nn.batch_normalization(x, mean, variance, beta, gamma, layer.epsilon)
    # The same normalization in one kernel (the unfused form is five passes
    # over x), which Grappler also folds into a convolution just before it.
    return tf.raw_ops.FusedBatchNormV3(
        x=x, scale=tf.ones_like(mean) if gamma is None else gamma,
        offset=tf.zeros_like(mean) if beta is None else beta, mean=mean, variance=variance,
        epsilon=layer.epsilon, is_training=False,
    )[0]
