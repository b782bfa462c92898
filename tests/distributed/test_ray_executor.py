"""RayExecutor: populations scored on a local Ray cluster this module starts (2 CPUs).

The tests that need Ray skip when it is not installed; `make test` installs it
(the ``test`` extra).
"""

import importlib.util
import pickle
import sys
import threading

import keras
import numpy as np
import pytest

import keras_biprune as kb
from keras_biprune import search
from keras_biprune.distributed import _replica
from keras_biprune.errors import EvaluationError, MissingDependencyError, SearchError
from tests import zoo

needs_ray = pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                               reason="ray is not installed: pip install 'keras-biprune[ray]'")


def _cnn():
    keras.utils.set_random_seed(0)
    return zoo.digits_cnn()


@pytest.fixture(scope="module")
def trained():
    """A small CNN trained briefly on scikit-learn's digits, and held-out data."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.images[..., None] / 16.0).astype("float32")
    y = digits.target
    model = _cnn()
    model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy")
    model.fit(x[:1300], y[:1300], epochs=2, batch_size=32, verbose=0)
    return model, (x[1300:], y[1300:])


SETTINGS = {"eval_size": 128, "calibration_size": 64}


@pytest.fixture(scope="module")
def local(trained):
    model, data = trained
    return kb.Evaluator(model, data, **SETTINGS)


_POOL = {}


@pytest.fixture
def executor():
    """A 2-actor executor on a local 2-CPU cluster, shared by the module's tests
    (started again when a test shut Ray down)."""
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        _POOL.clear()
    if "executor" not in _POOL:
        _POOL["executor"] = kb.distributed.RayExecutor(num_actors=2)
    yield _POOL["executor"]
    _POOL["executor"].faults.clear()


@pytest.fixture(scope="module", autouse=True)
def _shutdown_ray():
    yield
    if "ray" in sys.modules and sys.modules["ray"].is_initialized():
        _POOL.clear()
        sys.modules["ray"].shutdown()


def _plans(graph, count=8):
    return [kb.PruningPlan.random(graph, ratio=0.5, seed=s) for s in range(count)]


_RUN = {"generations": 2, "verbose": 0, "random_state": 0}


def _bilevel(evaluator, **kwargs):
    return search.BiLevelSearch(evaluator, **_RUN | {
        "target": 0.5, "max_accuracy_drop": None, "population_size": 4, "islands": 2,
        "lower_population_size": 3, "lower_generations": 1} | kwargs)


def _nsga2(evaluator, **kwargs):
    return search.NSGA2Search(evaluator, **_RUN | {"max_accuracy_drop": 0.3,
                                                   "population_size": 6} | kwargs)


def _same_result(result, reference):
    assert result.best.plan == reference.best.plan
    assert (result.best.score, result.best.cost) == (reference.best.score, reference.best.cost)
    assert [(s.plan, s.score) for s in result.front] == [(s.plan, s.score)
                                                         for s in reference.front]
    assert [h["best"] for h in result.history] == [h["best"] for h in reference.history]
    assert [h["mean"] for h in result.history] == [h["mean"] for h in reference.history]
    assert result.n_evaluations == reference.n_evaluations


# ------------------------------------------------------------ without Ray
def test_without_ray_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)        # `import ray` raises ImportError
    with pytest.raises(MissingDependencyError, match=r"keras-biprune\[ray\]"):
        kb.distributed.RayExecutor(num_actors=2)


def test_something_that_is_not_an_executor_is_refused(trained):
    model, data = trained
    with pytest.raises(EvaluationError, match="executor must be None.*Received: executor=4"):
        kb.Evaluator(model, data, executor=4, **SETTINGS)
    with pytest.raises(SearchError, match="executor must be None"):
        kb.BiLevelPruner(model, executor="ray").search(search_data=data)


def test_a_replica_scores_as_the_evaluator_it_was_rebuilt_from(trained, local):
    """The worker's side in this process: model bytes and executor state make the same scores."""
    model, _ = trained
    state = pickle.loads(pickle.dumps({"model": _replica.model_bytes(model),
                                       "evaluator": local.executor_state()}))
    replica = _replica.Replica()
    answer = replica.load(state)
    assert answer["engine"] == local.engine and answer["group_size"] == local.group_size
    plans = _plans(local.graph)
    got = replica.score([p.get_config() for p in plans])["scores"]
    np.testing.assert_array_equal(got, local.evaluate(plans))


