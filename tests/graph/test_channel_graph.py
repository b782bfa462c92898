"""What tracing finds: groups, couplings, frozen channels and their reasons."""

import keras
import numpy as np
import pytest
from keras import layers, ops
from zoo import ZOO

import keras_biprune as kb


def _producer_classes(graph, model, group):
    by_path = {r.path: type(r.op).__name__ for r in graph.records}
    return sorted(by_path[p] for p in group.producers)


def _group_of(graph, path):
    return next(g for g in graph.groups if path in g.producers)


def test_plain_chain_has_one_group_per_conv_and_a_frozen_head():
    model = ZOO["plain_chain"]()
    graph = kb.trace(model)
    convs = [l for l in model.layers if isinstance(l, layers.Conv2D)]
    assert [g.size for g in graph.prunable_groups] == [c.filters for c in convs]
    head = _group_of(graph, model.layers[-1].name)
    assert not head.prunable and head.reason == "model output"


@pytest.mark.backends
def test_residual_add_unites_both_branches():
    model = ZOO["residual"]()
    graph = kb.trace(model)
    united = [g for g in graph.prunable_groups if len(g.producers) > 1]
    assert len(united) == 2
    # The `x + y` keras.ops node takes part like the Add layer.
    op_members = {m.layer for g in united for m in g.members}
    assert any(type(r.op).__name__ == "Add" and not isinstance(r.op, layers.Layer)
               and r.path in op_members for r in graph.records)


@pytest.mark.backends
def test_concatenate_offsets_channels_of_its_inputs():
    inputs = keras.Input((8, 8, 3))
    a = layers.Conv2D(3, 1, name="a")(inputs)
    b = layers.Conv2D(5, 1, name="b")(inputs)
    c = layers.Concatenate()([a, b])
    d = ops.concatenate([b, a], axis=-1)
    out = layers.Conv2D(2, 1, name="head")(layers.Add()([c, layers.Conv2D(8, 1, name="e")(inputs)]))
    model = keras.Model(inputs, [out, layers.Conv2D(2, 1, name="head2")(d)])
    graph = kb.trace(model)
    group = _group_of(graph, "a")
    assert set(group.producers) == {"a", "b", "e"} and group.size == 8
    read = {m.layer: m.index_map for m in group.members if m.role == "input 0"}
    # head reads [a, b] (tied to e); head2 reads [b, a]: the same positions, rotated.
    np.testing.assert_array_equal(read["head2"], np.roll(read["head"], -3))
    np.testing.assert_array_equal(np.sort(read["head"]), np.arange(8))


def test_depthwise_conv_is_tied_to_its_input():
    model = ZOO["depthwise_separable"]()
    graph = kb.trace(model)
    for layer in model.layers:
        if isinstance(layer, layers.DepthwiseConv2D):
            assert not any(layer.name in g.producers for g in graph.groups)
            members = [m for g in graph.groups for m in g.members if m.layer == layer.name]
            roles = {m.role for m in members}
            assert roles == {"input 0", "output 0"}
            out = next(m for m in members if m.role == "output 0")
            assert len(out.index_map) == layer.depth_multiplier * len(
                next(m for m in members if m.role == "input 0").index_map)


def test_squeeze_excitation_dense_units_follow_the_gated_channels():
    model = ZOO["squeeze_excitation"]()
    graph = kb.trace(model)
    dense = [l.name for l in model.layers if isinstance(l, layers.Dense)]
    gated = _group_of(graph, dense[1])
    assert len(gated.producers) == 2 and gated.prunable
    assert _group_of(graph, dense[0]).prunable  # the squeeze width


def test_flatten_maps_each_channel_to_its_spatial_positions():
    model = ZOO["flatten_dense"]()
    graph = kb.trace(model)
    flatten = next(l for l in model.layers if isinstance(l, layers.Flatten))
    dense = model.layers[model.layers.index(flatten) + 1]
    dense = dense if isinstance(dense, layers.Dense) else model.layers[model.layers.index(flatten) + 2]
    member = next(m for g in graph.groups for m in g.members
                  if m.layer == dense.name and m.role == "input 0")
    h, w, c = flatten.input.shape[1:]
    assert len(member.index_map) == h * w * c
    np.testing.assert_array_equal(member.index_map[:c], np.arange(c))
    np.testing.assert_array_equal(np.bincount(member.index_map), np.full(c, h * w))


def test_channels_first_flatten_maps_consecutive_positions():
    model = ZOO["channels_first_flatten"]()
    graph = kb.trace(model)
    flatten = next(l for l in model.layers if isinstance(l, layers.Flatten))
    dense = model.layers[-1]
    member = next(m for g in graph.groups for m in g.members
                  if m.layer == dense.name and m.role == "input 0")
    c, h, w = flatten.input.shape[1:]
    # Keras Flatten(channels_first) moves channels last first: channel k owns every c-th entry.
    np.testing.assert_array_equal(member.index_map.reshape(h * w, c),
                                  np.tile(np.arange(c), (h * w, 1)))
    assert all(g.prunable for g in graph.groups[:2])


