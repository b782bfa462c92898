"""Channels that no layer reads any more are pruned upstream, without changing outputs."""

import keras
import numpy as np
import pytest
from equivalence import outputs
from zoo import ZOO, randomize_weights, sample_input

import keras_biprune as kb
from keras_biprune.pruner import _layer_at


def _inverted_residual():
    """expand 1×1 → BN → ReLU6 → depthwise → BN → project 1×1 → GAP → head."""
    x = keras.Input((8, 8, 3))
    h = keras.layers.Conv2D(16, 1, name="expand")(x)
    h = keras.layers.ReLU(6.0)(keras.layers.BatchNormalization(name="expand_bn")(h))
    h = keras.layers.DepthwiseConv2D(3, padding="same", name="dw")(h)
    h = keras.layers.BatchNormalization(name="dw_bn")(h)
    h = keras.layers.Conv2D(8, 1, name="project")(h)
    y = keras.layers.Dense(4, name="head")(keras.layers.GlobalAveragePooling2D()(h))
    return randomize_weights(keras.Model(x, y))


def _two_readers():
    """One conv output read by two 1×1 convs whose outputs are concatenated."""
    x = keras.Input((8, 8, 3))
    h = keras.layers.Conv2D(16, 3, padding="same", name="stem")(x)
    a = keras.layers.Conv2D(4, 1, name="left")(h)
    b = keras.layers.Conv2D(4, 1, name="right")(h)
    h = keras.layers.Concatenate()([a, b])
    y = keras.layers.Dense(4, name="head")(keras.layers.GlobalAveragePooling2D()(h))
    return randomize_weights(keras.Model(x, y))


def _burned_in(model, plan):
    """The function of ``plan`` without any pruning upstream: ``model`` masked by the
    plan's groups, with the plan's lower-level masks written into its kernels as zeros."""
    masked = kb.masked_model(model, kb.PruningPlan(plan.keep))
    for path in set(plan.inputs) | set(plan.kernels):
        layer = _layer_at(masked, path)
        if isinstance(layer, keras.layers.MultiHeadAttention):  # query (inputs, heads, width)
            query = layer.weights[0]
            rows = np.isin(np.arange(query.shape[0]), plan.inputs[path])
            query.assign(keras.ops.convert_to_numpy(query) * rows[:, None, None])
            continue
        if isinstance(layer, keras.layers.SeparableConv2D):   # drop inputs before the depthwise
            weight, n_in = layer.depthwise_kernel, layer.depthwise_kernel.shape[-2]
        elif isinstance(layer, keras.layers.Conv2DTranspose):  # kernel (h, w, filters, inputs)
            weight, n_in = layer.kernel, layer.kernel.shape[-1]
        else:
            weight, n_in = layer.kernel, layer.kernel.shape[-2]
        mask = np.ones((n_in, weight.shape[-1]), dtype=bool)
        if path in plan.inputs:
            mask[~np.isin(np.arange(n_in), plan.inputs[path])] = False
        if path in plan.kernels:
            mask &= plan.kernels[path]
        if isinstance(layer, keras.layers.Conv2DTranspose):
            mask = mask.T
        weight.assign(keras.ops.convert_to_numpy(weight) * mask)
    return masked


def _selects(model):
    return [layer for layer in model.layers if isinstance(layer, kb.layers.ChannelSelect)]


def test_channels_only_a_projection_dropped_leave_the_expansion():
    model = _inverted_residual()
    graph = kb.trace(model)
    plan = kb.PruningPlan(inputs={"project": list(range(0, 16, 2))}, signature=graph.signature)

    pruned = plan.without_unread(graph)

    assert pruned.keep == {"expand": tuple(range(0, 16, 2))}
    assert pruned.inputs == {}
    assert plan.keep == {} and plan.inputs == {"project": tuple(range(0, 16, 2))}  # not mutated
    slim = kb.apply_plan(model, plan)
    assert not _selects(slim)
    assert slim.get_layer("expand").filters == 8
    assert slim.get_layer("dw").kernel.shape[-2] == 8
    x = sample_input(model, n=4)
    np.testing.assert_allclose(outputs(slim, x)[0], outputs(_burned_in(model, plan), x)[0],
                               rtol=1e-5, atol=1e-5)
    assert not np.allclose(outputs(slim, x)[0], outputs(model, x)[0], atol=1e-3)
    assert kb.cost(graph, plan).macs == kb.cost(graph, pruned).macs
    assert kb.cost(graph, plan).macs <= 0.55 * kb.cost(graph).macs


