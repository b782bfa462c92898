"""The batched engine: a population of candidates in one masked forward pass.

``P`` candidates go through one forward pass with the batch tiled ``P`` times
(candidate ``p`` owns rows ``p * B`` to ``(p + 1) * B``), each with its own
channel masks, kernel masks and batch-norm statistics, so no candidate builds
a model or retraces a function. A candidate's pruned channels are zeroed where
a conv or dense layer reads them, which is exactly what `apply_plan` removes.
"""

import keras
import numpy as np

from keras_biprune import _backend
from keras_biprune.handlers import NodeIO, lookup, reads_channels
from keras_biprune.handlers.take import Take


class MaskedEngine:
    """Scores candidates ``max_parallel`` at a time with the model's live weights.

    The engine interface (shared with the sliced engine): ``name``, ``group_size``
    candidates per `prepare`/`predict` call, ``calibrates`` (whether
    `prepare` runs a calibration pass), `start` once per ``evaluate`` call,
    `prepare` (each plan's state and its outputs on the calibration samples)
    and `predict`.

    Args:
        graph: the model's `ChannelGraph`.
        program: the model's `GraphProgram`.
        adaptive_bn: re-estimate batch-norm statistics per candidate.
        max_parallel: candidates per forward pass.
        batch_size: samples per candidate in one pass.
    """

    name = "batched"

    def __init__(self, graph, program, adaptive_bn, max_parallel, batch_size):
        self.graph = graph
        self.program = program
        self.group_size = max_parallel
        self.batch_size = batch_size
        self.consumers = {}
        self.statistics = set()
        self.weight_masks = {}
        self.bn_steps = {}
        for step in program.steps:
            if adaptive_bn and isinstance(step.op, keras.layers.BatchNormalization):
                self.bn_steps[id(step)] = len(self.bn_steps)
                continue
            record = graph.record(step.path)
            if record.internal:
                self.weight_masks[step.path] = record
            elif lookup(step.op).channel_statistics and record.inputs[0] is not None:
                self.consumers[step.path] = record.inputs[0]
                self.statistics.add(step.path)
            elif reads_channels(record):
                self.consumers[step.path] = record.inputs[0]
        self.consumer_paths = sorted(self.consumers)
        # (path, "input i" or internal key, channels) of every mask a layer with
        # internal groups gets its weights zeroed by.
        self.weight_slots = [
            (path, slot, channels)
            for path in sorted(self.weight_masks)
            for slot, channels in [
                *((f"input {i}", c) for i, c in enumerate(self.weight_masks[path].inputs)
                  if c is not None),
                *self.weight_masks[path].internal.items()]
        ]
        self.calibrates = bool(self.bn_steps)
        self.kernel_paths = ()
        self._functions = {}

    def start(self, plans):
        """Fixes which kernels this ``evaluate`` call masks (the weights are read live)."""
        self.kernel_paths = tuple(sorted({p for plan in plans for p in plan.kernels}))

    def prepare(self, plans, x_calibration):
        """Each plan's state for `predict` and its outputs on the calibration samples.

        The state holds the plan's masks and calibrated batch-norm statistics;
        the outputs are None when nothing is calibrated.
        """
        masks, kernel_masks = self._encode(plans)
        calibrated, stats = None, []
        if self.calibrates:
            calibrated, stats = self._function("calibrate")(x_calibration, masks, kernel_masks, [])
        stats = [[keras.ops.convert_to_numpy(t) for t in pair] for pair in stats]
        if calibrated is not None:
            calibrated = keras.ops.convert_to_numpy(calibrated)
            calibrated = calibrated.reshape((self.group_size, -1) + calibrated.shape[1:])
        return [(([m[p] for m in masks], [k[p] for k in kernel_masks],
                  [(mean[p], variance[p]) for mean, variance in stats]),
                 None if calibrated is None else calibrated[p])
                for p in range(len(plans))]

    def predict(self, states, batches):
        """Per state, the outputs of each batch in ``batches`` (NumPy arrays)."""
        padded = list(states) + [states[-1]] * (self.group_size - len(states))
        stack = lambda rows: [np.stack(column) for column in zip(*rows)]
        masks = stack(s[0] for s in padded)
        kernel_masks = stack(s[1] for s in padded)
        stats = [tuple(np.stack(values) for values in zip(*pairs))
                 for pairs in zip(*(s[2] for s in padded))]
        run = self._function("predict")
        outputs = [[] for _ in states]
        for xs in batches:
            y, _ = run(xs, masks, kernel_masks, stats)
            y = keras.ops.convert_to_numpy(y)
            y = y.reshape((self.group_size, self.batch_size) + y.shape[1:])
            for p, out in enumerate(outputs):
                out.append(y[p])
        return outputs

    def _encode(self, chunk):
        """Per-consumer input masks ``(P, C)`` and kernel masks, padded to the group size."""
        padded = list(chunk) + [chunk[-1]] * (self.group_size - len(chunk))
        masks = {path: [] for path in self.consumer_paths}
        kernel_masks = {path: [] for path in self.kernel_paths}
        slots = {(path, slot): [] for path, slot, _ in self.weight_slots}
        for plan in padded:
            atom_keep = self.graph.atom_keep(plan.keep)
            for path, channels in self.consumers.items():
                masks[path].append(_read(plan, path, atom_keep[channels.labels]))
            for path, slot, channels in self.weight_slots:
                mask = atom_keep[channels.labels]
                slots[(path, slot)].append(_read(plan, path, mask) if slot == "input 0" else mask)
            for path in self.kernel_paths:
                shape = tuple(self.graph.record(path).op.kernel.shape[-2:])
                kernel_masks[path].append(plan.kernels.get(path, np.ones(shape, bool)))
        as_array = lambda lists: [np.asarray(lists[p], "float32") for p in lists]
        return as_array(masks) + as_array(slots), as_array(kernel_masks)

    def _function(self, kind):
        key = (kind, self.kernel_paths)
        if key not in self._functions:
            calibrate, kernel_paths = kind == "calibrate", self.kernel_paths

            def run(xs, masks, kernel_masks, stats):
                return self._forward(xs, masks, kernel_masks, stats, kernel_paths, calibrate)

            variables = {id(w): w for step in self.program.steps
                         for w in getattr(step.op, "weights", ())}
            self._functions[key] = _backend.compile_function(run, list(variables.values()))
        return self._functions[key]

    def _forward(self, xs, masks, kernel_masks, stats, kernel_paths, calibrate):
        """One pass of the whole population: the batch tiled once per candidate."""
        population = self.group_size
        slots = {}
        for (path, slot, _), mask in zip(self.weight_slots, masks[len(self.consumer_paths):]):
            slots.setdefault(path, {})[slot] = mask
        masks = dict(zip(self.consumer_paths, masks))
        kernel_masks = dict(zip(kernel_paths, kernel_masks))
        collected = []

        def call(step, args, kwargs):
            bn = self.bn_steps.get(id(step))
            if bn is not None:
                x, mean_var = batch_norm(step.op, args[0], population,
                                          None if calibrate else stats[bn])
                collected.append(mean_var)
                return x
            if step.path in slots:
                return per_candidate_weights(step, self.weight_masks[step.path], args, kwargs,
                                             slots[step.path], population)
            mask = masks.get(step.path)
            if step.path in self.statistics:
                return kept_channel_call(step.op, args[0], mask,
                                         self.consumers[step.path].axis, population)
            if mask is not None:
                args = (mask_channels(args[0], mask, self.consumers[step.path].axis,
                                       population), *args[1:])
            if step.path in kernel_masks:
                return per_candidate_kernels(step, args, kwargs, kernel_masks[step.path],
                                              population)
            return step.op(*args, **kwargs)

        tiled = [tile(x, population) for x in xs]
        outputs, _ = self.program.run(tiled, call=call)
        return outputs[0], collected


