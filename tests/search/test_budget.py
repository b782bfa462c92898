"""The budget is hit: every repaired plan lands in [target - BAND, target], whatever the steps."""

import keras
import numpy as np
import pytest

import keras_biprune as kb
from keras_biprune.search import Budget, SearchError, UpperEncoding
from keras_biprune.search.space import BAND, group_step


def _chain(widths, name):
    x = inputs = keras.Input((12, 12, 3))
    for i, width in enumerate(widths):
        x = keras.layers.Conv2D(width, 3, padding="same", name=f"conv{i}")(x)
        x = keras.layers.ReLU()(keras.layers.BatchNormalization()(x))
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(10)(x), name=name)


CHAINS = {"narrow": [4, 8, 12, 16], "mixed": [16, 16, 32, 64], "wide": [24, 48, 64, 64],
          "odd": [6, 10, 20, 40]}


@pytest.fixture(scope="module", params=sorted(CHAINS))
def graph_and_scores(request):
    model = _chain(CHAINS[request.param], request.param)
    graph = kb.trace(model)
    return graph, kb.criteria.scores(graph, model, "l1")


@pytest.mark.parametrize("round_to", [1, 8, 16])
@pytest.mark.parametrize("kind", ["width", "mask"])
def test_repaired_plans_land_in_the_band_whatever_round_to(graph_and_scores, round_to, kind):
    graph, scores = graph_and_scores
    encoding = UpperEncoding(graph, scores, kind, round_to=round_to)
    rng = np.random.default_rng(0)
    genomes = [encoding.full()] + [np.array([rng.choice(space) for space in encoding.gene_space])
                                   for _ in range(3)]
    for target in (0.3, 0.5, 0.7):
        budget = Budget(graph, target)
        for genome in genomes:
            ratio = budget.ratio(encoding.decode(genome, budget))
            assert target - BAND <= ratio <= target, (target, ratio)


def test_narrow_groups_count_in_smaller_steps():
    assert [group_step(size, 8) for size in (4, 8, 12, 16, 24, 32, 64)] == [1, 2, 4, 4, 8, 8, 8]
    assert [group_step(size, 16) for size in (16, 32, 48, 64)] == [4, 8, 16, 16]
    assert group_step(12, 1) == 1


def test_steps_are_kept_where_they_reach_the_band():
    graph_model = _chain([32, 64, 64, 64], "steps")
    graph = kb.trace(graph_model)
    encoding = UpperEncoding(graph, kb.criteria.scores(graph, graph_model, "l1"), "width",
                             round_to=8)
    budget = Budget(graph, 0.5)
    plan = encoding.decode(encoding.full(), budget)
    assert 0.5 - BAND <= budget.ratio(plan) <= 0.5
    assert all(len(kept) % 8 == 0 for kept in plan.keep.values()), plan.keep


def test_floor_ratio_is_the_plan_with_every_group_at_its_floor():
    model = _chain([16, 32], "floors")
    graph = kb.trace(model)
    scores = kb.criteria.scores(graph, model, "l1")
    encoding = UpperEncoding(graph, scores, "width", round_to=1, max_prune_ratio=0.5)
    floors = kb.PruningPlan({"conv0": range(8), "conv1": range(16)}, signature=graph.signature)
    budget = Budget(graph, 0.5)
    assert budget.floor_ratio(encoding) == pytest.approx(budget.ratio(floors))


def test_an_unreachable_target_is_refused_before_the_search():
    model = _chain([16, 32], "unreachable")
    x = np.random.default_rng(0).normal(size=(64, 12, 12, 3)).astype("float32")
    y = np.arange(64) % 10
    evaluator = kb.Evaluator(model, (x, y), eval_size=32, calibration_size=16)
    calls = []
    evaluator.evaluate = lambda plans: calls.append(plans)
    search = kb.search.BiLevelSearch(evaluator, target=0.1, max_accuracy_drop=None,
                                     max_prune_ratio=0.5, verbose=0)
    with pytest.raises(SearchError, match=r"floors keep at least 0\.2\d\d.*target=0\.1") as info:
        search.run()
    assert "max_prune_ratio" in str(info.value)
    assert calls == []