def test_kernel_masks_prune_a_channel_no_kept_filter_reads():
    model = _inverted_residual()
    graph = kb.trace(model)
    mask = np.ones((16, 8), dtype=bool)
    mask[3] = False                 # no filter reads channel 3
    mask[5, :6] = False             # only filters 6 and 7 read channel 5
    assert plan_keep(graph, mask) == tuple(i for i in range(16) if i != 3)
    # Once the upper level removes filters 6 and 7, channel 5 is unread too.
    upper = {"project": [0, 1, 2, 3, 4, 5]}
    assert plan_keep(graph, mask, upper) == tuple(i for i in range(16) if i not in (3, 5))
    plan = kb.PruningPlan(upper, kernels={"project": mask})
    x = sample_input(model, n=4)
    np.testing.assert_allclose(outputs(kb.apply_plan(model, plan), x)[0],
                               outputs(_burned_in(model, plan), x)[0],
                               rtol=1e-5, atol=1e-5)


def plan_keep(graph, mask, keep=None):
    return kb.PruningPlan(keep, kernels={"project": mask}).without_unread(graph).keep["expand"]


def test_a_channel_stays_while_another_layer_reads_it():
    model = _two_readers()
    graph = kb.trace(model)
    only_left = kb.PruningPlan(inputs={"left": list(range(8))})
    assert only_left.without_unread(graph) is only_left
    assert len(_selects(kb.apply_plan(model, only_left))) == 1

    both = kb.PruningPlan(inputs={"left": list(range(8)), "right": list(range(4, 12))})
    pruned = both.without_unread(graph)
    assert pruned.keep == {"stem": tuple(range(12))}
    assert set(pruned.inputs) == {"left", "right"}       # each still drops a read channel
    x = sample_input(model, n=4)
    np.testing.assert_allclose(outputs(kb.apply_plan(model, both), x)[0],
                               outputs(_burned_in(model, both), x)[0],
                               rtol=1e-5, atol=1e-5)


def test_a_group_nobody_reads_stays_whole():
    model = _two_readers()
    graph = kb.trace(model)
    plan = kb.PruningPlan(inputs={"head": [0, 1, 2, 3]})     # the head reads only "left"
    assert plan.without_unread(graph) is plan                # "right" cannot become empty


@pytest.mark.parametrize("name", sorted(ZOO))
def test_every_topology_keeps_the_function_of_the_plan(name):
    model = ZOO[name]()
    graph = kb.trace(model)
    plan = kb.PruningPlan.random(graph, ratio=0.3, seed=3, input_ratio=0.5, kernel_ratio=0.3)
    pruned = plan.without_unread(graph)

    assert pruned.without_unread(graph) is pruned
    for group_id, kept in pruned.keep.items():
        assert set(kept) <= set(plan.keep.get(group_id, range(graph.group(group_id).size)))
    x = sample_input(model)
    slim = kb.apply_plan(model, plan)
    for a, b in zip(outputs(slim, x), outputs(_burned_in(model, plan), x)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    assert slim.count_params() == kb.count_params(graph, plan) <= kb.count_params(
        graph, kb.PruningPlan(plan.keep))


def test_lower_level_decoding_leaves_nothing_unread():
    model = ZOO["depthwise_separable"]()
    graph = kb.trace(model)
    lower = kb.search.LowerEncoding(graph, granularity="layer", kind="mask")
    genome = lower.full()
    genome[::3] = 0
    plan = lower.decode(genome, kb.PruningPlan.keep_all(graph))
    assert plan.without_unread(graph) is plan
    assert plan.keep                                  # the projection's dropped inputs
