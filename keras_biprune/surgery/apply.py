"""Layer surgery: rebuild a model as a new model with a plan's channels removed."""

import copy

import keras
import numpy as np

from keras_biprune import _keras_internals as internals
from keras_biprune._backend import distribution_scope
from keras_biprune.graph import trace
from keras_biprune.handlers import lookup
from keras_biprune.handlers.normalization import channel_keep
from keras_biprune.handlers.take import Slice, ZeroConsumed
from keras_biprune.layers import ChannelSelect, KeptChannelsReference
from keras_biprune.plan import checked_plan, kernel_mask, node_io
from keras_biprune.surgery.layer_copy import SERIALIZATION_ERRORS, carried, recreated


class _Rebuilder:
    """Walks the original graph and calls a new copy of each operation.

    It walks the graph itself rather than using ``keras.models.clone_model``'s
    ``clone_function``: a pruned layer needs input tensors of the pruned shape
    and sometimes a `ChannelSelect` in front of it, nested models must be
    rebuilt on the pruned shapes they are called on, ``keras.ops`` calls
    (``x + y``) are nodes that have no layer to clone, and shared layers are
    created once and called at every node.
    """

    def __init__(self, graph, plan, prune):
        self.records = {id(r.op): r for r in graph.records}
        self.atom_keep = graph.atom_keep(plan.keep)
        self.plan = plan
        self.prune = prune
        self.take = Slice() if prune else ZeroConsumed()
        self.new_ops = {}
        self.selects = {}
        self.weights_set = set()

    def build(self, model):
        """The new model of ``model``, built under its distribution strategy (TensorFlow)."""
        with distribution_scope(model):
            return self.model(model)

    def model(self, model, input_tensors=None):
        inputs, outputs, nodes = internals.graph_of(model)
        # A nested model's inputs take the (pruned) shapes of what it is called on.
        shaped_like = inputs if input_tensors is None else input_tensors
        new_inputs = [
            keras.Input(batch_shape=n.shape, dtype=t.dtype, name=internals.input_name(t))
            for t, n in zip(inputs, shaped_like)
        ]
        tensor_map = {id(t): n for t, n in zip(inputs, new_inputs)}
        for node in nodes:
            args, kwargs = internals.node_arguments(node, tensor_map)
            op = self.new_op(node.operation, args, kwargs)
            args = self._select_inputs(node.operation, args)
            outs = keras.tree.flatten(op(*args, **kwargs))
            for t, n in zip(node.outputs, outs):
                tensor_map[id(t)] = n
            self._set_weights(node.operation)
        new_outputs = [tensor_map[id(t)] for t in outputs]
        if isinstance(model, keras.Sequential):
            layers = [
                new
                for layer in model.layers
                for new in (self.selects.get(id(layer)), self.new_ops[id(layer)])
                if new is not None
            ]
            return keras.Sequential([new_inputs[0], *layers], name=model.name)
        return keras.Model(
            keras.tree.pack_sequence_as(internals.inputs_structure(model), new_inputs),
            keras.tree.pack_sequence_as(internals.outputs_structure(model), new_outputs),
            name=model.name,
        )

    def new_op(self, op, args, kwargs):
        new = self.new_ops.get(id(op))
        if new is not None:
            return new
        if internals.is_graph_model(op):
            tensors = [x for x in keras.tree.flatten((args, kwargs)) if isinstance(x, keras.KerasTensor)]
            new = self.model(op, tensors)
        else:
            new = carried(op) if self._carries(op) else recreated(
                op, lambda config: self.configure(op, lookup(op).rebuild_config(op, config)))
            new = self._reference(op, new)
        self.new_ops[id(op)] = new
        return new

    def _carries(self, op):
        """True when ``op`` is copied as it is: the plan leaves every channel axis
        of it whole (and every position it prunes inside, such as attention
        heads), or it has no weights and its handler leaves its config as it
        is (a pass-through layer on fewer channels)."""
        io = self._io(self.records[id(op)])
        if all(m is None or m.all() for m in (*io.inputs, *io.outputs, *io.internal.values())):
            return True
        if getattr(op, "weights", None):
            return False
        try:
            config = op.get_config()
        except SERIALIZATION_ERRORS:
            return True  # nothing to patch in a config that cannot be read
        return _same(self.configure(op, copy.deepcopy(config)), config)

    def _reference(self, op, new):
        """In the masked reference, a layer that normalizes across channels runs with
        statistics over the kept channels (`LayerHandler.masked_call`)."""
        handler = lookup(op)
        record = self.records[id(op)]
        keep = self._io(record).inputs[0] if record.inputs else None
        if self.prune or not handler.channel_statistics or keep is None or keep.all():
            return new
        return KeptChannelsReference(
            new, handler.masked_call,
            channel_keep(keep, record.inputs[0].axis, len(record.input_shapes[0])))

    def configure(self, op, config):
        """The new layer's config."""
        if not self.prune:
            return config
        return lookup(op).prune_config(op, config, self._io(self.records[id(op)]))

    def arrays(self, op, arrays):
        """Arrays shaped like ``op``'s weights (its weights, optimizer slots), made to fit
        the new layer as its weights are."""
        io = self._io(self.records[id(op)])
        arrays = lookup(op).prune_weights(op, list(arrays), io, self.take)
        if io.kernel is not None:
            mask = kernel_mask(io) if self.prune else io.kernel
            index = [w is op.kernel for w in op.weights].index(True)
            arrays[index] = arrays[index] * mask
        return arrays

    def _io(self, record):
        return node_io(record, self.atom_keep, self.plan)

    def _select_inputs(self, op, args):
        """Puts a ChannelSelect before a layer whose plan reads fewer channels than it gets."""
        record = self.records.get(id(op))
        if not self.prune or record is None or record.path not in self.plan.inputs:
            return args
        carried = self.atom_keep[record.inputs[0].labels]
        indices = np.flatnonzero(self._io(record).inputs[0][carried])
        if len(indices) == int(carried.sum()):
            return args
        select = ChannelSelect(indices, record.inputs[0].axis)
        self.selects[id(op)] = select
        return (select(args[0]), *args[1:])

    def _set_weights(self, op):
        if internals.is_graph_model(op) or not getattr(op, "weights", None) or id(op) in self.weights_set:
            return
        new = self.new_ops[id(op)]
        new.set_weights(self.new_weights(op, new))
        self.weights_set.add(id(op))

    def new_weights(self, op, new):
        """The weights of ``new``, the copy of ``op``."""
        return self.arrays(op, op.get_weights())


