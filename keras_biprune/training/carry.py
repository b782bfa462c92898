"""Carrying an optimizer's state through layer surgery (pruning or growth)."""

import numpy as np

from keras_biprune import _keras_internals as internals


def optimizer_state(model):
    """The state of ``model``'s built optimizer as plain arrays.

    Returns:
        ``{"iterations": int, "slots": {slot name: {id(variable): array}}}``;
        the slot names are the optimizer's per-variable state lists (Adam:
        ``_momentums``, ``_velocities``). Empty slots when nothing is built.
    """
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None:
        return {"iterations": 0, "slots": {}}
    tracked, slots = internals.optimizer_slots(optimizer)
    return {"iterations": int(optimizer.iterations),
            "slots": {name: {id(v): np.asarray(s) for v, s in zip(tracked, values)}
                      for name, values in slots.items()}}


def map_optimizer_state(state, rebuilder):
    """``state`` re-keyed to a rebuilt model's variables, each slot sliced (pruned
    channels) or zero-extended (new channels) exactly like its variable.

    Args:
        state: from `optimizer_state` of the model ``rebuilder`` rebuilt.
        rebuilder: the rebuilder of ``surgery.apply.rebuild`` or ``surgery.grow.grow``.
    """
    slots = {name: {} for name in state["slots"]}
    for key, record in rebuilder.records.items():
        op, new = record.op, rebuilder.new_ops.get(key)
        if new is None or internals.is_graph_model(op) or not getattr(op, "weights", None):
            continue
        for name, values in state["slots"].items():
            if not any(id(w) in values for w in op.weights):
                continue
            arrays = [values.get(id(w), np.zeros(tuple(w.shape), "float32")) for w in op.weights]
            for old, variable, array in zip(op.weights, new.weights, rebuilder.arrays(op, arrays)):
                if id(old) in values:
                    slots[name][id(variable)] = array
    return {"iterations": state["iterations"], "slots": slots}


def load_optimizer_state(model, state):
    """Builds ``model``'s optimizer and assigns ``state`` where the shapes agree.

    Returns:
        ``(carried, fresh)``: the numbers of slot variables assigned and left new.
    """
    optimizer = model.optimizer
    optimizer.build(model.trainable_variables)
    optimizer.iterations.assign(state["iterations"])
    tracked, slots = internals.optimizer_slots(optimizer)
    carried = fresh = 0
    for name, values in slots.items():
        saved = state["slots"].get(name, {})
        for variable, slot in zip(tracked, values):
            array = saved.get(id(variable))
            if array is not None and tuple(array.shape) == tuple(slot.shape):
                slot.assign(array)
                carried += 1
            else:
                fresh += 1
    return carried, fresh
