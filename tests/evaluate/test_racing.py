"""Racing in the evaluator: finishers exact, the best unchanged, fewer images, clear errors."""

import numpy as np
import pytest
from zoo import ZOO, sample_input

import keras_biprune as kb
from keras_biprune.evaluate.racing import Racing, settle

SETTINGS = {"batch_size": 8, "eval_size": 64, "calibration_size": 16, "max_parallel": 3}


def _self_labelled(model, metric, n=80):
    """Inputs and the unpruned model's own outputs as targets: keep-all is clearly best."""
    x = sample_input(model, n=n)
    y = np.asarray(model.predict(x, verbose=0))
    return x, (y.argmax(-1) if metric == "accuracy" else y)


@pytest.mark.parametrize("engine,metric,adaptive_bn", [
    ("sliced", "mse", True), ("batched", "mse", True), ("sliced", "accuracy", False),
])
def test_finishers_are_exact_and_the_best_is_unchanged(engine, metric, adaptive_bn):
    model = ZOO["plain_chain"]()
    data = _self_labelled(model, metric)
    exact = kb.Evaluator(model, data, metric=metric, engine=engine, adaptive_bn=adaptive_bn,
                         **SETTINGS)
    # Without the screen (tested below) the stages are the same with adaptive BN.
    raced = kb.Evaluator(model, data, metric=metric, engine=engine, adaptive_bn=adaptive_bn,
                         racing=Racing(8, 0.5, screen=False), **SETTINGS)
    graph = exact.graph
    plans = [kb.PruningPlan.random(graph, 0.4 + 0.05 * s, seed=s) for s in range(7)]
    plans.insert(3, kb.PruningPlan.keep_all(graph))
    expected, got = exact.evaluate(plans), raced.evaluate(plans)

    race = raced.last_race
    finished = race["finished"]
    assert 3 in finished and 1 <= len(finished) < len(plans)
    np.testing.assert_allclose(got[finished], expected[finished], rtol=1e-6)
    sign = 1.0 if exact.greater_is_better else -1.0
    assert np.argmax(sign * got) == np.argmax(sign * expected) == 3
    eliminated = np.setdiff1d(np.arange(len(plans)), finished)
    assert (sign * got[eliminated]).max() < (sign * got[finished]).min()

    # Stages: 8, 16, 32, 64 images; half of the candidates stay each time.
    assert [(s["images"], s["candidates"]) for s in race["stages"]] == [
        (8, 8), (16, 4), (32, 2), (64, 1)]
    assert race["images_scored"] == 8 * 8 + 4 * 8 + 2 * 16 + 1 * 32 == raced.n_images_scored
    assert race["images_exact"] == exact.n_images_scored == 8 * 64
    # A single candidate skips to the whole subset: the baseline is exact.
    assert raced.baseline == pytest.approx(exact.baseline, rel=1e-6)
    assert raced.last_race["images_scored"] == 64


@pytest.mark.parametrize("engine", ["sliced", "batched"])
def test_the_screen_keeps_the_best_on_the_calibration_samples(engine):
    model = ZOO["plain_chain"]()  # conv-BN-ReLU twice: adaptive BN calibrates
    data = _self_labelled(model, "mse")
    exact = kb.Evaluator(model, data, metric="mse", engine=engine, **SETTINGS)
    raced = kb.Evaluator(model, data, metric="mse", engine=engine, racing=(8, 0.5), **SETTINGS)
    plans = [kb.PruningPlan.random(raced.graph, 0.2 + 0.07 * s, seed=s) for s in range(7)]
    scores = raced.evaluate(plans)

    # Each plan's score on the calibration samples, the slow way: its slim
    # model with batch norm recalibrated on them.
    x, y = raced.x_calibration[0], raced.y_calibration
    on_calibration = []
    for plan in plans:
        slim = kb.apply_plan(model, plan)
        kb.training.recalibrate_batch_norm(slim, x, max_batches=1, batch_size=len(x))
        on_calibration.append(np.mean((np.asarray(slim.predict(x, verbose=0)) - y) ** 2))
    on_calibration = np.array(on_calibration)
    kept = sorted(np.argsort(on_calibration)[:4].tolist())  # lower mse is better
    race = raced.last_race
    assert race["screen"] == {"images": 16, "candidates": 7, "kept": kept}
    # The 4 kept race on 8, 16 then (one left) all 64 evaluation images.
    assert [(s["images"], s["candidates"]) for s in race["stages"]] == [(8, 4), (16, 2), (64, 1)]
    assert race["images_scored"] == 4 * 8 + 2 * 8 + 1 * 48 == raced.n_images_scored
    finished = race["finished"]
    np.testing.assert_allclose(scores[finished], exact.evaluate(plans)[finished], rtol=1e-6)
    # A screened-out plan scores its calibration mse, never better than a kept one's.
    worst_kept = scores[kept].max()
    for i in sorted(set(range(7)) - set(kept)):
        assert scores[i] > worst_kept
        assert scores[i] == pytest.approx(max(on_calibration[i], worst_kept), rel=1e-4)
    # No batch norm calibrated, no screen.
    plain = kb.Evaluator(model, data, metric="mse", engine=engine, adaptive_bn=False,
                         racing=(8, 0.5), **SETTINGS)
    plain.evaluate(plans)
    assert plain.last_race["screen"] is None and plain.last_race["stages"][0]["candidates"] == 7


