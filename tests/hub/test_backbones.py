"""keras-hub backbones, built from their classes with small configs, prune equivalently.

keras-hub blocks that are subclassed layers made of Keras layers are traced
into (their functional views); ``ViTPatchingAndEmbedding`` has a handler.
Each backbone's output (its last feature map, or the ViT token stream) is a
model output, so the groups reaching it are frozen; everything else prunes.
"""

import keras
import numpy as np
import pytest

pytest.importorskip("keras_hub")

from backbones import BACKBONES
from equivalence import assert_equivalent, assert_keep_all_exact, prunable_share
from zoo import randomize_weights

import keras_biprune as kb


def _input(model, n=2):
    return np.random.default_rng(0).uniform(0, 1, (n, *model.input_shape[1:])).astype("float32")


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_backbone_prunes_equivalently(name):
    model = randomize_weights(BACKBONES[name](), seed=0)
    before = [np.array(w) for w in model.get_weights()]
    graph = kb.trace(model)

    reasons = {r.split(": ", 1)[-1] for g in graph.groups if not g.prunable
               for r in g.reason.split("; ")}
    assert reasons == {"model output"}, graph.summary()
    assert prunable_share(graph) >= 0.8, graph.summary()
    x = _input(model)
    assert_keep_all_exact(model, x)
    for seed, ratio in ((0, 0.5), (1, 0.3)):
        slim = assert_equivalent(model, kb.PruningPlan.random(graph, ratio, seed=seed), x)
        assert slim.count_params() < model.count_params()
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_vit_with_a_pooling_head_prunes_its_embedding_width():
    backbone = BACKBONES["vit"]()
    pooled = keras.layers.GlobalAveragePooling1D()(backbone.output)
    model = randomize_weights(keras.Model(backbone.input, keras.layers.Dense(5)(pooled)), 1)
    graph = kb.trace(model)
    assert graph.group("vit_patching_and_embedding").prunable, graph.summary()
    assert prunable_share(graph) >= 0.95
    plan = kb.PruningPlan.random(graph, 0.5, seed=0)
    slim = assert_equivalent(model, plan, _input(model))
    embedding = slim.get_layer("vit_patching_and_embedding")
    assert embedding.hidden_dim == 16 and type(embedding).__name__ == "ViTPatchingAndEmbedding"


def test_a_traced_block_becomes_a_nested_model_and_the_batched_engine_scores_it():
    model = randomize_weights(BACKBONES["mobilenet_v3"](), seed=0)
    x = _input(model, n=16)
    y = np.random.default_rng(1).normal(size=(16, *model.output_shape[1:])).astype("float32")
    evaluator = kb.Evaluator(model, (x, y), metric="mse", batch_size=8, eval_size=8,
                             calibration_size=8, adaptive_bn=False, max_parallel=2,
                             engine="batched")
    plan = kb.PruningPlan.random(evaluator.graph, 0.5, seed=0)
    slim = kb.apply_plan(model, plan)
    assert any(isinstance(layer, keras.Model) for layer in slim.layers)
    slim.compile(loss="mse", metrics=["mse"])
    expected = slim.evaluate(evaluator.x_eval[0], evaluator.y_eval, verbose=0,
                             return_dict=True)["mse"]
    np.testing.assert_allclose(evaluator.evaluate([plan]), [expected], rtol=2e-4)
