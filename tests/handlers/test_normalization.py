"""Layer, RMS and group normalization over channels: statistics over the kept channels."""

import keras
import numpy as np
import pytest
from equivalence import assert_equivalent, assert_keep_all_exact, outputs
from keras import layers
from zoo import randomize_weights

import keras_biprune as kb


def _model(norm):
    inputs = keras.Input((6, 6, 3))
    x = layers.Conv2D(12, 3, padding="same", name="conv")(inputs)
    x = norm(x)
    x = layers.Conv2D(4, 3, name="reader")(x)
    return randomize_weights(keras.Model(inputs, layers.GlobalAveragePooling2D()(x)), seed=3)


NORMS = {
    "layer": lambda: layers.LayerNormalization(name="norm"),
    "layer_rms_scaling": lambda: layers.LayerNormalization(rms_scaling=True, name="norm"),
    "rms": lambda: layers.RMSNormalization(name="norm"),
    "group": lambda: layers.GroupNormalization(groups=3, name="norm"),
    "instance": lambda: layers.GroupNormalization(groups=-1, name="norm"),
}


@pytest.mark.filterwarnings("ignore:You passed `rms_scaling=True`")
@pytest.mark.parametrize("kind", sorted(NORMS))
def test_slim_normalizes_over_the_kept_channels_like_the_masked_reference(kind):
    model = _model(NORMS[kind]())
    graph = kb.trace(model)
    group = graph.group("conv")
    assert group.prunable
    assert group.size == (4 if kind == "group" else 12)   # 3 groups tied: 4 offsets
    x = np.random.default_rng(0).normal(size=(2, 6, 6, 3)).astype("float32")
    assert_keep_all_exact(model, x)
    plan = kb.PruningPlan({"conv": [0, 2, 3] if kind == "group" else [0, 1, 5, 7, 11]},
                          signature=graph.signature)
    slim = assert_equivalent(model, plan, x)
    if kind == "group":
        assert slim.get_layer("norm").groups == 3 and slim.get_layer("conv").filters == 9
    # The reference differs from zeroing what the reader reads under full statistics.
    naive = kb.apply_plan(model, kb.PruningPlan.keep_all(graph))
    kept = np.isin(np.arange(12), [c for p in plan.keep["conv"]
                                   for c in range(p, 12, group.size)])
    reader = naive.get_layer("reader")
    kernel, bias = reader.get_weights()
    reader.set_weights([kernel * kept[:, None], bias])
    close = np.allclose(outputs(naive, x)[0], outputs(slim, x)[0], atol=1e-4)
    assert close == (kind == "instance")


def test_layer_norm_over_channels_and_space_together_stays_whole():
    model = _model(layers.LayerNormalization(axis=[1, 2, 3], name="norm"))
    graph = kb.trace(model)
    assert not graph.group("conv").prunable
    assert "together" in graph.group("conv").reason


def test_layer_norm_over_space_only_keeps_its_weights_whole():
    model = _model(layers.LayerNormalization(axis=[1, 2], name="norm"))
    graph = kb.trace(model)
    plan = kb.PruningPlan({"conv": [0, 3, 4]}, signature=graph.signature)
    slim = assert_equivalent(model, plan, np.ones((1, 6, 6, 3), "float32"))
    assert slim.get_layer("norm").gamma.shape == (6, 6)


def test_a_norm_reads_every_channel_so_no_upstream_channel_is_unread():
    model = _model(layers.LayerNormalization(name="norm"))
    graph = kb.trace(model)
    plan = kb.PruningPlan(inputs={"reader": [0, 1]}, signature=graph.signature)
    assert plan.without_unread(graph).keep == {}
