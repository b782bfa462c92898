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


@keras.saving.register_keras_serializable("biprune_tests")
class UnitMix(layers.Layer):
    """A custom dense layer: ``activation(x @ kernel + bias)`` on the last axis."""

    def __init__(self, units, activation=None, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.activation = keras.activations.get(activation)

    def build(self, shape):
        self.kernel = self.add_weight(shape=(shape[-1], self.units), name="kernel")
        self.bias = self.add_weight(shape=(self.units,), initializer="random_normal", name="bias")

    def call(self, x):
        return self.activation(keras.ops.matmul(x, self.kernel) + self.bias)

    def get_config(self):
        return {**super().get_config(), "units": self.units,
                "activation": keras.activations.serialize(self.activation)}


class UnitMixHandler(kb.LayerHandler):
    """Everything a new channel-mixing layer answers for, in one handler."""

    scores_inputs = True
    masks_kernel = True

    def trace(self, layer, inputs, ctx):
        return [ctx.new(layer.units, -1)]

    def prune_config(self, layer, config, io):
        config["units"] = int(io.outputs[0].sum())
        return config

    def prune_weights(self, layer, weights, io, take):
        kernel = take(weights[0], 0, io.inputs[0], consumed=True)
        return [take(kernel, 1, io.outputs[0]), take(weights[1], -1, io.outputs[0])]

    def macs_per_entry(self, layer, input_shapes, output_shapes):
        return [kb.handlers.positions(output_shapes[0], -1), 0]

    def kernel_columns(self, layer):
        return keras.ops.convert_to_numpy(layer.kernel)

    def input_magnitudes(self, layer):
        return np.abs(keras.ops.convert_to_numpy(layer.kernel))

    def sliced_kind(self, layer):
        return "dense"


def test_a_registered_layer_gets_criteria_cost_and_the_sliced_engine(registry_snapshot):
    kb.register_handler(UnitMix, UnitMixHandler())
    inputs = keras.Input((8, 8, 3))
    x = layers.Conv2D(6, 3, activation="relu", name="conv")(inputs)
    x = UnitMix(10, activation="relu", name="mix")(layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inputs, layers.Dense(4, name="head")(x))
    graph = kb.trace(model)
    mix = next(g for g in graph.prunable_groups if "mix" in g.producers)
    conv = next(g for g in graph.prunable_groups if "conv" in g.producers)
    x_data = np.random.default_rng(0).random((24, 8, 8, 3)).astype("float32")

    l1 = kb.criteria.scores(graph, model, "l1")[mix.id]
    ratio = l1 / np.abs(model.get_layer("mix").kernel.numpy()).sum(axis=0)   # up to a scale
    np.testing.assert_allclose(ratio, ratio[0], rtol=1e-5)
    apoz = kb.criteria.scores(graph, model, "apoz", data=x_data)[conv.id]
    assert apoz.shape == (conv.size,) and np.isfinite(apoz).all()

    plan = kb.PruningPlan.random(graph, 0.5, seed=0, kernel_ratio=0.3)
    assert "mix" in plan.kernels
    slim = kb.apply_plan(model, plan)
    report = kb.cost(graph, plan)
    assert report.params == slim.count_params()
    assert report.per_layer["mix"].macs == np.prod(slim.get_layer("mix").kernel.shape)

    y = np.random.default_rng(1).normal(size=(24, 4))

    def score(engine):
        return kb.Evaluator(model, (x_data, y), metric="mse", batch_size=8, eval_size=16,
                            calibration_size=8, engine=engine).evaluate([plan])[0]

    if keras.backend.backend() != "tensorflow":
        with pytest.raises(kb.errors.EvaluationError, match="needs the TensorFlow backend"):
            score("sliced")
        return
    np.testing.assert_allclose(score("sliced"), score("batched"), rtol=1e-4)


def test_one_dimensional_resampling_and_pad_keep_channels():
    x = inputs = keras.Input((16, 3))
    x = keras.layers.Conv1D(8, 3, padding="same", name="conv")(x)
    x = keras.layers.UpSampling1D(2)(x)
    x = keras.layers.Cropping1D((1, 1))(x)
    x = keras.ops.pad(x, ((0, 0), (2, 2), (0, 0)))
    x = keras.layers.Conv1D(4, 3)(x)
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling1D()(x)))
    graph = kb.trace(model)
    assert graph.group("conv").prunable
    assert_equivalent(model, kb.PruningPlan.random(graph, ratio=0.5, seed=0),
                      np.random.default_rng(0).standard_normal((2, 16, 3)).astype("float32"))


def test_padding_the_channel_axis_freezes_the_channels():
    x = inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, name="conv")(x)
    x = keras.ops.pad(x, ((0, 0), (0, 0), (0, 0), (1, 1)))
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(x)))
    assert "pads the channel axis by (1, 1)" in kb.trace(model).group("conv").reason
