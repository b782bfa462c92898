"""MultiHeadAttention: heads, key and value widths prune as groups; attention MACs count."""

import keras
import numpy as np
import pytest
from equivalence import assert_equivalent, assert_keep_all_exact, prunable_share
from keras import layers
from zoo import ZOO, randomize_weights

import keras_biprune as kb
from keras_biprune.errors import HandlerError
from keras_biprune.surgery import grow_model


def _cross_attention(output_shape=None):
    """Query tokens (8 channels) attend to context tokens (6 channels)."""
    query_in, context_in = keras.Input((5, 4)), keras.Input((7, 3))
    query = layers.Dense(8, name="q_proj")(query_in)
    context = layers.Dense(6, name="c_proj")(context_in)
    y = layers.MultiHeadAttention(4, 6, value_dim=5, output_shape=output_shape,
                                  name="mha")(query, context)
    y = layers.Dense(3, name="head")(layers.GlobalAveragePooling1D()(y))
    return randomize_weights(keras.Model([query_in, context_in], y), seed=2)


def _inputs(n=2):
    rng = np.random.default_rng(0)
    return [rng.normal(size=(n, 5, 4)).astype("float32"),
            rng.normal(size=(n, 7, 3)).astype("float32")]


@pytest.mark.parametrize("output_shape", [None, 10])
def test_heads_widths_and_both_inputs_prune_like_the_masked_reference(output_shape):
    model = _cross_attention(output_shape)
    graph = kb.trace(model)
    sizes = {g.id: g.size for g in graph.prunable_groups}
    assert sizes == {"q_proj": 8, "c_proj": 6, "mha:heads": 4, "mha:key_dim": 6,
                     "mha:value_dim": 5, "mha": output_shape or 8}
    assert_keep_all_exact(model, _inputs())
    plan = kb.PruningPlan({"q_proj": [0, 2, 3, 7], "c_proj": [1, 4], "mha:heads": [0, 3],
                           "mha:key_dim": [1, 2, 5], "mha:value_dim": [0, 4],
                           "mha": [0, 1, 2]}, signature=graph.signature)
    slim = assert_equivalent(model, plan, _inputs())
    config = slim.get_layer("mha").get_config()
    assert (config["num_heads"], config["key_dim"], config["value_dim"]) == (2, 3, 2)
    assert tuple(config["output_shape"]) == (3,)
    for seed in range(3):
        assert_equivalent(model, kb.PruningPlan.random(graph, 0.5, seed=seed), _inputs())


def test_cost_counts_projections_and_attention():
    model = _cross_attention()
    graph = kb.trace(model)
    heads, key, value, queries, keys = 4, 6, 5, 5, 7
    projections = queries * 8 * heads * key + keys * 6 * heads * (key + value) \
        + queries * heads * value * 8
    attention = queries * keys * heads * (key + value)
    assert kb.cost(graph).per_layer["mha"].macs == projections + attention
    plan = kb.PruningPlan({"mha:heads": [1]}, signature=graph.signature)
    assert kb.cost(graph, plan).per_layer["mha"].macs == (projections + attention) // heads


def test_weight_criteria_score_heads_and_widths():
    model = _cross_attention()
    graph = kb.trace(model)
    scores = kb.criteria.L1()(graph, graph.group("mha:heads"), model)
    assert scores.shape == (4,) and len(set(np.round(scores, 5))) == 4


def test_returned_attention_scores_keep_the_heads_whole():
    inputs = keras.Input((5, 8))
    x = layers.Dense(8)(inputs)
    y, scores = layers.MultiHeadAttention(2, 4, name="mha")(x, x, return_attention_scores=True)
    model = keras.Model(inputs, [layers.Dense(2)(y), scores])
    graph = kb.trace(model)
    assert not graph.group("mha:heads").prunable
    assert graph.group("mha:key_dim").prunable


def test_heads_do_not_grow():
    model = _cross_attention()
    graph = kb.trace(model)
    with pytest.raises(HandlerError, match="cannot grow"):
        kb.handlers.lookup(model.get_layer("mha")).grow_config(
            model.get_layer("mha"), {}, kb.handlers.NodeIO(
                (None, None), (None,), (None, None), (None,),
                internal={"heads": np.array([True, False])}))
    wider = grow_model(model, {"q_proj": 2, "mha": 2}, graph)
    assert wider.get_layer("mha").get_config()["num_heads"] == 4
    np.testing.assert_allclose(wider(_inputs()), model(_inputs()), atol=1e-5)


def test_a_vit_style_model_has_most_parameters_in_prunable_groups():
    model = ZOO["transformer"]()
    graph = kb.trace(model)
    assert prunable_share(graph) >= 0.8, graph.summary()
    heads = [g for g in graph.prunable_groups if g.id.endswith(":heads")]
    assert len(heads) == 2
    plan = kb.PruningPlan({g.id: [0] for g in heads}, signature=graph.signature)
    saved = kb.cost(graph).macs - kb.cost(graph, plan).macs
    # Per block and head: Q/K (6) and V (5) projections over 16 tokens and the
    # output projection, plus QK^T and AV over 16 x 16 token pairs, for 3 of 4 heads.
    per_head = 16 * 16 * 6 * 2 + 16 * 16 * 5 + 16 * 5 * 16 + 16 * 16 * (6 + 5)
    assert saved == 2 * 3 * per_head
