"""Two plans in turn written as one plan of the original model (staged pruning)."""

import numpy as np
import pytest
import zoo

import keras_biprune as kb
from keras_biprune.errors import InvalidPlanError
from keras_biprune.plan import compose


@pytest.mark.parametrize("build", [zoo.plain_chain, zoo.residual, zoo.depthwise_separable,
                                   zoo.flatten_dense])
def test_the_composed_plan_builds_the_model_of_both_plans_in_turn(build):
    model = build()
    graph = kb.trace(model)
    first = kb.PruningPlan.random(graph, 0.3, seed=1)
    middle = kb.apply_plan(model, first)
    second = kb.PruningPlan.random(kb.trace(middle), 0.4, seed=2, input_ratio=0.3,
                                   kernel_ratio=0.2)
    both = compose(graph, first, second)
    in_turn, at_once = kb.apply_plan(middle, second), kb.apply_plan(model, both)
    assert both.signature == graph.signature
    assert [w.shape for w in at_once.weights] == [w.shape for w in in_turn.weights]
    for a, b in zip(at_once.get_weights(), in_turn.get_weights()):
        np.testing.assert_array_equal(a, b)
    x = zoo.sample_input(model)
    np.testing.assert_allclose(at_once.predict(x, verbose=0), in_turn.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-5)


def test_a_first_plan_with_lower_level_masks_is_refused():
    model = zoo.plain_chain()
    graph = kb.trace(model)
    first = kb.PruningPlan.random(graph, 0.3, seed=1, input_ratio=0.3)
    with pytest.raises(InvalidPlanError, match="removes filters only.*PruningPlan\\(plan.keep\\)"):
        compose(graph, first, kb.PruningPlan({}))
