"""The surgery invariants on every zoo model."""

import keras
import numpy as np
import pytest
from equivalence import (
    assert_equivalent,
    assert_keep_all_exact,
    assert_save_load,
    outputs,
    weights_snapshot,
)
from zoo import ZOO, sample_input

import keras_biprune as kb


@pytest.fixture(scope="module", params=sorted(ZOO))
def zoo_model(request):
    model = ZOO[request.param]()
    return model, sample_input(model)


def test_keep_all_plan_reproduces_the_model(zoo_model):
    model, x = zoo_model
    assert_keep_all_exact(model, x)


@pytest.mark.parametrize("seed,ratio", [(0, 0.3), (1, 0.5), (2, 0.7)])
def test_slim_model_equals_masked_model(zoo_model, seed, ratio):
    model, x = zoo_model
    graph = kb.trace(model)
    plan = kb.PruningPlan.random(graph, ratio=ratio, seed=seed)
    slim = assert_equivalent(model, plan, x)
    if plan.keep:
        assert slim.count_params() < model.count_params()


def test_lower_level_masks_keep_slim_equal_to_masked(zoo_model):
    model, x = zoo_model
    graph = kb.trace(model)
    plan = kb.PruningPlan.random(graph, ratio=0.3, seed=4, input_ratio=0.4, kernel_ratio=0.3)
    slim = assert_equivalent(model, plan, x)
    assert_save_load(slim, x)
    selects = [layer for layer in _all_layers(slim) if isinstance(layer, kb.layers.ChannelSelect)]
    assert plan.inputs
    # One per call of a shared layer, for masks that leave channels other layers still read.
    assert len(selects) >= len(plan.without_unread(graph).inputs)
    without_kernels = kb.PruningPlan(plan.keep, inputs=plan.inputs, signature=plan.signature)
    assert plan.kernels and not np.allclose(
        outputs(slim, x)[0], outputs(kb.apply_plan(model, without_kernels), x)[0]
    )


def _all_layers(model):
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from _all_layers(layer)


def test_slim_model_round_trips_and_original_is_untouched(zoo_model):
    model, x = zoo_model
    before_weights = weights_snapshot(model)
    before_outputs = outputs(model, x)
    n_layers, n_ops = len(model.layers), len(model.operations)
    plan = kb.PruningPlan.random(kb.trace(model), ratio=0.5, seed=3)
    slim = kb.apply_plan(model, plan)
    kb.masked_model(model, plan)
    assert_save_load(slim, x)
    for a, b in zip(weights_snapshot(model), before_weights):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(outputs(model, x), before_outputs):
        np.testing.assert_array_equal(a, b)
    assert (len(model.layers), len(model.operations)) == (n_layers, n_ops)
    assert not set(map(id, slim.weights)) & set(map(id, model.weights))


@pytest.mark.backends
def test_slim_model_trains():
    model = ZOO["residual"]()
    x = sample_input(model, n=8)
    slim = kb.apply_plan(model, kb.PruningPlan.random(kb.trace(model), ratio=0.5, seed=0))
    slim.compile("sgd", "sparse_categorical_crossentropy")
    history = slim.fit(x, np.arange(8) % 5, epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()


@pytest.mark.backends
def test_sequential_model_stays_sequential():
    import keras

    model = keras.Sequential(
        [
            keras.Input((10, 10, 3)),
            keras.layers.Conv2D(6, 3, name="c1"),
            keras.layers.BatchNormalization(),
            keras.layers.ReLU(),
            keras.layers.Conv2D(5, 3, name="c2"),
            keras.layers.Flatten(),
            keras.layers.Dense(3),
        ],
        name="seq",
    )
    plan = kb.PruningPlan({"c1": [0, 2, 4], "c2": [1, 3]})
    x = np.random.default_rng(0).normal(size=(2, 10, 10, 3)).astype("float32")
    slim = assert_equivalent(model, plan, x)
    assert isinstance(slim, keras.Sequential)
    assert slim.name == "seq"
    assert slim.get_layer("c1").filters == 3 and slim.get_layer("c2").filters == 2
    assert slim.layers[-1].kernel.shape == (6 * 6 * 2, 3)


@pytest.mark.backends
def test_multi_io_keeps_input_and_output_structure():
    model = ZOO["multi_io"]()
    slim = kb.apply_plan(model, kb.PruningPlan.random(kb.trace(model), ratio=0.5, seed=0))
    assert [t.shape for t in slim.inputs] == [t.shape for t in model.inputs]
    assert [t.shape for t in slim.outputs] == [t.shape for t in model.outputs]
    assert slim.output_names == model.output_names


def test_count_params_without_plan_is_the_model_count():
    for build in ZOO.values():
        model = build()
        assert kb.count_params(kb.trace(model)) == model.count_params()
