"""The population evaluator: exact against apply_plan, adaptive BN, data forms, bad input."""

import importlib.util

import keras
import numpy as np
import pytest
from backends import ENGINES, ON_TENSORFLOW
from zoo import ZOO, randomize_weights, sample_input

import keras_biprune as kb

SINGLE_OUTPUT = sorted(name for name in ZOO if name != "multi_io")
SLICED = ["conv1d", "flatten_dense", "inception", "nested", "plain_chain", "residual",
          "shared_layer"]


def _regression_data(model, n=24, seed=0):
    x = sample_input(model, n=n)
    y = np.random.default_rng(seed).normal(size=(n,) + tuple(model.output_shape[1:]))
    return x, y.astype("float32")


def _reference(model, plan, x, y, metric="mse"):
    slim = kb.apply_plan(model, plan)
    slim.compile(loss="mse", metrics=[metric])
    return slim.evaluate(x, y, verbose=0, return_dict=True)[metric]


@pytest.mark.parametrize(
    "name,engine",
    [(name, "batched") for name in SINGLE_OUTPUT] + [(name, "sliced") for name in SLICED],
)
def test_score_equals_apply_plan_then_evaluate(name, engine):
    model = ZOO[name]()
    evaluator = kb.Evaluator(model, _regression_data(model), metric="mse", batch_size=8,
                             eval_size=16, calibration_size=8, adaptive_bn=False,
                             max_parallel=3, engine=engine)
    assert evaluator.engine == engine
    graph = evaluator.graph
    plans = [
        kb.PruningPlan.random(graph, 0.5, seed=0),
        kb.PruningPlan.random(graph, 0.3, seed=1, input_ratio=0.4),
        kb.PruningPlan.random(graph, 0.3, seed=2, kernel_ratio=0.4),
        kb.PruningPlan.keep_all(graph),
    ]
    scores = evaluator.evaluate(plans)
    x = evaluator.x_eval[0]
    expected = [_reference(model, p, x, evaluator.y_eval) for p in plans]
    np.testing.assert_allclose(scores, expected, rtol=2e-4, atol=1e-6)
    assert evaluator.n_evaluations == 4
    if any(p.keep for p in plans[:3]):
        assert len(set(np.round(scores, 6))) > 1


@pytest.mark.backends
@pytest.mark.parametrize("engine", ["batched", "sliced"])
def test_adaptive_bn_equals_slim_model_with_recomputed_statistics(engine):
    model = ZOO["plain_chain"]()  # conv-BN-ReLU twice, BN statistics randomized
    x, y = _regression_data(model, n=40)
    evaluator = kb.Evaluator(model, (x, y), metric="mse", batch_size=8, eval_size=24,
                             calibration_size=16, max_parallel=2, engine=engine)
    plan = kb.PruningPlan.random(evaluator.graph, 0.5, seed=3)
    score = evaluator.evaluate_one(plan)

    slim = kb.apply_plan(model, plan)
    bns = [layer for layer in slim.layers if isinstance(layer, keras.layers.BatchNormalization)]
    taps = keras.Model(slim.inputs, [bn.input for bn in bns])
    calibration = evaluator.x_calibration[0]
    for bn, value in zip(bns, taps([calibration], training=True)):
        value = keras.ops.convert_to_numpy(value)
        gamma, beta = bn.get_weights()[:2]
        bn.set_weights([gamma, beta, value.mean(axis=(0, 1, 2)), value.var(axis=(0, 1, 2))])
    slim.compile(loss="mse", metrics=["mse"])
    expected = slim.evaluate(evaluator.x_eval[0], evaluator.y_eval, verbose=0,
                             return_dict=True)["mse"]
    np.testing.assert_allclose(score, expected, rtol=2e-4)
    plain = kb.Evaluator(model, (x, y), metric="mse", batch_size=8, eval_size=24,
                         calibration_size=16, adaptive_bn=False)
    assert not np.isclose(plain.evaluate_one(plan), score, rtol=1e-3)


@pytest.mark.tensorflow
@pytest.mark.parametrize("adaptive_bn", [False, True])
def test_sliced_engine_traces_once_for_every_width_and_batch_size(adaptive_bn):
    model = ZOO["residual"]()
    x, y = _regression_data(model, n=44)
    evaluator = kb.Evaluator(model, (x, y), metric="mse", batch_size=8, eval_size=28,
                             calibration_size=16, adaptive_bn=adaptive_bn, engine="sliced")
    sliced = evaluator._engine
    traces = []
    run = sliced._run
    sliced._run = lambda *args: traces.append(1) or run(*args)
    graph = evaluator.graph
    plans = [kb.PruningPlan.random(graph, ratio, seed=s)
             for s, ratio in enumerate((0.2, 0.5, 0.7, 0.9))]
    plans.append(kb.PruningPlan.keep_all(graph))
    scores = evaluator.evaluate(plans)  # batches of 8 images, calibration of 16
    scores = np.append(scores, evaluator.evaluate(plans[:2]))
    assert len(traces) == (2 if adaptive_bn else 1)
    assert np.isfinite(scores).all() and len(set(np.round(scores, 6))) > 2
    np.testing.assert_allclose(scores[5:], scores[:2], rtol=1e-6)


