"""The analytic cost model: parameters and multiply-accumulates of a pruned model.

Everything is computed from the channel graph and the plan, without building a
model: each layer's handler slices stand-ins of its weights with the same
`keras_biprune.handlers.take.Take` mechanism surgery uses, and says how many multiply-accumulates each
weight entry performs per example (`LayerHandler.macs_per_entry`).
"""

import dataclasses
import functools
import math
import warnings

import keras
import numpy as np

from keras_biprune import _keras_internals as internals
from keras_biprune.errors import UnsupportedModelError
from keras_biprune.graph import ChannelGraph, trace
from keras_biprune.handlers import lookup
from keras_biprune.handlers.take import Slice
from keras_biprune.plan import PruningPlan, checked_plan, kernel_mask, node_io

_SHAPE = Slice(shape_only=True)


@dataclasses.dataclass(frozen=True)
class Cost:
    """Parameters and multiply-accumulates (MACs), dense and sparse.

    Attributes:
        params: weights of the pruned model (what ``count_params()`` says).
        macs: multiply-accumulates of one forward pass on one example.
        sparse_params: ``params`` minus the kernel entries the plan's
            per-filter ``kernels`` masks zero.
        sparse_macs: ``macs`` minus the multiply-accumulates of those zeros.

    Costs add and subtract field by field.

    Example:

    ```python
    import keras_biprune as kb
    graph = kb.trace(model)
    full = kb.cost(graph)
    slim = kb.cost(graph, kb.PruningPlan.random(graph, ratio=0.5, seed=0))
    saved = full - slim                      # a Cost: the params and MACs removed
    print(saved.params, slim.ratio_to(full).macs)
    kb.Cost(params=10, macs=20) + kb.Cost(params=1, macs=2)   # Cost(params=11, macs=22, ...)
    ```
    """

    params: int = 0
    macs: int = 0
    sparse_params: int = 0
    sparse_macs: int = 0

    def __add__(self, other):
        return Cost(*(a + b for a, b in zip(_values(self), _values(other))))

    def __sub__(self, other):
        return Cost(*(a - b for a, b in zip(_values(self), _values(other))))

    def ratio_to(self, other):
        """A `Cost` of floats: each count of ``self`` divided by ``other``'s.

        ``cost(model, plan).ratio_to(cost(model)).macs`` is the share of the
        original MACs the pruned model keeps.
        """
        return Cost(*(_ratio(a, b) for a, b in zip(_values(self), _values(other))))


def _values(c):
    return (c.params, c.macs, c.sparse_params, c.sparse_macs)


def _ratio(a, b):
    if b:
        return a / b
    return 1.0 if a == 0 else math.inf