def _same(a, b):
    try:
        return bool(a == b)
    except ValueError:  # arrays in a config: compare them as text
        return repr(a) == repr(b)


def _prepare(model, plan):
    graph = trace(model)
    return graph, checked_plan(graph, plan)


def rebuild(model, plan, graph=None):
    """``(slim model, rebuilder)``: `apply_plan` that also returns its `_Rebuilder`,
    whose ``arrays`` and ``new_ops`` map other weight-shaped state (optimizer slots).

    ``graph`` is ``trace(model)`` when the caller has it already.
    """
    graph = trace(model) if graph is None else graph
    rebuilder = _Rebuilder(graph, checked_plan(graph, plan), prune=True)
    return rebuilder.build(model), rebuilder


def apply_plan(model, plan):
    """Builds a new, smaller model that keeps only the plan's channels.

    The new model has the same architecture and layer names with fewer filters
    and units, and the weights of the kept channels. Its outputs equal those of
    `masked_model(model, plan)`; with an empty plan they equal ``model``'s.
    ``model`` itself is not modified. The result is not compiled. On TensorFlow
    it is built under the ``tf.distribute`` strategy whose scope is open, else
    the one ``model`` was built under.

    Args:
        model: a functional or Sequential Keras model.
        plan: a `PruningPlan` made for this model (or ``None``: keep all).

    Returns:
        A new ``keras.Model`` (a ``keras.Sequential`` for a Sequential input).

    Raises:
        InvalidPlanError: the plan does not fit the model.
        UnsupportedModelError: the model cannot be traced.

    Example:

    ```python
    import keras_biprune as kb
    plan = kb.PruningPlan.random(kb.trace(model), ratio=0.5, seed=0)
    slim = kb.apply_plan(model, plan)
    print(model.count_params(), "->", slim.count_params())
    ```
    """
    return rebuild(model, plan)[0]


def masked_model(model, plan):
    """A copy of ``model`` where the plan's pruned channels are zeroed where consumed.

    Every layer that mixes channels (a conv or dense kernel) gets zero weights
    for the pruned input channels and for the plan's lower-level masks; nothing
    else changes, so the copy has the original's shapes. It is the reference
    `apply_plan` is tested against.

    Args:
        model: a functional or Sequential Keras model.
        plan: a `PruningPlan` made for this model.

    Returns:
        A new ``keras.Model`` with the original architecture.

    Example:

    ```python
    import numpy as np
    import keras_biprune as kb
    plan = kb.PruningPlan.random(kb.trace(model), ratio=0.3, seed=0)
    x = np.random.rand(4, *model.input_shape[1:]).astype("float32")
    np.testing.assert_allclose(kb.apply_plan(model, plan)(x),
                               kb.masked_model(model, plan)(x), rtol=1e-4, atol=1e-5)
    ```
    """
    graph, plan = _prepare(model, plan)
    return _Rebuilder(graph, plan, prune=False).build(model)