@pytest.mark.backends
def test_nested_models_are_traced_inside():
    model = ZOO["nested"]()
    graph = kb.trace(model)
    nested_ids = [g.id for g in graph.prunable_groups if "/" in g.id]
    inner = [l.name for l in model.layers if isinstance(l, keras.Model)]
    assert {i.split("/")[0] for i in nested_ids} == set(inner)


def test_shared_layer_ties_the_inputs_of_both_calls():
    model = ZOO["shared_layer"]()
    graph = kb.trace(model)
    shared = next(r.op for r in graph.records if isinstance(r.op, layers.Conv2D)
                  and len(r.op._inbound_nodes) == 2)
    readers = [g for g in graph.groups
               if any(m.layer == shared.name and m.role == "input 0" for m in g.members)]
    assert len(readers) == 1 and len(readers[0].producers) == 2


def test_lambda_freezes_only_what_it_touches():
    model = ZOO["lambda_freeze"]()
    graph = kb.trace(model)
    frozen = [g for g in graph.groups if not g.prunable and g.reason != "model output"]
    assert len(frozen) == 1 and "Lambda" in frozen[0].reason
    assert len(graph.prunable_groups) >= 2


def test_normalization_across_channels_prunes_and_group_norm_ties_its_groups():
    model = ZOO["per_channel_layers"]()
    graph = kb.trace(model)
    reasons = " | ".join(g.reason for g in graph.groups if g.reason)
    assert "Normalization" not in reasons
    norms = {type(l).__name__ + str(getattr(l, "groups", "")): l.name for l in model.layers
             if isinstance(l, (layers.LayerNormalization, layers.GroupNormalization))}
    sizes = {key: next(g.size for g in graph.prunable_groups
                       if any(m.layer == name for m in g.members))
             for key, name in norms.items()}
    # GroupNormalization(groups=2) over 8 channels ties its two groups: 4 positions;
    # groups=-1 (built as groups=8) normalizes each channel on its own.
    assert sizes == {"LayerNormalization": 8, "GroupNormalization2": 4, "GroupNormalization8": 8}


def test_grouped_conv_ties_its_input_blocks():
    model = ZOO["grouped_conv"]()
    graph = kb.trace(model)
    grouped = [l for l in model.layers if isinstance(l, layers.Conv2D) and l.groups > 1]
    assert grouped
    for layer in grouped:
        read = next(m.index_map for g in graph.groups for m in g.members
                    if m.layer == layer.name and m.role == "input 0")
        blocks = read.reshape(layer.groups, -1)
        assert (blocks == blocks[0]).all()  # every group keeps the same input offsets
        made = next(m.index_map for g in graph.groups for m in g.members
                    if m.layer == layer.name and m.role == "output 0")
        np.testing.assert_array_equal(made.reshape(layer.groups, -1),
                                      np.tile(np.arange(layer.filters // layer.groups),
                                              (layer.groups, 1)))


def test_unprovable_reshape_freezes():
    inputs = keras.Input((4, 4, 6))
    x = layers.Conv2D(6, 1, name="c")(inputs)
    x = layers.Reshape((4, 8, 3))(x)  # splits channels across two axes
    model = keras.Model(inputs, layers.Conv2D(2, 1)(x))
    group = _group_of(kb.trace(model), "c")
    assert not group.prunable and "mixes channels" in group.reason


def test_reshape_that_keeps_the_channel_axis_prunes():
    inputs = keras.Input((4, 4, 6))
    x = layers.Conv2D(6, 1, name="c")(inputs)
    x = ops.reshape(x, (-1, 16, 6))
    model = keras.Model(inputs, layers.Conv1D(2, 1)(x))
    assert _group_of(kb.trace(model), "c").prunable


@pytest.mark.parametrize(
    "bad",
    [object(), "model", keras.layers.Dense(3), keras.Sequential([keras.layers.Dense(3)])],
    ids=["object", "str", "layer", "unbuilt-sequential"],
)
def test_non_models_are_rejected(bad):
    with pytest.raises(kb.UnsupportedModelError) as info:
        kb.trace(bad)
    assert isinstance(info.value, TypeError) and "Received" in str(info.value)


def test_subclassed_model_is_rejected_with_a_fix():
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.conv = layers.Conv2D(4, 3)

        def call(self, x):
            return self.conv(x)

    net = Net()
    net(np.zeros((1, 8, 8, 3), "float32"))
    with pytest.raises(kb.UnsupportedModelError, match="functional API"):
        kb.trace(net)


def test_summary_lists_every_group():
    graph = kb.trace(ZOO["lambda_freeze"]())
    text = graph.summary()
    assert all(g.id in text for g in graph.groups) and "frozen" in text


def test_conv_with_one_group_per_channel_prunes_like_a_depthwise_conv():
    inputs = keras.Input((6, 6, 3))
    x = layers.Conv2D(8, 1, name="c")(inputs)
    x = layers.Conv2D(16, 3, groups=8, name="dw")(x)
    model = keras.Model(inputs, layers.Dense(2)(layers.GlobalAveragePooling2D()(x)))
    graph = kb.trace(model)
    group = _group_of(graph, "c")
    assert group.prunable and group.size == 8
    slim = kb.apply_plan(model, kb.PruningPlan({"c": [0, 3, 5]}))
    assert slim.get_layer("dw").groups == 3 and slim.get_layer("dw").filters == 6
