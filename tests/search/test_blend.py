"""Blended criteria: rank blending, clustering by Spearman correlation, PyGAD calibration."""

import keras
import numpy as np
import pytest
from scipy.stats import rankdata, spearmanr
from zoo import ZOO, sample_input

import keras_biprune as kb
from keras_biprune.criteria import (
    FPGM,
    L1,
    L2,
    BlendedCriterion,
    CriterionError,
    Random,
    cluster_criteria,
)
from keras_biprune.criteria.blend import normalized_ranks
from keras_biprune.search import calibrate_blend

KEEP = 0.5


@pytest.fixture(scope="module")
def setup():
    """plain_chain (groups of 8, 12, 16 channels), an MSE evaluator against its own outputs."""
    model = ZOO["plain_chain"]()
    x = sample_input(model, n=40)
    y = model.predict(x, verbose=0)
    evaluator = kb.Evaluator(model, (x, y), metric="mse", batch_size=24, eval_size=24,
                             calibration_size=16, adaptive_bn=False)
    return model, evaluator.graph, evaluator


def ranks(values):
    return (rankdata(values) - 1) / (len(values) - 1)


def test_one_hot_blend_ranks_like_its_criterion_and_equal_weights_average(setup):
    model, graph, _ = setup
    l1, random = kb.criteria.scores(graph, model, "l1"), kb.criteria.scores(graph, model, Random(0))
    one_hot = BlendedCriterion(["l1", Random(seed=0)], weights=[1.0, 0.0])
    for group_id, scores in kb.criteria.scores(graph, model, one_hot).items():
        np.testing.assert_allclose(scores, ranks(l1[group_id]))
    assert (kb.criteria.select(graph, model, KEEP, one_hot).keep
            == kb.criteria.select(graph, model, KEEP, "l1").keep)

    equal = BlendedCriterion(["l1", Random(seed=0)])
    blended = kb.criteria.scores(graph, model, equal)
    for group_id, scores in blended.items():
        np.testing.assert_allclose(scores, (ranks(l1[group_id]) + ranks(random[group_id])) / 2)
    plan = kb.criteria.plan_from_scores(graph, blended, KEEP)
    assert plan.keep != kb.criteria.select(graph, model, KEEP, "l1").keep
    assert plan.keep != kb.criteria.select(graph, model, KEEP, Random(seed=0)).keep


def test_per_group_weights_and_ties_share_their_rank(setup):
    model, graph, _ = setup
    first = graph.prunable_groups[0].id
    blend = BlendedCriterion(["l1", "fpgm"], weights={first: [0.0, 2.0]})
    fpgm, l1 = (kb.criteria.scores(graph, model, name) for name in ("fpgm", "l1"))
    got = kb.criteria.scores(graph, model, blend)
    np.testing.assert_allclose(got[first], ranks(fpgm[first]))
    other = graph.prunable_groups[1].id  # not listed: equal weights
    np.testing.assert_allclose(got[other], (ranks(l1[other]) + ranks(fpgm[other])) / 2)
    np.testing.assert_allclose(normalized_ranks([3.0, 1.0, 3.0, 2.0]), [5 / 6, 0, 5 / 6, 1 / 3])


def test_clusters_join_agreeing_criteria_and_keep_random_apart(setup):
    model, graph, _ = setup
    criteria = [L1(), "l1", Random(seed=0)]
    found = cluster_criteria(graph, model, criteria, threshold=0.8)
    l1 = kb.criteria.scores(graph, model, "l1")
    random = kb.criteria.scores(graph, model, Random(seed=0))
    apart = 0
    for group in graph.prunable_groups:
        # Random scores depend on the group id, an automatic layer name that
        # depends on what the process built before: by chance they can agree.
        expected = spearmanr(l1[group.id], random[group.id]).statistic
        np.testing.assert_allclose(found.correlations[group.id][0, 2], expected)
        if expected < 0.8:
            apart += 1
            assert found.clusters[group.id] == [[0, 1], [2]]
            assert found.representatives[group.id] == [0, 2]
        else:
            assert found.clusters[group.id] == [[0, 1, 2]]
    assert apart >= 2
    assert found.criteria[2] == Random(seed=0)


def test_constant_scores_correlate_with_constant_scores_only():
    inputs = keras.Input((6, 6, 2))
    x = keras.layers.Conv2D(4, 3, name="flat")(inputs)
    x = keras.layers.Conv2D(3, 3, name="c2")(keras.layers.ReLU()(x))
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x), name="flat_model")
    model.get_layer("flat").kernel.assign(np.ones((3, 3, 2, 4), "float32"))
    graph = kb.trace(model)
    found = cluster_criteria(graph, model, ["l1", "l2", Random(seed=0)])
    assert found.clusters["flat"] == [[0, 1], [2]]
    np.testing.assert_array_equal(found.correlations["flat"], [[1, 1, 0], [1, 1, 0], [0, 0, 1]])


