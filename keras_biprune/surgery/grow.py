"""Growth surgery: a new, wider model whose new filters change nothing at insertion.

Growth is pruning run backwards through the same handlers. Each tensor of a
grown group gets a bool mask over its *grown* channel axis (True: a channel
of the original, False: a new one); handlers patch configs with
``grow_config`` and slice weights with ``prune_weights`` as usual, with a
``take`` that inserts entries instead of removing them:

* on an axis that reads channels (``consumed=True``: a conv or dense kernel's
  input rows) new entries are exact zeros, so nothing reads a new channel
  (the ``take`` is `keras_biprune.handlers.take.Insert`);
* on every other axis (a producer's new filters, their bias, batch-norm
  statistics) new entries take the values a freshly built layer of the grown
  config has: the layer's own initializers (kernels random, biases and
  ``beta`` and ``moving_mean`` 0, ``gamma`` and ``moving_variance`` 1).

So the grown model computes exactly what the original did, and the new
filters start training as soon as their outgoing weights move.
"""

import logging

import numpy as np

from keras_biprune._validate import check_int
from keras_biprune.errors import HandlerError, InvalidPlanError
from keras_biprune.graph import trace
from keras_biprune.handlers import NodeIO, lookup
from keras_biprune.handlers.take import Insert
from keras_biprune.plan import PruningPlan
from keras_biprune.surgery.apply import _Rebuilder

logger = logging.getLogger(__name__)


class _NotGrowable(Exception):
    pass


_GROWN_SHAPE = Insert(shape_only=True)


def _run_mask(positions, k):
    """Grown mask of a run of one group's entries: new entries follow the run's layout.

    A run covers each of the group's positions ``r`` times, either each one
    ``r`` times in a row (a depthwise multiplier, a channels-first flatten) or
    the whole set ``r`` times over (a grouped conv's blocks).
    """
    n_positions = len(np.unique(positions))
    r = len(positions) // n_positions
    block = np.r_[np.ones(n_positions, bool), np.zeros(k, bool)]
    if r == 1 or np.array_equal(positions, np.repeat(positions[::r], r)):
        return np.repeat(block, r)
    if np.array_equal(positions, np.tile(positions[:n_positions], r)):
        return np.tile(block, r)
    raise _NotGrowable("its channels are laid out in an order growth cannot follow")


class _Grower(_Rebuilder):
    """Rebuilds a model with ``growth[group index]`` new channels per group."""

    def __init__(self, graph, growth):
        super().__init__(graph, PruningPlan.keep_all(graph), prune=True)
        self.graph = graph
        ids = [group.id for group in graph.groups]
        self.k = np.zeros(len(ids), dtype=np.int64)
        for group_id, n in growth.items():
            self.k[ids.index(group_id)] = n

    def mask(self, channels):
        """The grown old-channel mask of a tensor's ``Channels`` (None: untracked)."""
        if channels is None:
            return None
        groups = self.graph.atom_group[channels.labels]
        if not self.k[groups].any():
            return np.ones(len(groups), bool)
        positions = self.graph.atom_position[channels.labels]
        parts, start = [], 0
        for end in [*np.flatnonzero(np.diff(groups)) + 1, len(groups)]:
            g, run = groups[start], positions[start:end]
            if self.k[g] and len(np.unique(run)) != self.graph.groups[g].size:
                raise _NotGrowable("a tensor carries only some of its channels")
            parts.append(_run_mask(run, self.k[g]) if self.k[g] else np.ones(end - start, bool))
            start = end
        return np.concatenate(parts)

    def _io(self, record):
        return NodeIO(tuple(self.mask(c) for c in record.inputs),
                      tuple(self.mask(c) for c in record.outputs),
                      tuple(record.inputs), tuple(record.outputs))

    def configure(self, op, config):
        return lookup(op).grow_config(op, config, self._io(self.records[id(op)]))

    def arrays(self, op, arrays):
        """Arrays shaped like ``op``'s weights (optimizer slots), grown: new entries 0."""
        return self._grown(op, arrays, Insert(0.0))

    def new_weights(self, op, new):
        """``op``'s weights grown; new entries nothing reads take ``new``'s fresh values."""
        return self._grown(op, op.get_weights(), Insert(np.nan), fresh=new.get_weights())

    def _grown(self, op, arrays, take, fresh=None):
        dtypes = [np.asarray(a).dtype for a in arrays]
        wide = [np.asarray(a, dtype=np.float64) for a in arrays]
        grown = lookup(op).prune_weights(op, wide, self._io(self.records[id(op)]), take)
        if fresh is not None:
            grown = [np.where(np.isnan(g), f, g) for g, f in zip(grown, fresh)]
        return [np.asarray(g).astype(d) for g, d in zip(grown, dtypes)]

    def _select_inputs(self, op, args):
        return args


