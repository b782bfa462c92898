"""Growth surgery: a wider model that computes what the original did."""

import logging

import keras
import numpy as np
import pytest
from equivalence import outputs, weights_snapshot
from zoo import ZOO, sample_input

import keras_biprune as kb
from keras_biprune.errors import InvalidPlanError, PlanMismatchError
from keras_biprune.surgery import grow_model, growable_groups

MODELS = ["plain_chain", "residual", "inception", "depthwise_separable", "flatten_dense",
          "grouped_conv"]


@pytest.fixture(scope="module", params=MODELS)
def zoo_model(request):
    model = ZOO[request.param]()
    return model, sample_input(model)


def test_grown_model_equals_original_and_prunes_back_to_it(zoo_model):
    model, x = zoo_model
    graph = kb.trace(model)
    before = weights_snapshot(model)
    growth = {g.id: 1 + i % 3 for i, g in enumerate(graph.prunable_groups)}
    wider = grow_model(model, growth, graph)
    grown_graph = kb.trace(wider)
    for group_id, n in growth.items():
        assert grown_graph.group(group_id).size == graph.group(group_id).size + n
    assert wider.count_params() > model.count_params()
    for a, b in zip(outputs(wider, x), outputs(model, x)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    back = kb.apply_plan(wider, kb.PruningPlan({g: range(graph.group(g).size) for g in growth}))
    for a, b in zip(back.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)


def test_new_channels_are_fresh_where_made_and_zero_where_read():
    model = ZOO["plain_chain"]()
    first = kb.trace(model).prunable_groups[0]
    wider = grow_model(model, {first.id: 3})
    conv_name, bn_name, reader_name = (model.layers[i].name for i in (1, 2, 4))
    conv, bn, reader = (wider.get_layer(n) for n in (conv_name, bn_name, reader_name))
    assert conv.kernel.shape[-1] == 11 and np.abs(np.asarray(conv.kernel)[..., 8:]).sum() > 0
    np.testing.assert_array_equal(np.asarray(conv.kernel)[..., :8],
                                  np.asarray(model.get_layer(conv_name).kernel))
    np.testing.assert_array_equal(np.asarray(bn.gamma)[8:], 1)
    np.testing.assert_array_equal(np.asarray(bn.beta)[8:], 0)
    np.testing.assert_array_equal(np.asarray(bn.moving_mean)[8:], 0)
    np.testing.assert_array_equal(np.asarray(bn.moving_variance)[8:], 1)
    np.testing.assert_array_equal(np.asarray(reader.kernel)[:, :, 8:, :], 0)


def test_a_residual_group_grows_in_every_producer():
    model = ZOO["residual"]()
    graph = kb.trace(model)
    group = max(graph.prunable_groups, key=lambda g: len(g.producers))
    assert len(group.producers) > 1
    wider = grow_model(model, {group.id: 2}, graph)
    for path in group.producers:
        assert wider.get_layer(path).kernel.shape[-1] == group.size + 2


def test_a_group_that_cannot_grow_is_left_alone_and_the_reason_logged(caplog):
    model = ZOO["per_channel_layers"]()
    graph = kb.trace(model)
    blocked = growable_groups(graph)
    # Normalization(mean, variance) and the layer and group norms across channels
    assert len(blocked) == 3 and all("Normalization" in r for r in blocked.values())
    group_id = next(iter(blocked))
    other = next(g.id for g in graph.prunable_groups if g.id not in blocked)
    with caplog.at_level(logging.WARNING, logger="keras_biprune.surgery.grow"):
        wider = grow_model(model, {group_id: 2, other: 2}, graph)
    assert "is not grown" in caplog.text
    grown = kb.trace(wider)
    assert grown.group(group_id).size == graph.group(group_id).size
    assert grown.group(other).size == graph.group(other).size + 2
    x = sample_input(model)
    np.testing.assert_allclose(outputs(wider, x)[0], outputs(model, x)[0], atol=1e-5)


def test_bad_growth_is_refused():
    model = ZOO["plain_chain"]()
    graph = kb.trace(model)
    prunable, frozen = graph.prunable_groups[0].id, graph.groups[-1].id
    with pytest.raises(PlanMismatchError, match="does not have"):
        grow_model(model, {"nope": 2})
    with pytest.raises(InvalidPlanError, match="int >= 0"):
        grow_model(model, {prunable: -1})
    with pytest.raises(InvalidPlanError, match="cannot change width"):
        grow_model(model, {frozen: 1})
    with pytest.raises(InvalidPlanError, match="as a dict"):
        grow_model(model, [(prunable, 1)])


def test_a_sequential_model_grows_into_a_sequential_model():
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3, name="c"),
                              keras.layers.Flatten(), keras.layers.Dense(3)])
    wider = grow_model(model, {"c": 2})
    assert isinstance(wider, keras.Sequential)
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 1)).astype("float32")
    np.testing.assert_allclose(outputs(wider, x)[0], outputs(model, x)[0], atol=1e-5)
