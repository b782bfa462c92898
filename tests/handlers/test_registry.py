"""Custom layers: frozen without a handler, pruned with one."""

import keras
import numpy as np
import pytest
from equivalence import assert_equivalent
from keras import layers

import keras_biprune as kb


@keras.saving.register_keras_serializable("biprune_tests")
class ChannelScale(layers.Layer):
    """A custom per-channel learned scale."""

    def build(self, shape):
        self.scale = self.add_weight(shape=(shape[-1],), initializer="ones")

    def call(self, x):
        return x * self.scale


def _model():
    inputs = keras.Input((6, 6, 3))
    x = layers.Conv2D(8, 3, name="conv")(inputs)
    scale = ChannelScale(name="scale")
    x = scale(x)
    x = layers.Conv2D(4, 3, name="conv2")(x)
    model = keras.Model(inputs, layers.Dense(2)(layers.Flatten()(x)))
    scale.set_weights([np.linspace(0.5, 2.0, 8).astype("float32")])
    return model


class ScaleHandler(kb.LayerHandler):
    def trace(self, layer, inputs, ctx):
        return [inputs[0]]

    def prune_weights(self, layer, weights, io, take):
        return [take(weights[0], -1, io.inputs[0])]


@pytest.fixture
def registry_snapshot():
    table = dict(kb.handlers.registry.REGISTRY._table)
    yield
    kb.handlers.registry.REGISTRY._table = table


def test_unknown_layer_is_frozen_with_a_reason():
    graph = kb.trace(_model())
    conv = next(g for g in graph.groups if "conv" in g.producers)
    assert not conv.prunable and "ChannelScale has no channel handler" in conv.reason
    assert any(g.prunable for g in graph.groups)


@pytest.mark.parametrize("handler", [ScaleHandler(), kb.handlers.PerChannelHandler()])
def test_registered_handler_makes_the_layer_prunable(registry_snapshot, handler):
    kb.register_handler(ChannelScale, handler)
    model = _model()
    graph = kb.trace(model)
    assert next(g for g in graph.groups if "conv" in g.producers).prunable
    plan = kb.PruningPlan({"conv": [1, 4, 6]})
    x = np.random.default_rng(0).normal(size=(2, 6, 6, 3)).astype("float32")
    slim = assert_equivalent(model, plan, x)
    np.testing.assert_allclose(slim.get_layer("scale").get_weights()[0],
                               np.linspace(0.5, 2.0, 8)[[1, 4, 6]], rtol=1e-6)


def test_handler_for_a_subclass_comes_from_its_base(registry_snapshot):
    class Sub(ChannelScale):
        pass

    kb.register_handler(ChannelScale, ScaleHandler())
    assert isinstance(kb.handlers.lookup(Sub()), ScaleHandler)


@pytest.mark.parametrize("cls,handler", [("Dense", ScaleHandler()), (ChannelScale, object())])
def test_bad_registration_is_rejected(cls, handler):
    with pytest.raises(kb.HandlerError, match="Received"):
        kb.register_handler(cls, handler)


def test_handler_that_mislabels_outputs_is_reported(registry_snapshot):
    class Wrong(kb.LayerHandler):
        def trace(self, layer, inputs, ctx):
            return [ctx.new(3)]

    kb.register_handler(ChannelScale, Wrong())
    with pytest.raises(kb.HandlerError, match="labelled 3 channels"):
        kb.trace(_model())