def test_a_replica_reports_running_out_of_memory_instead_of_failing(trained, local):
    model, _ = trained
    replica = _replica.Replica()
    replica.load({"model": _replica.model_bytes(model), "evaluator": local.executor_state()})

    class ResourceExhaustedError(Exception):                      # as TensorFlow names it
        pass

    for error in (MemoryError("no room"), ResourceExhaustedError("OOM when allocating")):
        def fail(plans, error=error):
            raise error
        replica.evaluator.evaluate = fail
        answer = replica.score([kb.PruningPlan.keep_all(local.graph).get_config()])
        assert "out_of_memory" in answer and type(error).__name__ in answer["out_of_memory"]
    replica.evaluator.evaluate = lambda plans: 1 / 0
    with pytest.raises(ZeroDivisionError):               # other errors are the caller's
        replica.score([kb.PruningPlan.keep_all(local.graph).get_config()])


# ------------------------------------------------------------ on a local cluster
@needs_ray
def test_settings_round_trip_and_are_checked():
    executor = kb.distributed.RayExecutor(num_actors=3, num_gpus=1, max_retries=1)
    again = kb.distributed.RayExecutor.from_config(executor.get_config())
    assert again.get_config() == executor.get_config()
    for bad in ({"num_actors": 0}, {"num_cpus": 0}, {"num_gpus": -1}, {"max_retries": -1},
                {"num_actors": True}):
        with pytest.raises(EvaluationError, match="Received"):
            kb.distributed.RayExecutor(**bad)


@needs_ray
def test_scores_on_ray_equal_the_in_process_scores(trained, local, executor):
    model, data = trained
    evaluator = kb.Evaluator(model, data, executor=executor, **SETTINGS)
    plans = _plans(local.graph, 9)
    np.testing.assert_array_equal(evaluator.evaluate(plans), local.evaluate(plans))
    assert evaluator.baseline == local.baseline
    assert evaluator.n_images_scored == 10 * len(local.y_eval)   # the plans and the baseline
    assert len(executor.actors) == 2 and not executor.faults


@needs_ray
@pytest.mark.parametrize("make", [_bilevel, _nsga2], ids=["bilevel", "nsga2"])
def test_a_search_on_ray_returns_the_in_process_result(trained, local, executor, make):
    model, data = trained
    reference = make(local).run()
    on_ray = make(kb.Evaluator(model, data, executor=executor, **SETTINGS)).run()
    _same_result(on_ray, reference)


@needs_ray
def test_an_actor_killed_mid_generation_has_its_plans_run_again(trained, local, executor,
                                                                monkeypatch):
    import ray

    model, data = trained
    reference = _nsga2(local).run()
    submitted = []
    submit = executor._submit

    def submit_then_kill_the_third(actor, configs):
        reference = submit(actor, configs)
        submitted.append(actor)
        if len(submitted) == 3:
            ray.kill(actor)
        return reference

    monkeypatch.setattr(executor, "_submit", submit_then_kill_the_third)
    on_ray = _nsga2(kb.Evaluator(model, data, executor=executor, **SETTINGS)).run()
    _same_result(on_ray, reference)
    assert [f["kind"] for f in executor.faults] == ["actor died"]
    assert len(executor.actors) == 2 and submitted[2] not in executor.actors


@needs_ray
def test_a_plan_that_runs_out_of_memory_gets_the_worst_score(trained, local, executor,
                                                             monkeypatch, caplog):
    import ray

    model, data = trained
    evaluator = kb.Evaluator(model, data, executor=executor, **SETTINGS)
    plans = _plans(local.graph, 6)
    heavy = plans[4].get_config()
    submit = executor._submit

    def out_of_memory_with_the_heavy_plan(actor, configs):
        if heavy in configs:
            return ray.put({"out_of_memory": "ResourceExhaustedError: OOM when allocating"})
        return submit(actor, configs)

    monkeypatch.setattr(executor, "_submit", out_of_memory_with_the_heavy_plan)
    with caplog.at_level("WARNING", logger="keras_biprune.distributed.ray_executor"):
        scores = evaluator.evaluate(plans)
    expected = local.evaluate(plans)
    expected[4] = -np.inf
    np.testing.assert_array_equal(scores, expected)
    assert [f["kind"] for f in executor.faults] == ["out of memory", "out of memory"]
    assert plans[4].to_json() in caplog.text