@dataclasses.dataclass(frozen=True, repr=False)
class CostReport(Cost):
    """The cost of a model under a plan: totals, per layer and per group.

    Returned by `keras_biprune.cost`. MACs count the multiply-accumulates of
    convolutions (1-D/2-D/3-D, grouped, transposed, depthwise, separable) and
    dense layers: the kernel entries times the positions they are applied at.
    Biases, batch normalization, activations, pooling and element-wise merges
    count 0 MACs, as in the published figures. FLOPs are about 2 × MACs.

    Attributes:
        params, macs, sparse_params, sparse_macs: the totals (see `Cost`).
        per_layer: ``{layer path: Cost}`` for every layer with weights. A
            shared layer's params count once and its MACs once per call.
        per_group: ``{group id: Cost}``, the cost that depends on the group's
            channels: what the model would lose if the group lost all of its
            kept channels (the layers producing, carrying and reading them).
            A kernel that reads one group and writes another counts in full
            for both, so these overlap and do not sum to the total; divided by
            the group's kept width they give a cost per channel. Computed on
            first access.
        uncounted: paths of the layers whose MACs could not be counted
            (their handler has no ``macs_per_entry``): their parameters are
            in the totals, their MACs are not. `keras_biprune.cost` warns
            when there are any.

    Example:

    ```python
    import keras_biprune as kb
    graph = kb.trace(model)
    report = kb.cost(graph, kb.PruningPlan.random(graph, ratio=0.5, seed=0))
    print(report)                            # CostReport(params=..., macs=..., layers=...)
    print(report.summary())                  # params and MACs per layer, then the totals
    group = graph.prunable_groups[0]
    macs_per_channel = kb.cost(graph).per_group[group.id].macs / group.size   # unpruned
    ```
    """

    per_layer: dict = dataclasses.field(default_factory=dict)
    uncounted: tuple = ()
    _graph: ChannelGraph = dataclasses.field(default=None, compare=False)
    _plan: PruningPlan = dataclasses.field(default=None, compare=False)

    @functools.cached_property
    def per_group(self):
        atom_keep = self._graph.atom_keep(self._plan.keep)
        result = {}
        for index, group in enumerate(self._graph.groups):
            emptied = atom_keep & (self._graph.atom_group != index)
            total = Cost()
            for path in dict.fromkeys(m.layer for m in group.members):
                costed = _layer_cost(self._graph.record(path), atom_keep, self._plan)
                if costed is not None:
                    total += costed - _layer_cost(self._graph.record(path), emptied, self._plan)
            result[group.id] = total
        return result

    def summary(self):
        """A text table: params and MACs of each layer, then the totals."""
        sparse = self.sparse_macs != self.macs or self.sparse_params != self.params
        width = max([len(p) for p in self.per_layer] + [5])
        head = f"  {'layer':<{width}}  {'params':>12}  {'MACs':>15}"
        lines = [
            f"Cost of {self._graph.model_name!r} (MACs: multiply-accumulates per example)",
            head + (f"  {'sparse MACs':>15}" if sparse else ""),
        ]
        for path, c in [*self.per_layer.items(), ("total", self)]:
            line = f"  {path:<{width}}  {c.params:>12,}  {c.macs:>15,}"
            lines.append(line + (f"  {c.sparse_macs:>15,}" if sparse else ""))
        return "\n".join(lines)

    def __repr__(self):
        text = f"CostReport(params={self.params:,}, macs={self.macs:,}"
        if self.sparse_macs != self.macs or self.sparse_params != self.params:
            text += f", sparse_params={self.sparse_params:,}, sparse_macs={self.sparse_macs:,}"
        return text + f", layers={len(self.per_layer)})"


def cost(model_or_graph, plan=None):
    """Parameters and multiply-accumulates of a model pruned by a plan.

    Computed analytically from the traced graph: no model is built, so it is
    cheap enough to call for every candidate of a search. ``params`` equals
    ``apply_plan(model, plan).count_params()``. MACs are multiply-accumulates
    of one example's forward pass (FLOPs ≈ 2 × MACs), counted for
    convolutions and dense layers only; see `CostReport`. The sparse counts
    also leave out the kernel entries zeroed by the plan's ``kernels`` masks.

    Args:
        model_or_graph: a functional or Sequential Keras model with fixed
            input shapes, or its `ChannelGraph` from `keras_biprune.trace`.
        plan: a `PruningPlan` for it (``None``: the unpruned model).

    Returns:
        A `CostReport`.

    Raises:
        UnsupportedModelError: not a model or graph, or a conv/dense layer
            whose spatial size is unknown (``None``) in the traced shapes.
        InvalidPlanError: the plan does not fit the model.

    Example:

    ```python
    import keras
    import keras_biprune as kb

    model = keras.applications.MobileNetV2(weights=None)
    graph = kb.trace(model)
    full = kb.cost(graph)                            # ~0.30 G MACs, 3.5 M params
    slim = kb.cost(graph, kb.PruningPlan.random(graph, ratio=0.5, seed=0))
    print(slim.ratio_to(full).macs)                  # share of MACs kept
    print(slim.summary())
    ```
    """
    graph, plan = _resolve(model_or_graph, plan, "cost")
    atom_keep = graph.atom_keep(plan.keep)
    per_layer = {}
    missing = []
    for record in graph.records:
        costed = _layer_cost(record, atom_keep, plan)
        if costed is not None:
            per_layer[record.path] = costed
            if _uncounted(record):
                missing.append(record.path)
    total = sum(per_layer.values(), Cost())
    if missing:
        shown = ", ".join(missing[:10]) + (", ..." if len(missing) > 10 else "")
        warnings.warn(
            f"kb.cost counts the parameters but not the MACs of {len(missing)} layer(s) it has "
            f"no MAC count for: {shown}. Its MACs are too low by theirs. Register a handler "
            "with macs_per_entry for their classes (kb.register_handler) to count them.",
            stacklevel=2,
        )
    return CostReport(*_values(total), per_layer=per_layer, uncounted=tuple(missing), _graph=graph,
                      _plan=plan)


