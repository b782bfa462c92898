"""The analytic cost model: exact counts, slim models, published figures."""

import warnings

import keras
import numpy as np
import pytest
from keras import layers
from zoo import ZOO

import keras_biprune as kb


@pytest.fixture(scope="module", params=sorted(ZOO))
def zoo_model(request):
    return ZOO[request.param]()


def test_params_equal_the_slim_models_count(zoo_model):
    graph = kb.trace(zoo_model)
    assert kb.cost(graph).params == zoo_model.count_params()
    plan = kb.PruningPlan.random(graph, ratio=0.5, seed=0, input_ratio=0.3, kernel_ratio=0.3)
    report = kb.cost(graph, plan)
    slim = kb.apply_plan(zoo_model, plan)
    assert report.params == slim.count_params() == kb.count_params(graph, plan)
    # Random weights are never exactly 0: the slim model's zeros are the kernel masks'.
    zeros = sum(int(np.sum(w == 0)) for w in slim.get_weights())
    original_zeros = sum(int(np.sum(w == 0)) for w in zoo_model.get_weights())
    assert report.sparse_params == report.params - (zeros - original_zeros)
    assert report.macs <= kb.cost(graph).macs
    assert report.sparse_macs <= report.macs


def _tiny():
    inp = keras.Input((8, 8, 3))
    x = layers.Conv2D(4, 3, padding="same", name="conv")(inp)  # 3*3*3*4 * 8*8
    x = layers.ReLU()(layers.BatchNormalization(name="bn")(x))
    x = layers.Conv2D(4, 1, groups=2, name="grouped")(x)  # 1*1*2*4 * 8*8
    x = layers.DepthwiseConv2D(3, strides=2, padding="same", name="dw")(x)  # 3*3*4 * 4*4
    x = layers.SeparableConv2D(6, 3, name="sep")(x)  # (3*3*4 + 4*6) * 2*2
    x = layers.Conv2DTranspose(2, 2, strides=2, name="up")(x)  # 2*2*2*6 * 2*2 (input)
    x = layers.Reshape((16, 2))(x)
    x = layers.Dense(3, name="dense3d")(x)  # 2*3 * 16
    x = layers.Flatten()(x)
    return keras.Model(inp, layers.Dense(5, name="head")(x))  # 48*5


TINY_MACS = {
    "conv": 108 * 64,
    "grouped": 8 * 64,
    "dw": 36 * 16,
    "sep": (36 + 24) * 4,
    "up": 48 * 4,
    "dense3d": 6 * 16,
    "head": 48 * 5,
}


def test_macs_of_a_tiny_model_by_hand():
    model = _tiny()
    report = kb.cost(model)
    assert {p: c.macs for p, c in report.per_layer.items() if c.macs} == TINY_MACS
    assert report.macs == sum(TINY_MACS.values()) == 8768
    assert report.params == model.count_params()
    assert report.per_layer["bn"].macs == 0
    assert report.sparse_macs == report.macs and report.sparse_params == report.params


def test_channels_first_counts_like_channels_last():
    def build(data_format):
        shape = (3, 9, 7) if data_format == "channels_first" else (9, 7, 3)
        inp = keras.Input(shape)
        x = layers.Conv2D(5, 3, strides=2, data_format=data_format)(inp)
        return keras.Model(inp, layers.SeparableConv2D(4, 3, data_format=data_format)(x))

    first, last = kb.cost(build("channels_first")), kb.cost(build("channels_last"))
    assert first.macs == last.macs == 135 * 12 + (45 + 20) * 2


def _chain():
    inp = keras.Input((8, 8, 4))
    x = layers.Conv2D(8, 3, padding="same", name="a")(inp)
    x = layers.Conv2D(8, 3, padding="same", name="b")(x)
    x = layers.Conv2D(8, 3, padding="same", name="c")(x)
    return keras.Model(inp, layers.Dense(2, name="head")(layers.GlobalAveragePooling2D()(x)))


def test_halving_inputs_and_outputs_quarters_a_convs_macs():
    graph = kb.trace(_chain())
    full = kb.cost(graph)
    half = kb.cost(graph, kb.PruningPlan({"a": range(4), "b": range(0, 8, 2)}))
    assert half.per_layer["a"].macs * 2 == full.per_layer["a"].macs
    assert half.per_layer["b"].macs * 4 == full.per_layer["b"].macs
    assert half.per_layer["c"].macs * 2 == full.per_layer["c"].macs
    ratio = half.ratio_to(full)
    assert 0 < ratio.macs < 1 and ratio.params == half.params / full.params


def test_per_group_cost_is_what_the_group_touches():
    graph = kb.trace(_chain())
    report = kb.cost(graph, kb.PruningPlan({"a": range(4)}))
    per_layer = report.per_layer
    b = report.per_group["b"]
    assert b.macs == per_layer["b"].macs + per_layer["c"].macs
    assert b.params == per_layer["b"].params + per_layer["c"].params - 8  # c's bias is c's
    assert report.per_group["a"].macs == per_layer["a"].macs + per_layer["b"].macs