@pytest.mark.backends
def test_both_engines_score_the_model_weights_of_the_time_of_the_call():
    model = ZOO["plain_chain"]()
    data = _regression_data(model, n=40)
    evaluators = [kb.Evaluator(model, data, metric="mse", batch_size=8, eval_size=24,
                               calibration_size=16, engine=engine)
                  for engine in ENGINES]
    plan = kb.PruningPlan.random(evaluators[0].graph, 0.5, seed=0)
    before = [e.evaluate_one(plan) for e in evaluators]
    randomize_weights(model, seed=1)
    after = [e.evaluate_one(plan) for e in evaluators]
    np.testing.assert_allclose(before, before[0], rtol=2e-4)
    np.testing.assert_allclose(after, after[0], rtol=2e-4)
    assert not np.isclose(after[0], before[0], rtol=1e-3)


def test_auto_engine_falls_back_to_batched_for_unsupported_layers():
    data = _regression_data(ZOO["plain_chain"](), n=8)
    assert kb.Evaluator(ZOO["plain_chain"](), data, metric="mse").engine == ENGINES[-1]
    model = ZOO["squeeze_excitation"]()
    data = _regression_data(model, n=8)
    assert kb.Evaluator(model, data, metric="mse").engine == "batched"
    reason = "Reshape" if ON_TENSORFLOW else "needs the TensorFlow backend"
    with pytest.raises(kb.errors.EvaluationError, match=reason):
        kb.Evaluator(model, data, metric="mse", engine="sliced")
    with pytest.raises(kb.errors.EvaluationError, match="engine must be"):
        kb.Evaluator(model, data, metric="mse", engine="fast")


def test_subsets_are_reproducible_and_disjoint():
    model = ZOO["plain_chain"]()
    x, y = _regression_data(model, n=60)
    a = kb.Evaluator(model, (x, y), eval_size=20, calibration_size=10, random_state=1)
    b = kb.Evaluator(model, (x, y), eval_size=20, calibration_size=10, random_state=1)
    c = kb.Evaluator(model, (x, y), eval_size=20, calibration_size=10, random_state=2)
    np.testing.assert_array_equal(a.x_eval[0], b.x_eval[0])
    assert not np.array_equal(a.x_eval[0], c.x_eval[0])
    flat = lambda arr: {row.tobytes() for row in arr}
    assert not flat(a.x_eval[0]) & flat(a.x_calibration[0])
    assert len(a.y_eval) == 20 and len(a.x_calibration[0]) == 10


def test_dataset_and_py_dataset_give_the_array_scores():
    model = ZOO["residual"]()
    x, y = _regression_data(model, n=16)

    class Batches(keras.utils.PyDataset):
        def __len__(self):
            return 2

        def __getitem__(self, i):
            return x[i * 8:(i + 1) * 8], y[i * 8:(i + 1) * 8]

    plan = kb.PruningPlan.random(kb.trace(model), 0.5, seed=0)
    scores = []
    forms = [(x, y), Batches()]
    if importlib.util.find_spec("tensorflow"):   # tf.data works on every backend with TF installed
        import tensorflow as tf

        forms.append(tf.data.Dataset.from_tensor_slices((x, y)).batch(8))
    for data in forms:
        evaluator = kb.Evaluator(model, data, eval_size=16, calibration_size=4, metric="mse",
                                 adaptive_bn=False)
        scores.append(evaluator.evaluate_one(plan))
    np.testing.assert_allclose(scores, scores[0], rtol=1e-5)


def test_metrics_as_name_instance_and_callable_agree():
    model = ZOO["plain_chain"]()
    x = sample_input(model, n=20)
    y = np.arange(20) % model.output_shape[-1]
    plan = kb.PruningPlan.random(kb.trace(model), 0.5, seed=0)
    settings = {"eval_size": 20, "calibration_size": 4, "adaptive_bn": False}
    by_name = kb.Evaluator(model, (x, y), metric="accuracy", **settings)
    instance = kb.Evaluator(model, (x, y), metric=keras.metrics.SparseCategoricalAccuracy(),
                            **settings)
    function = kb.Evaluator(
        model, (x, y), **settings,
        metric=lambda t, p: np.mean(np.argmax(p, -1) == t),
    )
    scores = [e.evaluate_one(plan) for e in (by_name, instance, function)]
    np.testing.assert_allclose(scores, scores[0])
    assert by_name.greater_is_better
    assert not kb.Evaluator(model, (x, y), metric="mse", **settings).greater_is_better


@pytest.mark.parametrize("kind", ["sparse", "sparse_column", "categorical", "binary",
                                  "binary_flat", "binary_soft"])