def test_calibrated_blend_beats_every_seed_and_is_reproducible(setup, capsys, monkeypatch):
    model, graph, evaluator = setup
    criteria = [L1(), FPGM(), Random(seed=1)]
    seed_scores = evaluator.evaluate([kb.criteria.select(graph, model, KEEP, c) for c in criteria])
    before, batches, evaluate = evaluator.n_evaluations, [], evaluator.evaluate
    monkeypatch.setattr(evaluator, "evaluate", lambda plans: batches.append(len(plans))
                        or evaluate(plans))
    blend = calibrate_blend(evaluator, model, criteria, keep=KEEP, threshold=1.0,
                            population_size=6, generations=3, random_state=0)
    monkeypatch.undo()
    assert len(batches) == 4 and batches[0] == 6  # one call per population
    assert blend.score_ <= seed_scores.min() + 1e-7  # mse: lower is better
    np.testing.assert_allclose(
        evaluator.evaluate([kb.criteria.select(graph, model, KEEP, blend)]), [blend.score_],
        rtol=1e-6)
    assert [h["generation"] for h in blend.history_] == [1, 2, 3]
    used = blend.history_[-1]["evaluations"]
    assert used == evaluator.n_evaluations - before - 1 == sum(batches)
    assert all(h["best"] <= h["mean"] for h in blend.history_)
    # threshold 1: every criterion represents itself in every group
    assert all(reps == criteria for reps in blend.representatives_.values())

    again = calibrate_blend(evaluator, model, criteria, keep=KEEP, threshold=1.0,
                            population_size=6, generations=3, random_state=0, verbose=1)
    assert again == blend and again.score_ == blend.score_
    assert "best" in capsys.readouterr().out


def test_identical_criteria_leave_no_weights_to_search(setup):
    model, graph, evaluator = setup
    first = graph.prunable_groups[0].id
    blend = calibrate_blend(evaluator, model, ["l2", L2()], keep={first: 4}, generations=2)
    assert blend.criteria == [L2()] and blend.history_ == []
    assert blend.representatives_ == {first: [L2()]}
    assert kb.criteria.select(graph, model, {first: 4}, blend) == kb.criteria.select(
        graph, model, {first: 4}, "l2")


def test_config_round_trip(setup):
    model, graph, _ = setup
    first = graph.prunable_groups[0].id
    blends = [
        BlendedCriterion(["l1", FPGM(), Random(seed=3)], weights=[0.2, 0.5, 0.3]),
        BlendedCriterion(["l2", "fpgm"], weights={first: [1.0, 0.0]}),
        BlendedCriterion([BlendedCriterion(["l1", "l2"]), "fpgm"]),
    ]
    for blend in blends:
        config = blend.get_config()
        rebuilt = BlendedCriterion.from_config(config)
        assert rebuilt == blend and rebuilt.get_config() == config
        assert kb.criteria.get(rebuilt) is rebuilt
        assert kb.criteria.get(kb.criteria.serialize(blend)) == blend      # by name, "blend"
        np.testing.assert_array_equal(rebuilt(graph, first, model), blend(graph, first, model))
    assert BlendedCriterion(["apoz", "l1"]).requires_data
    assert not blends[0].requires_data


@pytest.mark.parametrize("kwargs,match", [
    ({"criteria": []}, "non-empty list"),
    ({"criteria": "l1"}, "non-empty list"),
    ({"criteria": ["l1", "nope"]}, "Unknown criterion"),
    ({"criteria": ["l1", "apoz"]}, r"\['apoz'\] run the model on data"),
    ({"keep": 1.5}, "cannot keep channels"),
    ({"population_size": 1}, "population_size"),
    ({"generations": 0}, "generations"),
    ({"threshold": 2.0}, "threshold"),
])
def test_bad_input_raises(setup, kwargs, match):
    model, _, evaluator = setup
    kwargs = {"criteria": ["l1", "fpgm"], **kwargs}
    with pytest.raises(CriterionError, match=match):
        calibrate_blend(evaluator, model, **kwargs)


def test_bad_weights_raise():
    with pytest.raises(CriterionError, match="one non-negative finite weight per criterion"):
        BlendedCriterion(["l1", "l2"], weights=[1.0])
    with pytest.raises(CriterionError, match=r"weights\['conv2d'\]"):
        BlendedCriterion(["l1", "l2"], weights={"conv2d": [1.0, -1.0]})