def test_shared_layer_macs_count_every_call():
    model = ZOO["shared_layer"]()
    graph = kb.trace(model)
    shared = next(r for r in graph.records if len(r.calls) == 2 and r.op.weights
                  and isinstance(r.op, layers.Conv2D))
    report = kb.cost(graph)
    assert report.per_layer[shared.path].macs == 2 * 3 * 3 * 8 * 12 * 12 * 12
    assert report.per_layer[shared.path].params == shared.op.count_params()


def test_kernel_masks_count_as_sparse():
    graph = kb.trace(_chain())
    mask = np.ones((8, 8), bool)
    mask[[0, 5], [1, 2]] = False  # two (input, filter) pairs of b's 3x3 kernel
    plan = kb.PruningPlan({"a": range(1, 8)}, kernels={"b": mask})
    report = kb.cost(graph, plan)
    dense = kb.cost(graph, kb.PruningPlan({"a": range(1, 8)}))
    assert (report.params, report.macs) == (dense.params, dense.macs)
    # Input 0 is pruned with filter a:0, so only the (5, 2) zero survives.
    assert report.sparse_params == report.params - 9
    assert report.sparse_macs == report.macs - 9 * 64
    assert "sparse" in report.summary() and "sparse_macs" in repr(report)


# Multiply-accumulates at 224x224, classifier head included, from the papers.
PUBLISHED = {
    "ResNet50": 3.8e9,  # He et al. 2016, Table 1 (v1: stride in the first 1x1 conv)
    "VGG16": 15.5e9,  # Simonyan & Zisserman 2015, as usually quoted
    "MobileNetV2": 300e6,  # Sandler et al. 2018, Table 3 (width 1.0)
}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_macs_match_published_figures(name):
    model = getattr(keras.applications, name)(weights=None)
    report = kb.cost(model)
    assert report.params == model.count_params()
    assert report.macs == pytest.approx(PUBLISHED[name], rel=0.03)


def test_custom_handlers_report_macs_through_the_hook():
    class Scale(layers.Layer):
        def build(self, shape):
            self.w = self.add_weight(shape=(shape[-1],), initializer="ones")

        def call(self, x):
            return x * self.w

    class ScaleHandler(kb.LayerHandler):
        def trace(self, layer, inputs, ctx):
            return [inputs[0]]

        def prune_weights(self, layer, weights, io, take):
            return [take(weights[0], -1, io.inputs[0])]

        def macs_per_entry(self, layer, input_shapes, output_shapes):
            return [kb.handlers.positions(output_shapes[0], -1)]

    kb.register_handler(Scale, ScaleHandler())
    inp = keras.Input((5, 5, 3))
    x = Scale(name="scale")(layers.Conv2D(6, 1, name="conv")(inp))
    graph = kb.trace(keras.Model(inp, layers.Conv2D(2, 1)(x)))
    report = kb.cost(graph, kb.PruningPlan({"conv": [0, 1, 2]}))
    assert report.per_layer["scale"].macs == 3 * 25


def test_bad_inputs_are_rejected_with_the_fix():
    with pytest.raises(kb.UnsupportedModelError, match="keras.Model or the kb.ChannelGraph"):
        kb.cost("model")
    with pytest.raises(kb.InvalidPlanError, match="kb.PruningPlan"):
        kb.cost(_chain(), plan={"a": [0]})
    with pytest.raises(kb.PlanMismatchError):
        kb.cost(_chain(), kb.PruningPlan({"nope": [0]}))
    inp = keras.Input((None, None, 3))
    dynamic = keras.Model(inp, layers.Conv2D(4, 3)(inp))
    with pytest.raises(kb.UnsupportedModelError, match="fixed input shape"):
        kb.cost(dynamic)
    assert kb.count_params(dynamic) == dynamic.count_params()


class _Gain(keras.layers.Layer):
    """A custom layer with weights and no handler: its MACs are unknown."""

    def build(self, shape):
        self.gain = self.add_weight(shape=(shape[-1], shape[-1]), initializer="identity")

    def call(self, x):
        return keras.ops.matmul(x, self.gain)


def test_cost_warns_with_the_layers_it_cannot_count():
    x = inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3)(x)
    x = _Gain(name="gain")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(2)(x))
    with pytest.warns(UserWarning, match=r"not the MACs of 1 layer\(s\).*: gain\."):
        report = kb.cost(model)
    assert report.uncounted == ("gain",)
    assert report.params == model.count_params()


def test_cost_of_a_model_it_understands_does_not_warn():
    x = inputs = keras.Input((8, 8, 3))
    x = keras.layers.BatchNormalization()(keras.layers.Conv2D(4, 3)(x))
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(x)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert kb.cost(model).uncounted == ()


def test_a_nested_model_of_unknown_size_is_costed_from_the_outer_shapes():
    inner_in = keras.Input((None, None, 4))
    inner = keras.Model(inner_in, keras.layers.Conv2D(6, 3, padding="same")(inner_in))
    x = inputs = keras.Input((10, 10, 3))
    x = inner(keras.layers.Conv2D(4, 3, padding="same")(x))
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x))
    report = kb.cost(model)
    assert report.macs == 10 * 10 * 9 * (3 * 4 + 4 * 6)
    assert inner.inputs[0].shape == (None, None, None, 4)  # the user's model is not rebuilt
