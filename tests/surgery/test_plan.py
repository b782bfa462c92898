"""PruningPlan: construction, serialization and every kind of bad plan."""

import keras
import numpy as np
import pytest
from zoo import ZOO

import keras_biprune as kb


@pytest.fixture(scope="module")
def model():
    return ZOO["residual"]()


@pytest.fixture(scope="module")
def graph(model):
    return kb.trace(model)


def test_random_plan_prunes_the_ratio_of_each_group(graph):
    plan = kb.PruningPlan.random(graph, ratio=0.5, seed=0)
    assert set(plan.keep) == {g.id for g in graph.prunable_groups}
    for group in graph.prunable_groups:
        assert len(plan.keep[group.id]) == group.size - round(0.5 * group.size)
    assert plan == kb.PruningPlan.random(graph, ratio=0.5, seed=0)
    assert plan != kb.PruningPlan.random(graph, ratio=0.5, seed=1)


def test_json_and_config_round_trip(graph):
    plan = kb.PruningPlan.random(graph, ratio=0.3, seed=4)
    again = kb.PruningPlan.from_json(plan.to_json())
    assert again == plan and again.signature == graph.signature
    assert kb.PruningPlan.from_config(plan.get_config()) == plan


def test_indices_are_sorted_and_any_int_type_is_accepted(graph):
    gid = graph.prunable_groups[0].id
    plan = kb.PruningPlan({gid: np.array([3, 0, 1], dtype=np.int32)})
    assert plan.keep[gid] == (0, 1, 3)


@pytest.mark.parametrize(
    "keep,match",
    [
        ({"G": [0, 0, 1]}, "duplicates"),
        ({"G": [-1]}, ">= 0"),
        ({"G": [0.5]}, "must be ints"),
        ({"G": "01"}, "sequence of ints"),
    ],
)
def test_malformed_indices_are_rejected(graph, keep, match):
    gid = graph.prunable_groups[0].id
    with pytest.raises(kb.InvalidPlanError, match=match) as info:
        kb.PruningPlan({gid: keep["G"]})
    assert isinstance(info.value, ValueError) and "Received" in str(info.value)


def test_empty_group_is_rejected(model, graph):
    gid = graph.prunable_groups[0].id
    with pytest.raises(kb.InvalidPlanError, match="keep no channel"):
        kb.apply_plan(model, kb.PruningPlan({gid: []}))


def test_out_of_range_index_is_rejected(model, graph):
    group = graph.prunable_groups[0]
    with pytest.raises(kb.InvalidPlanError, match=f"has {group.size} channels"):
        kb.apply_plan(model, kb.PruningPlan({group.id: [0, group.size]}))


def test_frozen_group_cannot_be_pruned(model, graph):
    frozen = next(g for g in graph.groups if not g.prunable)
    with pytest.raises(kb.InvalidPlanError, match="cannot be pruned"):
        kb.masked_model(model, kb.PruningPlan({frozen.id: [0]}))


def test_plan_for_another_model_is_rejected(model):
    other = ZOO["plain_chain"]()
    plan = kb.PruningPlan.random(kb.trace(other), ratio=0.5, seed=0)
    with pytest.raises(kb.PlanMismatchError, match="another model"):
        kb.apply_plan(model, plan)
    unsigned = kb.PruningPlan({"no_such_layer": [0]})
    with pytest.raises(kb.PlanMismatchError, match="does not have"):
        kb.apply_plan(model, unsigned)


@pytest.mark.parametrize("ratio", [-0.1, 1.0, "half"])
def test_bad_ratio_is_rejected(graph, ratio):
    with pytest.raises(kb.InvalidPlanError, match="ratio"):
        kb.PruningPlan.random(graph, ratio=ratio)


def test_non_plan_and_bad_json_are_rejected(model):
    with pytest.raises(kb.InvalidPlanError, match="Expected a kb.PruningPlan"):
        kb.apply_plan(model, {"conv2d": [0]})
    with pytest.raises(kb.InvalidPlanError, match="does not parse"):
        kb.PruningPlan.from_json("{not json")
    with pytest.raises(kb.InvalidPlanError, match="format"):
        kb.PruningPlan.from_json('{"keep": {}}')


def test_bad_model_is_rejected_by_apply_plan():
    with pytest.raises(kb.UnsupportedModelError):
        kb.apply_plan(keras.layers.Dense(2), None)


def test_lower_level_masks_round_trip_through_json(graph):
    plan = kb.PruningPlan.random(graph, ratio=0.3, seed=5, input_ratio=0.5, kernel_ratio=0.5)
    assert plan.inputs and plan.kernels
    again = kb.PruningPlan.from_json(plan.to_json())
    assert again == plan
    for path, mask in plan.kernels.items():
        np.testing.assert_array_equal(again.kernels[path], mask)
    again.validate(graph)


def _mixing_path(graph):
    return next(r.path for r in graph.records if isinstance(r.op, keras.layers.Conv2D)
                and r.inputs[0] is not None)


def test_bad_lower_level_masks_are_rejected(graph):
    conv = _mixing_path(graph)
    n_in, n_out = graph.record(conv).op.kernel.shape[-2:]
    bn = next(r.path for r in graph.records if isinstance(r.op, keras.layers.BatchNormalization))
    cases = [
        (kb.PruningPlan(inputs={"nope": [0]}), kb.PlanMismatchError, "does not have"),
        (kb.PruningPlan(inputs={bn: [0]}), kb.InvalidPlanError, "mix traced input channels"),
        (kb.PruningPlan(inputs={conv: [n_in]}), kb.InvalidPlanError, f"below {n_in}"),
        (kb.PruningPlan(kernels={conv: np.ones((n_in + 1, n_out), bool)}),
         kb.InvalidPlanError, "shape"),
    ]
    for plan, error, match in cases:
        with pytest.raises(error, match=match):
            plan.validate(graph)
    with pytest.raises(kb.InvalidPlanError, match="2-D bool mask"):
        kb.PruningPlan(kernels={conv: np.ones(3)})


def test_input_mask_must_leave_a_channel_the_group_keeps(graph):
    conv = _mixing_path(graph)
    labels = graph.record(conv).inputs[0].labels
    group = graph.groups[graph.atom_group[labels[0]]]
    position = graph.atom_position[labels[0]]
    keep = [p for p in range(group.size) if p != position]
    plan = kb.PruningPlan({group.id: keep}, inputs={conv: [0]})
    with pytest.raises(kb.InvalidPlanError, match="no input channel"):
        plan.validate(graph)