def count_params(model_or_graph, plan=None):
    """The parameter count ``apply_plan(model, plan).count_params()`` will have.

    Computed from the graph's weight shapes without building a model. Unlike
    `cost` it also works when spatial sizes are unknown.

    Args:
        model_or_graph: a Keras model or its `ChannelGraph`.
        plan: a `PruningPlan` for it (``None``: the unpruned count).

    Example:

    ```python
    graph = kb.trace(model)
    kb.count_params(graph, kb.PruningPlan.random(graph, ratio=0.5, seed=0))
    ```
    """
    graph, plan = _resolve(model_or_graph, plan, "count_params")
    atom_keep = graph.atom_keep(plan.keep)
    return sum(sum(_weight_counts(r, node_io(r, atom_keep, plan))[0]) for r in graph.records)


def _resolve(model_or_graph, plan, caller):
    if isinstance(model_or_graph, ChannelGraph):
        graph = model_or_graph
    elif isinstance(model_or_graph, keras.Model):
        graph = trace(model_or_graph)
    else:
        raise UnsupportedModelError(
            f"{caller} expects a keras.Model or the kb.ChannelGraph of one. Received: "
            f"model_or_graph={type(model_or_graph).__name__}. Pass the model or kb.trace(model)."
        )
    return graph, checked_plan(graph, plan)


def _weight_counts(record, io):
    """Per weight of the layer: (dense entries, sparse entries) after the plan."""
    op = record.op
    if internals.is_graph_model(op) or not getattr(op, "weights", None):
        return (), ()
    handler = lookup(op)
    shapes = [np.broadcast_to(np.int8(0), tuple(w.shape)) for w in op.weights]
    dense = [math.prod(w.shape) for w in handler.prune_weights(op, shapes, io, _SHAPE)]
    if io.kernel is None:
        return dense, dense
    # Each zero of the (input channel, filter) mask that survives the
    # slicing stands for one spatial kernel.
    index = [w is op.kernel for w in op.weights].index(True)
    zeros = int(np.count_nonzero(~kernel_mask(io))) * math.prod(op.kernel.shape[:-2])
    sparse = list(dense)
    sparse[index] -= zeros
    return dense, sparse


def _layer_cost(record, atom_keep, plan):
    """The `Cost` of one layer over all its calls, or None if it has no weights.

    A layer whose handler cannot count its MACs costs its parameters and 0 MACs
    (`uncounted` lists it).
    """
    dense, sparse = _weight_counts(record, node_io(record, atom_keep, plan))
    if not dense:
        return None
    op = record.op
    handler = lookup(op)
    macs = sparse_macs = 0
    for input_shapes, output_shapes in record.calls:
        uses = handler.macs_per_entry(op, input_shapes, output_shapes) or ()
        for d, s, n in zip(dense, sparse, uses):
            if n is None and d:
                raise UnsupportedModelError(
                    f"cost needs the spatial size of every conv and dense layer. Received: "
                    f"{record.path} called on shapes {input_shapes} -> {output_shapes}. Build "
                    "the model with a fixed input shape, e.g. keras.Input((224, 224, 3)) or "
                    "keras.applications.X(input_shape=(224, 224, 3))."
                )
            macs += d * (n or 0)
            sparse_macs += s * (n or 0)
    return Cost(sum(dense), macs, sum(sparse), sparse_macs)


def _uncounted(record):
    """True for a layer whose handler cannot count its MACs."""
    return any(lookup(record.op).macs_per_entry(record.op, *call) is None for call in record.calls)