def growable_groups(graph):
    """``{group_id: reason}`` for each prunable group that cannot be grown.

    A group cannot grow when a layer carrying its channels has a handler
    that cannot widen it (its ``grow_config`` raises, e.g. a
    ``Normalization`` with per-channel statistics in its config or a
    ``ChannelSelect``), or when its channels are laid out in a way growth
    cannot follow. Groups that are not prunable never grow.

    Args:
        graph: a `ChannelGraph` (``kb.trace(model)``).

    Returns:
        A dict from group id to a reason; prunable groups not in it can grow.

    Example:

    ```python
    import keras_biprune as kb
    from keras_biprune.surgery import growable_groups
    graph = kb.trace(model)
    blocked = growable_groups(graph)       # {} for plain conv/BN/dense nets
    ```
    """
    blocked = {}
    for group in graph.prunable_groups:
        grower = _Grower(graph, {group.id: 1})
        try:
            for path in dict.fromkeys(m.layer for m in group.members):
                record = graph.record(path)
                io = grower._io(record)
                handler = lookup(record.op)
                handler.grow_config(record.op, record.op.get_config(), io)
                if getattr(record.op, "weights", None):
                    shapes = [np.broadcast_to(np.int8(0), tuple(w.shape)) for w in record.op.weights]
                    handler.prune_weights(record.op, shapes, io, _GROWN_SHAPE)
        except (_NotGrowable, HandlerError) as error:
            blocked[group.id] = f"{path}: {error}"
    return blocked


def _checked_growth(graph, growth):
    if not isinstance(growth, dict):
        raise InvalidPlanError(
            f"grow_model expects growth as a dict {{group_id: new channels}}. Received: "
            f"growth={type(growth).__name__}. Example: growth={{'conv2d': 4}}."
        )
    checked = {}
    for group_id, n in growth.items():
        group = graph.require(group_id, "growth")
        check_int(f"growth[{group_id!r}]", n, 0, InvalidPlanError, "It counts new channels.")
        if not group.prunable:
            raise InvalidPlanError(
                f"Group {group_id!r} cannot change width: {group.reason}. "
                f"Received: growth[{group_id!r}]={n}. Leave it out of growth."
            )
        if n:
            checked[group_id] = int(n)
    return checked


def grow(model, growth, graph=None):
    """``(grown model, grower, skipped)``: `grow_model` that also returns its rebuilder
    (whose ``arrays`` and ``new_ops`` map optimizer slots) and ``{group_id: reason}``
    of the groups it did not grow."""
    graph = trace(model) if graph is None else graph
    growth = _checked_growth(graph, growth)
    blocked = growable_groups(graph) if growth else {}
    skipped = {g: blocked[g] for g in growth if g in blocked}
    for group_id, reason in skipped.items():
        logger.warning("Group %r is not grown: %s", group_id, reason)
    growth = {g: n for g, n in growth.items() if g not in skipped}
    grower = _Grower(graph, growth)
    return grower.build(model), grower, skipped


def grow_model(model, growth, graph=None):
    """Builds a new, wider model with new channels that leave its outputs unchanged.

    Every producer of a grown group (all the convs feeding a residual ``Add``
    together) gets ``growth[group_id]`` new filters, appended after its
    original ones, initialized by the layer's own initializers (batch norm:
    ``gamma`` 1, ``beta`` 0, mean 0, variance 1). Every layer reading the
    group gets exact-zero weights for the new channels, so the grown model's
    outputs equal the original's (to float tolerance). ``model`` itself is not
    modified; the result is not compiled. Pruning the new channels away again
    (``kb.apply_plan`` keeping positions ``0 … size - 1``) gives back the
    original model.

    Args:
        model: a functional or Sequential Keras model.
        growth: ``{group_id: number of new channels}`` for prunable groups.
        graph: ``kb.trace(model)``, when you have it already.

    Returns:
        A new ``keras.Model`` (a ``keras.Sequential`` for a Sequential input).
        Groups that cannot grow (see `growable_groups`) are left as they are,
        with a logged warning saying why.

    Raises:
        InvalidPlanError: ``growth`` is malformed or names a frozen group.
        PlanMismatchError: ``growth`` names a group the model does not have.

    Example:

    ```python
    import numpy as np
    import keras_biprune as kb
    from keras_biprune.surgery import grow_model
    group = kb.trace(model).prunable_groups[0]
    wider = grow_model(model, {group.id: 4})
    x = np.random.rand(2, *model.input_shape[1:]).astype("float32")
    np.testing.assert_allclose(wider(x), model(x), atol=1e-5)
    ```
    """
    return grow(model, growth, graph)[0]