def tile(x, population):
    """``x`` repeated once per candidate along the batch axis."""
    x = keras.ops.convert_to_tensor(x)
    shape = tuple(x.shape)
    return keras.ops.reshape(keras.ops.broadcast_to(x[None], (population,) + shape),
                             (population * shape[0],) + shape[1:])


def _by_candidate(x, population):
    return keras.ops.reshape(x, (population, -1) + tuple(x.shape[1:]))


def mask_channels(x, mask, axis, population):
    """Zeroes each candidate's pruned channels of ``x`` (candidates stacked on the batch)."""
    grouped = _by_candidate(x, population)
    view = [population] + [1] * (len(grouped.shape) - 1)
    view[axis] = mask.shape[-1]
    masked = grouped * keras.ops.cast(keras.ops.reshape(mask, view), x.dtype)
    return keras.ops.reshape(masked, tuple(x.shape))


def _read(plan, path, mask):
    """A consumer's input mask narrowed by the plan's lower-level ``inputs`` mask."""
    if path in plan.inputs:
        return mask & np.isin(np.arange(len(mask)), plan.inputs[path])
    return mask


def _per_example(mask, axis, population, x):
    """Each candidate's channel mask ``(P, C)`` as a 0/1 tensor of ``x``'s rank,
    one row per example of the stacked batch."""
    rank = len(x.shape)
    view = [population] + [1] * rank
    view[axis] = mask.shape[-1]
    mask = keras.ops.reshape(keras.ops.cast(mask, x.dtype), view)
    rows = keras.ops.broadcast_to(mask, [population, x.shape[0] // population] + view[2:])
    return keras.ops.reshape(rows, [x.shape[0]] + view[2:])


def kept_channel_call(layer, x, mask, axis, population):
    """A layer that normalizes across channels, over each candidate's kept channels
    (`LayerHandler.masked_call`)."""
    return lookup(layer).masked_call(layer, x, _per_example(mask, axis, population, x))


class _ZeroByTensor(Take):
    """`ZeroConsumed` with a 0/1 tensor as ``keep``, inside a compiled function."""

    def __call__(self, array, axis, keep, consumed=False):
        if not consumed or keep is None:
            return array
        view = [1] * len(array.shape)
        view[axis] = array.shape[axis]
        return array * keras.ops.reshape(keras.ops.cast(keep, array.dtype), view)


def per_candidate_weights(step, record, args, kwargs, slots, population):
    """Runs a layer with internal groups (attention heads) once per candidate, with
    the weights its handler zeroes for the candidate's masks (no retrace)."""
    layer = step.op
    handler = lookup(layer)
    tensors = [i for i, a in enumerate(args) if keras.ops.is_tensor(a)]
    outputs = []
    for p in range(population):
        io = NodeIO(
            tuple(None if f"input {i}" not in slots else slots[f"input {i}"][p]
                  for i in range(len(record.inputs))),
            (None,) * len(record.outputs), tuple(record.inputs), tuple(record.outputs),
            internal={key: slots[key][p] for key in record.internal},
        )
        weights = handler.prune_weights(layer, list(layer.weights), io, _ZeroByTensor())
        grouped = [_by_candidate(a, population)[p] if i in tensors else a
                   for i, a in enumerate(args)]
        with keras.StatelessScope(state_mapping=list(zip(layer.weights, weights))):
            outputs.append(keras.tree.flatten(layer(*grouped, **kwargs)))
    joined = [keras.ops.concatenate(parts, axis=0) for parts in zip(*outputs)]
    return joined[0] if len(joined) == 1 else joined


def per_candidate_kernels(step, args, kwargs, kernel_mask, population):
    """Runs the layer once per candidate with its kernel masked (same shapes, no retrace)."""
    layer = step.op
    grouped = _by_candidate(args[0], population)
    outputs = []
    weights = [(w, w.value) for w in layer.weights if w is not layer.kernel]  # the outer scope's
    for p in range(population):
        kernel = layer.kernel * keras.ops.cast(kernel_mask[p], layer.kernel.dtype)
        with keras.StatelessScope(state_mapping=[(layer.kernel, kernel), *weights]):
            outputs.append(layer(grouped[p], *args[1:], **kwargs))
    return keras.ops.concatenate(outputs, axis=0)


def batch_norm(layer, x, population, stats):
    """Batch norm with each candidate's own statistics (computed here when ``stats`` is None)."""
    grouped = _by_candidate(x, population)
    rank = len(grouped.shape)
    axis = layer.axis % len(x.shape) + 1
    if stats is None:
        reduce = [a for a in range(1, rank) if a != axis]
        mean, variance = keras.ops.moments(grouped, reduce, keepdims=True)
    else:
        mean, variance = stats
    view = [1] * rank
    view[axis] = grouped.shape[axis]
    y = (grouped - mean) * keras.ops.rsqrt(variance + layer.epsilon)
    if layer.scale:
        y = y * keras.ops.reshape(keras.ops.cast(layer.gamma, x.dtype), view)
    if layer.center:
        y = y + keras.ops.reshape(keras.ops.cast(layer.beta, x.dtype), view)
    return keras.ops.reshape(y, tuple(x.shape)), (mean, variance)