def test_accuracy_by_name_equals_the_keras_metric(kind):
    from keras_biprune.evaluate.metric import resolve_metric

    rng = np.random.default_rng(0)
    n, classes = 50, 1 if kind.startswith("binary") else 4
    y_pred = rng.random((n, classes)).astype("float32")
    y_pred[:3] = y_pred[:3, :1]                                    # ties in argmax
    labels = rng.integers(0, max(classes, 2), n)
    y_true, keras_metric = {
        "sparse": lambda: (labels, keras.metrics.SparseCategoricalAccuracy()),
        "sparse_column": lambda: (labels[:, None].astype("float32"),
                                  keras.metrics.SparseCategoricalAccuracy()),
        "categorical": lambda: (np.eye(classes)[labels], keras.metrics.CategoricalAccuracy()),
        "binary": lambda: (labels[:, None].astype("float32"), keras.metrics.BinaryAccuracy()),
        "binary_flat": lambda: (labels.astype("float32"), keras.metrics.BinaryAccuracy()),
        "binary_soft": lambda: (rng.choice([0.0, 0.3, 1.0], n).astype("float32"),
                                keras.metrics.BinaryAccuracy()),
    }[kind]()
    score, name = resolve_metric("accuracy", y_true, (None, classes))
    keras_metric.update_state(y_true.reshape(n, -1) if kind == "binary_flat" else y_true, y_pred)
    assert name == keras_metric.name
    assert score(y_true, y_pred) == pytest.approx(float(keras_metric.result()), abs=1e-6)


def test_a_metric_instance_is_not_changed_by_scoring():
    model = ZOO["plain_chain"]()
    x = sample_input(model, n=20)
    y = np.arange(20) % model.output_shape[-1]
    metric = keras.metrics.SparseCategoricalAccuracy()
    metric.update_state(y, np.eye(model.output_shape[-1])[y])
    evaluator = kb.Evaluator(model, (x, y), metric=metric, eval_size=20, calibration_size=4)
    evaluator.evaluate([kb.PruningPlan.random(evaluator.graph, 0.5, seed=s) for s in range(3)])
    assert float(metric.result()) == 1.0 and float(metric.count) == 20


@pytest.mark.backends
def test_nan_candidate_gets_the_worst_score():
    model = ZOO["plain_chain"]()
    x, y = _regression_data(model, n=12)
    graph = kb.trace(model)
    for greater, worst in ((True, -np.inf), (False, np.inf)):
        evaluator = kb.Evaluator(
            model, (x, y), eval_size=12, calibration_size=4, adaptive_bn=False,
            greater_is_better=greater,
            metric=lambda t, p: np.nan if p[0, 0] != 0 else 1.0,
        )
        scores = evaluator.evaluate([kb.PruningPlan.random(graph, 0.5, seed=0)])
        assert scores[0] == worst


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        ({"data": (np.zeros((0, 12, 12, 3)), np.zeros((0,)))}, kb.errors.DataError, "no batch"),
        ({"data": (np.zeros((4, 5, 5, 3)), np.zeros(4))}, kb.errors.DataError, "shape"),
        ({"metric": "no_such_metric"}, kb.errors.EvaluationError, "Unknown metric"),
        ({"metric": 42}, kb.errors.EvaluationError, "metric must be"),
        ({"batch_size": 0}, kb.errors.EvaluationError, "positive int"),
        ({"data": np.zeros((4, 12, 12, 3))}, kb.errors.DataError, "targets"),
    ],
)
def test_bad_input_is_rejected_clearly(kwargs, error, match):
    model = ZOO["plain_chain"]()
    arguments = {"data": _regression_data(model, n=8), "metric": "mse"}
    arguments.update(kwargs)
    with pytest.raises(error, match=match) as info:
        kb.Evaluator(model, **arguments)
    assert "Received" in str(info.value)


def test_bad_populations_are_rejected_clearly():
    model = ZOO["plain_chain"]()
    evaluator = kb.Evaluator(model, _regression_data(model, n=8), metric="mse")
    with pytest.raises(kb.errors.EvaluationError, match="P = 0"):
        evaluator.evaluate([])
    with pytest.raises(kb.errors.EvaluationError, match="evaluate_one"):
        evaluator.evaluate(kb.PruningPlan())
    with pytest.raises(kb.InvalidPlanError, match="plans\\[1\\]"):
        evaluator.evaluate([kb.PruningPlan(), {"conv": [0]}])
    with pytest.raises(kb.errors.EvaluationError, match="one output"):
        kb.Evaluator(ZOO["multi_io"](), _regression_data(model, n=8))


@pytest.mark.parametrize("bn", [True, False])
def test_the_calibration_warning_only_where_batch_norm_is_calibrated(bn, caplog):
    inputs = keras.Input((6, 6, 1))
    x = keras.layers.Conv2D(4, 3)(inputs)
    if bn:
        x = keras.layers.BatchNormalization()(x)
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.ReLU()(x))
    model = keras.Model(inputs, keras.layers.Dense(3)(x))
    data = (np.zeros((16, 6, 6, 1), "float32"), np.arange(16) % 3)
    with caplog.at_level("WARNING", logger="keras_biprune.evaluate.evaluator"):
        kb.Evaluator(model, data, eval_size=32, calibration_size=8)
    assert ("calibrates batch norm on its evaluation samples" in caplog.text) is bn
