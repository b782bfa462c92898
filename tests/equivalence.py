"""The surgery invariants, as one check every architecture test calls."""

import os
import tempfile

import keras
import numpy as np

import keras_biprune as kb
from keras_biprune.handlers import lookup
from keras_biprune.handlers.take import Slice
from keras_biprune.plan import node_io


def outputs(model, x):
    y = model(x, training=False)
    return [keras.ops.convert_to_numpy(t) for t in keras.tree.flatten(y)]


def weights_snapshot(model):
    return [np.array(w, copy=True) for w in model.get_weights()]


def assert_equivalent(model, plan, x, rtol=1e-4, atol=1e-5):
    """Invariants 2 and 3: slim == masked, analytic params, round trip."""
    slim = kb.apply_plan(model, plan)
    ref = kb.masked_model(model, plan)
    for a, b in zip(outputs(slim, x), outputs(ref, x)):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)
    assert slim.count_params() == kb.count_params(kb.trace(model), plan)
    return slim


def assert_keep_all_exact(model, x):
    """Invariant 1: an empty plan rebuilds the model exactly."""
    same = kb.apply_plan(model, kb.PruningPlan.keep_all(kb.trace(model)))
    for a, b in zip(outputs(same, x), outputs(model, x)):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)
    assert same.count_params() == model.count_params()


def assert_save_load(slim, x):
    """Invariant 3: the slim model saves to .keras and loads back unchanged."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "slim.keras")
        slim.save(path)
        loaded = keras.saving.load_model(path, safe_mode=False)
    for a, b in zip(outputs(loaded, x), outputs(slim, x)):
        np.testing.assert_array_equal(a, b)


def prunable_share(graph):
    """The share of the model's parameters in prunable groups: weight entries on a
    channel axis (or an attention head or width) of a group a plan may prune."""
    total = kb.count_params(graph)
    fixed = {g.id: [] for g in graph.prunable_groups}
    atom_keep = graph.atom_keep(fixed)
    untouched = 0
    for record in graph.records:
        if isinstance(record.op, keras.Model) or not getattr(record.op, "weights", None):
            continue  # a nested model's weights count at its own layers
        shapes = [np.broadcast_to(np.int8(0), tuple(w.shape)) for w in record.op.weights]
        io = node_io(record, atom_keep, kb.PruningPlan())
        kept = lookup(record.op).prune_weights(record.op, shapes, io, Slice(shape_only=True))
        untouched += sum(int(np.prod(w.shape)) for w in kept)
    return 1 - untouched / total
