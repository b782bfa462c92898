"""Two plans applied one after the other, written as one plan of the original model."""

import numpy as np

from keras_biprune.errors import InvalidPlanError
from keras_biprune.plan.pruning_plan import PruningPlan, checked_plan


def compose(graph, first, second):
    """The plan of ``graph``'s model that ``second`` after ``first`` realizes.

    ``second`` is a plan of ``apply_plan(model, first)``, whose groups and
    layers keep their ids and paths. ``first`` removes filters only (no
    ``inputs`` or ``kernels`` masks: those would add layers to the slim
    model); ``second`` may have every kind of mask. Pruning in stages
    (`keras_biprune.BiLevelPruner` with ``steps``) keeps its result
    replayable on the original model this way.

    Args:
        graph: the `ChannelGraph` of the original model.
        first: a `PruningPlan` of ``graph`` with ``keep`` only.
        second: a `PruningPlan` of the model ``first`` makes.

    Returns:
        A `PruningPlan` of ``graph``: ``apply_plan(model, result)`` has the
        shapes (and kernel zeros) of ``apply_plan(apply_plan(model, first),
        second)``.

    Example:

    ```python
    graph = kb.trace(model)
    first = kb.PruningPlan.random(graph, 0.3, seed=0)
    slim = kb.apply_plan(model, first)
    second = kb.PruningPlan.random(kb.trace(slim), 0.3, seed=1)
    plan = kb.plan.compose(graph, first, second)
    ```
    """
    if first.inputs or first.kernels:
        raise InvalidPlanError(
            "compose takes a first plan that removes filters only. Received: a first plan "
            f"with input masks {sorted(first.inputs)} and kernel masks {sorted(first.kernels)}."
            " Drop them (PruningPlan(plan.keep)) before pruning further."
        )
    first = checked_plan(graph, first)
    keep = {}
    for group in graph.prunable_groups:
        kept = np.asarray(first.keep.get(group.id, range(group.size)), dtype=np.int64)
        if group.id in second.keep:
            kept = kept[np.asarray(second.keep[group.id], dtype=np.int64)]
        if len(kept) < group.size:
            keep[group.id] = kept
    atoms = graph.atom_keep(first.keep)
    inputs, kernels = {}, {}
    for path, read in second.inputs.items():
        record = graph.record(path)
        inputs[path] = np.flatnonzero(atoms[record.inputs[0].labels])[list(read)]
    for path, mask in second.kernels.items():
        record = graph.record(path)
        rows = np.flatnonzero(atoms[record.inputs[0].labels])
        columns = np.flatnonzero(atoms[record.outputs[0].labels])
        full = np.ones(tuple(record.op.kernel.shape[-2:]), dtype=bool)
        full[np.ix_(rows, columns)] = mask
        kernels[path] = full
    return checked_plan(graph, PruningPlan(keep, inputs=inputs, kernels=kernels,
                                           signature=graph.signature))
