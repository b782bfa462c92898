"""The surgery invariants on real-world models (building code after keras-io examples)."""

import numpy as np
import pytest
from equivalence import assert_equivalent, outputs, weights_snapshot
from keras_io_zoo import KERAS_IO_ZOO, sample_input
from zoo import randomize_weights

import keras_biprune as kb

# keras.applications models take most of the module's time: CI's slow run covers them.
_SLOW = {"efficientnet_b0", "mobilenet_v2", "mobilenet_v3_small"}


@pytest.fixture(scope="module", params=[
    pytest.param(name, marks=[pytest.mark.slow] if name in _SLOW else [])
    for name in sorted(KERAS_IO_ZOO)
])
def real_model(request):
    model = randomize_weights(KERAS_IO_ZOO[request.param]())
    return model, sample_input(model), weights_snapshot(model)


def test_keep_all_plan_is_the_original_model(real_model):
    model, x, _ = real_model
    same = kb.apply_plan(model, kb.PruningPlan.keep_all(kb.trace(model)))
    for a, b in zip(outputs(same, x), outputs(model, x)):
        np.testing.assert_array_equal(a, b)
    assert same.count_params() == model.count_params()


@pytest.mark.parametrize("ratio", [0.3, 0.5])
def test_random_plans_slim_equals_masked(real_model, ratio):
    model, x, before = real_model
    graph = kb.trace(model)
    assert_equivalent(model, kb.PruningPlan.random(graph, ratio=ratio, seed=0), x)
    for a, b in zip(weights_snapshot(model), before):
        np.testing.assert_array_equal(a, b)


def test_no_group_is_frozen_by_a_layer_that_has_a_handler():
    handled = [f"{name} has no channel handler" for name in (
        "Split", "Pad", "DepthToSpace", "SpaceToDepth", "Resizing", "StochasticDepth",
        "Embedding")]
    for name in ("cct", "csp_darknet_block", "deeplabv3_plus", "espcn_super_resolution",
                 "text_cnn", "zero_dce"):
        reasons = [g.reason for g in kb.trace(KERAS_IO_ZOO[name]()).groups if not g.prunable]
        assert not [r for r in reasons if any(h in r for h in handled)], (name, reasons)
