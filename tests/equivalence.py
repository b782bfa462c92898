"""The surgery invariants, as one check every architecture test calls."""

import os
import tempfile

import keras
import numpy as np

import keras_biprune as kb


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
