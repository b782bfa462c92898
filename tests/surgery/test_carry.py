"""Layers the plan leaves unchanged are carried as they are, whatever their config says.

Each model here breaks a rebuild from configs (the failures of issue 18).
The reference is the original model, never a model rebuilt the same way.
"""

import threading

import keras
import numpy as np
import pytest
from equivalence import outputs, weights_snapshot
from keras import layers, ops
from zoo import randomize_weights

import keras_biprune as kb
from keras_biprune.errors import UnsupportedModelError


class Scale(layers.Layer):
    """keras-io style: ``__init__`` without ``**kwargs``."""

    def __init__(self, factor):
        super().__init__()
        self.factor = factor

    def call(self, x):
        return x * self.factor


class Offset(layers.Layer):
    """Its config does not round-trip (the key differs from the argument)."""

    def __init__(self, offset, **kwargs):
        super().__init__(**kwargs)
        self.offset = offset

    def call(self, x):
        return x + self.offset

    def get_config(self):
        return {**super().get_config(), "offset_value": self.offset}


class SumOfSquares(keras.regularizers.Regularizer):
    """A regularizer without ``get_config``."""

    def __call__(self, x):
        return 1e-3 * ops.sum(ops.square(x))


class Locked(layers.Layer):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.lock = threading.Lock()

    def call(self, x):
        return x


def _custom_layers():
    x = inputs = keras.Input((8, 8, 3))
    x = layers.Conv2D(8, 3, padding="same", name="conv_a")(x)
    x = Scale(0.5)(x)
    x = layers.Conv2D(8, 3, padding="same", name="conv_b")(x)
    x = Offset(0.25, name="offset")(x)
    x = layers.Conv2D(6, 3, padding="same", activation="relu", name="conv_c")(x)
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, layers.Dense(3)(x))


def _regularized():
    x = inputs = keras.Input((8, 8, 3))
    x = layers.Conv2D(8, 3, kernel_regularizer=SumOfSquares(), name="conv_a")(x)
    x = layers.Conv2D(8, 3, kernel_regularizer=SumOfSquares(), activation="relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, layers.Dense(3, bias_regularizer=SumOfSquares())(x))


def _lambda_and_gelu():
    x = inputs = keras.Input((8, 8, 3))
    x = layers.Conv2D(8, 3, padding="same")(x)
    x = layers.Lambda(lambda t: ops.reshape(t, (-1, 64, 8)))(x)
    x = layers.Dense(16, activation=ops.gelu, name="mlp")(x)
    x = layers.Dense(8, activation=ops.gelu, name="mlp_out")(x)
    x = layers.GlobalAveragePooling1D()(x)
    return keras.Model(inputs, layers.Dense(3)(x))


def _nested():
    x = inner_in = keras.Input((8, 8, 8))
    x = Scale(2.0)(x)
    inner = keras.Model(inner_in, layers.Conv2D(8, 1, activation=ops.gelu)(x), name="inner")
    x = inputs = keras.Input((8, 8, 3))
    x = layers.Conv2D(8, 3, padding="same")(x)
    x = inner(x)
    return keras.Model(inputs, layers.Dense(3)(layers.GlobalAveragePooling2D()(x)))


BUILDERS = {
    "custom_layers": _custom_layers,
    "regularized": _regularized,
    "lambda_and_gelu": _lambda_and_gelu,
    "nested": _nested,
}


@pytest.fixture(params=sorted(BUILDERS))
def model_and_input(request):
    model = randomize_weights(BUILDERS[request.param]())
    x = np.random.default_rng(0).standard_normal((2, 8, 8, 3)).astype("float32")
    return model, x


def _variables(model):
    refs = set()
    for v in model.variables:
        refs.update({id(v), id(getattr(v, "value", v))})
    return refs


def test_keep_all_plan_is_bit_identical_to_the_original(model_and_input):
    model, x = model_and_input
    before = weights_snapshot(model)
    same = kb.apply_plan(model, kb.PruningPlan.keep_all(kb.trace(model)))
    for a, b in zip(outputs(same, x), outputs(model, x)):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(weights_snapshot(model), before):
        np.testing.assert_array_equal(a, b)
    assert not _variables(same) & _variables(model)


@pytest.mark.parametrize("ratio", [0.3, 0.5])
def test_pruned_model_equals_masked_and_shares_no_variable(model_and_input, ratio):
    model, x = model_and_input
    graph = kb.trace(model)
    plan = kb.PruningPlan.random(graph, ratio=ratio, seed=1)
    slim, masked = kb.apply_plan(model, plan), kb.masked_model(model, plan)
    for a, b in zip(outputs(slim, x), outputs(masked, x)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    assert slim.count_params() == kb.count_params(graph, plan)
    assert not _variables(slim) & _variables(model)
    assert not _variables(masked) & _variables(model)


def test_a_slimmed_layer_keeps_its_callables():
    model = randomize_weights(_regularized())
    graph = kb.trace(model)
    keep = {g.id: list(range(g.size // 2)) for g in graph.prunable_groups}
    slim = kb.apply_plan(model, kb.PruningPlan(keep, signature=graph.signature))
    old, new = model.get_layer("conv_a"), slim.get_layer("conv_a")
    assert new.filters < old.filters
    assert new.kernel_regularizer is old.kernel_regularizer
    assert new.kernel.regularizer is old.kernel_regularizer
    assert len(slim.losses) == len(model.losses)


def test_a_slimmed_dense_keeps_the_approximate_gelu():
    model = randomize_weights(_lambda_and_gelu())
    graph = kb.trace(model)
    group = next(g for g in graph.prunable_groups if "mlp" in g.producers)
    plan = kb.PruningPlan({group.id: list(range(0, group.size, 2))}, signature=graph.signature)
    slim = kb.apply_plan(model, plan)
    assert slim.get_layer("mlp").units == 8
    assert slim.get_layer("mlp").activation is ops.gelu


def test_a_layer_that_cannot_be_copied_is_named():
    x = inputs = keras.Input((4,))
    x = Locked(name="locked")(layers.Dense(4)(x))
    model = keras.Model(inputs, layers.Dense(2)(x))
    with pytest.raises(UnsupportedModelError, match="'locked'.*cannot be copied"):
        kb.apply_plan(model, None)


class Counting(layers.Layer):
    """Holds a metric: state, not behaviour, so its copy gets its own."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.seen = keras.metrics.Sum()

    def call(self, x):
        return x


def test_a_carried_layer_gets_its_own_metric():
    x = inputs = keras.Input((4,))
    x = Counting(name="counting")(layers.Dense(4)(x))
    model = keras.Model(inputs, layers.Dense(2)(x))
    same = kb.apply_plan(model, None)
    old, new = model.get_layer("counting").seen, same.get_layer("counting").seen
    assert new is not old
    assert not {id(v) for v in new.variables} & {id(v) for v in old.variables}