@needs_ray
def test_a_model_the_actors_cannot_load_fails_before_the_first_generation(executor):
    class NotRegistered(keras.layers.Layer):                 # no import path on the actors
        def call(self, x):
            return x * 2.0

    inputs = keras.Input((8, 8, 1))
    h = keras.layers.Conv2D(4, 3, name="c1")(inputs)
    h = NotRegistered(name="doubled")(h)
    outputs = keras.layers.Dense(3, name="fc")(keras.layers.Flatten()(h))
    model = keras.Model(inputs, outputs)
    data = (np.zeros((16, 8, 8, 1), "float32"), np.zeros(16, "int64"))
    with pytest.raises(EvaluationError, match="cannot rebuild|other outputs|cannot be sent"):
        kb.Evaluator(model, data, executor=executor, eval_size=8, calibration_size=8)


@needs_ray
def test_a_metric_that_cannot_be_sent_fails_before_the_first_generation(trained, executor):
    model, data = trained
    lock = threading.Lock()

    def locked_accuracy(y_true, y_pred):
        with lock:
            return float(np.mean(np.argmax(y_pred, -1) == y_true))

    with pytest.raises(EvaluationError, match="cannot be sent to the Ray actors"):
        kb.Evaluator(model, data, metric=locked_accuracy, executor=executor, **SETTINGS)


@needs_ray
def test_racing_is_refused_with_an_executor(trained, executor):
    model, data = trained
    with pytest.raises(EvaluationError, match="racing=None"):
        kb.Evaluator(model, data, racing=True, executor=executor, **SETTINGS)


@needs_ray
def test_the_pruner_searches_on_ray_as_in_process(trained, executor):
    model, data = trained
    settings = {"target_flops": 0.5, "round_to": 4, "random_state": 0, "verbose": 0,
                "search_kwargs": {"population_size": 4, "islands": 2, "generations": 1,
                                  "lower_population_size": 3, "lower_generations": 1},
                **SETTINGS}
    reference = kb.BiLevelPruner(model, **settings).search(search_data=data)
    on_ray = kb.BiLevelPruner(model, executor=executor, **settings).search(search_data=data)
    assert on_ray.plan_ == reference.plan_
    assert on_ray.search_history_[-1]["best"] == reference.search_history_[-1]["best"]


@needs_ray
def test_a_dead_cluster_is_a_clear_error_and_the_checkpoint_keeps_what_was_done(
        trained, local, executor, monkeypatch, tmp_path):
    """Ray shut down in the third generation: the first two are in the checkpoint."""
    import ray

    model, data = trained
    reference = _nsga2(local, generations=3).run()
    counting, calls = kb.Evaluator(model, data, **SETTINGS), []
    evaluate = counting.evaluate
    monkeypatch.setattr(counting, "evaluate", lambda plans: calls.append(1) or evaluate(plans))
    _nsga2(counting, generations=2).run()
    two_generations, seen = len(calls), []     # evaluate calls, the baseline's included
    evaluator = kb.Evaluator(model, data, executor=executor, **SETTINGS)
    score = executor.score

    def shut_down_in_the_third_generation(evaluator, plans):
        seen.append(1)
        if len(seen) == two_generations + 1:
            ray.shutdown()
        return score(evaluator, plans)

    monkeypatch.setattr(executor, "score", shut_down_in_the_third_generation)
    with pytest.raises(EvaluationError, match="gone.*checkpoint_dir"):
        _nsga2(evaluator, generations=3, checkpoint_dir=tmp_path).run()
    saved = pickle.loads((tmp_path / "state.pkl").read_bytes())
    assert saved["generation"] == 2
    resumed = _nsga2(local, generations=3, checkpoint_dir=tmp_path).run()
    _same_result(resumed, reference)