def test_eliminated_candidates_never_outscore_a_finisher():
    # A summed error grows with the images seen: a partial score looks better
    # than any full one, and only the settling rule keeps the finishers on top.
    model = ZOO["residual"]()
    data = _self_labelled(model, "mse")
    evaluator = kb.Evaluator(model, data, metric=lambda t, p: -np.sum((t - p) ** 2),
                             greater_is_better=True, racing=(8, 0.5, 4), engine="auto",
                             **SETTINGS)
    plans = [kb.PruningPlan.random(evaluator.graph, 0.3, seed=s) for s in range(6)]
    scores = evaluator.evaluate(plans)
    finished = evaluator.last_race["finished"]
    assert [s["images"] for s in evaluator.last_race["stages"]] == [8, 32, 64]
    eliminated = np.setdiff1d(np.arange(len(plans)), finished)
    assert scores[eliminated].max() < scores[finished].min()
    assert np.isfinite(scores).all()


def test_nan_candidates_get_the_worst_score_and_stop_at_once():
    model = ZOO["plain_chain"]()
    x, y = _self_labelled(model, "mse")
    first_row = np.asarray(model.predict(x[:1], verbose=0))[0]
    # NaN for the keep-all candidate only (its outputs are the unpruned model's).
    metric = lambda t, p: np.nan if np.allclose(p[0], first_row) else -np.mean((t - p) ** 2)
    graph = kb.trace(model)
    evaluator = kb.Evaluator(model, (x, y), metric=metric, greater_is_better=True,
                             adaptive_bn=False, racing=(8, 0.5), **SETTINGS)
    evaluator.x_eval[0][:1] = x[:1]  # make the first evaluation sample the marked one
    evaluator._eval_batches[0][0][:1] = x[:1]
    plans = [kb.PruningPlan.keep_all(graph)] + [
        kb.PruningPlan.random(graph, 0.4, seed=s) for s in range(3)]
    scores = evaluator.evaluate(plans)
    assert scores[0] == -np.inf and np.isfinite(scores[1:]).all()
    assert 0 not in evaluator.last_race["finished"]
    assert evaluator.last_race["stages"][1]["candidates"] == 2  # of the 3 finite ones
    assert evaluator.evaluate(plans[:1])[0] == -np.inf


def test_schedule_survivors_and_settled_scores():
    assert Racing(256, 0.5).stages(1024, 128) == [2, 4, 8]
    assert Racing(100, 0.25, 3).stages(1000, 128) == [1, 3, 8]
    assert Racing(2000, 0.5).stages(1000, 128) == [8]
    assert [Racing(8, 0.5).survivors(n) for n in (1, 2, 3, 32)] == [1, 1, 2, 16]
    assert Racing(8, 0.1).survivors(5) == 1

    stopped = np.array([0, 0, 1, 1, 2, 0])
    oriented = np.array([0.9, 0.1, 0.5, 0.3, 0.4, -np.inf])
    got = settle(oriented, stopped, 2, np.isfinite(oriented))
    below = lambda v: np.nextafter(v, -np.inf)
    np.testing.assert_array_equal(got, [below(0.3), 0.1, below(0.4), 0.3, 0.4, -np.inf])
    # A finisher with the worst score does not drag the others down.
    oriented[4] = -np.inf
    got = settle(oriented, stopped, 2, np.isfinite(oriented))
    np.testing.assert_array_equal(got[[2, 3, 4]], [0.5, 0.3, -np.inf])


def test_racing_settings_round_trip_and_default_to_exact():
    model = ZOO["plain_chain"]()
    data = _self_labelled(model, "mse", n=16)
    assert kb.Evaluator(model, data, metric="mse").racing is None
    assert kb.Evaluator(model, data, metric="mse", racing=False).racing is None
    assert kb.Evaluator(model, data, metric="mse", racing=True).racing == Racing()
    racing = kb.Evaluator(model, data, metric="mse", racing=(8, 0.25, 3)).racing
    assert racing == Racing(first=8, keep=0.25, growth=3.0, screen=True)
    unscreened = Racing.coerce({"first": 8, "keep": 0.25, "screen": False})
    assert not unscreened.screen and unscreened != Racing(8, 0.25)
    assert Racing.from_config(unscreened.get_config()) == unscreened
    assert Racing.from_config(racing.get_config()) == racing
    assert Racing.coerce(racing.get_config()) == racing
    assert kb.evaluate.Racing is Racing


@pytest.mark.parametrize("racing,match", [
    ((0, 0.5), "first must be a positive int"),
    ((8, 1.0), "keep must be a share"),
    ((8, 0), "keep must be a share"),
    ((8, 0.5, 1), "growth must be a number > 1"),
    ("fast", "racing must be None"),
    ((8,), "racing must be None"),
    ({"first": 8, "kep": 0.5}, "racing must be None"),
    ({"first": 8, "keep": 0.5, "screen": "yes"}, "screen must be True or False"),
])
def test_bad_racing_settings_are_rejected_clearly(racing, match):
    model = ZOO["plain_chain"]()
    with pytest.raises(kb.errors.EvaluationError, match=match) as info:
        kb.Evaluator(model, _self_labelled(model, "mse", n=8), metric="mse", racing=racing)
    assert f"Received: racing={racing!r}" in str(info.value)
    assert "racing=(256, 0.5)" in str(info.value) or "Racing(first=256" in str(info.value)
