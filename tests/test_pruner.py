"""BiLevelPruner end to end on a tiny model: search, prune, fine-tune, report."""

import importlib

import keras
import numpy as np
import pytest
from backends import ON_TENSORFLOW
from matplotlib.figure import Figure

import keras_biprune as kb
from keras_biprune.demo import build_model
from keras_biprune.errors import SearchError, TrainingError
from keras_biprune.search.space import BAND
from tests import zoo

SMALL = {"generations": 2, "population_size": 4}


def _model():
    return zoo.digits_cnn(head="pool")


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images[..., None] / 16.0).astype("float32")
    return (x[:1200], d.target[:1200]), (x[1200:], d.target[1200:])


@pytest.fixture(scope="module")
def trained(digits):
    (x, y), _ = digits
    keras.utils.set_random_seed(0)
    model = _model()
    model.compile(keras.optimizers.Adam(3e-3),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.fit(x, y, epochs=15, batch_size=32, verbose=0)
    kb.training.recalibrate_batch_norm(model, x)
    return model


def _pruner(model, **kwargs):
    settings = {"target_flops": 0.5, "max_accuracy_drop": None, "search_kwargs": SMALL,
                "eval_size": 128, "calibration_size": 64, "verbose": 0}
    return kb.BiLevelPruner(model, **(settings | kwargs))


@pytest.mark.backends
def test_bilevel_fit_prunes_to_the_target_and_leaves_the_model_alone(trained, digits):
    (x, y), validation = digits
    weights = [np.array(w) for w in trained.get_weights()]
    pruner = _pruner(trained)
    history = pruner.fit(x, y, validation_data=validation, epochs=2, batch_size=64)
    assert isinstance(history, keras.callbacks.History) and len(history.history["loss"]) == 2
    assert 0.5 - BAND <= pruner.report_["flops_kept"] <= 0.5
    assert pruner.plan_.keep
    assert pruner.pruned_model_.count_params() == pruner.report_["params"]["pruned"]
    assert pruner.pruned_model_.count_params() < trained.count_params()
    replay = kb.apply_plan(trained, pruner.plan_)
    assert [w.shape for w in replay.weights] == [w.shape for w in pruner.pruned_model_.weights]
    for a, b in zip(weights, trained.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert set(pruner.report_["validation"]["pruned"]) == {"loss", "accuracy"}
    assert len(pruner.search_history_) == 2 and len(pruner.pareto_front_) >= 1
    text = pruner.summary(print_fn=lambda _: None)
    assert "parameters" in text and "c1: 12 ->" in text
    for figure in (pruner.plot_pareto_front(), pruner.plot_widths(),
                   pruner.plot_search_history()):
        assert isinstance(figure, Figure)
    ax = pruner.plot_pareto_front().axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "target (50% kept)" in labels
    accuracy = pruner.report_["validation"]["pruned"]["accuracy"]
    assert f"after fine-tuning ({pruner.report_['flops_kept']:.0%} kept, accuracy " \
        f"{accuracy:.3g})" in labels
    assert ax.get_ylabel().startswith("Accuracy")


@pytest.fixture(scope="module")
def fitted(trained, digits):
    (x, y), validation = digits
    pruner = _pruner(trained, racing=kb.evaluate.Racing(first=64, keep=0.5))
    pruner.fit(x, y, validation_data=validation, epochs=1, batch_size=64)
    return pruner


def test_export_writes_every_artifact_and_the_plan_replays(fitted, trained, digits, tmp_path):
    _, (x_val, _) = digits
    if not ON_TENSORFLOW:                      # SavedModel and TFLite are TensorFlow's
        with pytest.raises(kb.errors.BackendError, match="KERAS_BACKEND=tensorflow"):
            fitted.export(tmp_path / "out", representative_data=x_val[:64])
        assert not (tmp_path / "out").exists()
        return
    paths = fitted.export(tmp_path / "out", representative_data=x_val[:64])
    for key in ("keras", "saved_model", "tflite", "tflite_int8", "plan", "report"):
        assert (tmp_path / "out" / paths[key].split("/")[-1]).exists()
    assert set(paths["figures"]) == {"pareto", "widths", "history"}
    plan = kb.PruningPlan.from_json((tmp_path / "out" / "plan.json").read_text())
    assert plan == fitted.plan_
    reloaded = keras.saving.load_model(paths["keras"])
    np.testing.assert_allclose(reloaded.predict(x_val[:8], verbose=0),
                               fitted.pruned_model_.predict(x_val[:8], verbose=0), atol=1e-5)
    with pytest.raises(kb.export.ExportError):
        fitted.export(tmp_path / "out")


def test_save_and_load_restore_the_fitted_pruner(fitted, digits, tmp_path):
    _, (x_val, _) = digits
    fitted.save(tmp_path / "pruner")
    loaded = kb.BiLevelPruner.load(tmp_path / "pruner")
    assert loaded.get_params().keys() == fitted.get_params().keys()
    assert loaded.get_params()["racing"] == fitted.racing.get_config()   # racing reached the file
    assert fitted.evaluator_.racing == fitted.racing
    assert loaded.plan_ == fitted.plan_ and loaded.search_history_ == fitted.search_history_
    assert loaded.pareto_front_.costs.tolist() == fitted.pareto_front_.costs.tolist()
    np.testing.assert_allclose(loaded.pruned_model_.predict(x_val[:8], verbose=0),
                               fitted.pruned_model_.predict(x_val[:8], verbose=0), atol=1e-6)
    assert loaded.summary(print_fn=lambda _: None) == fitted.summary(print_fn=lambda _: None)
    with pytest.raises(kb.BiPruneError, match="not empty"):
        fitted.save(tmp_path / "pruner")


def test_the_search_sees_only_held_out_training_data(trained, digits):
    (x, y), (x_val, _) = digits
    pruner = _pruner(trained, search_fraction=0.2)
    pruner.search(*pruner._split(x, y, None)[2])
    searched = pruner.evaluator_.x_eval[0].reshape(len(pruner.evaluator_.x_eval[0]), -1)
    train = {row.tobytes() for row in x.reshape(len(x), -1)}
    val = {row.tobytes() for row in x_val.reshape(len(x_val), -1)}
    assert all(row.tobytes() in train for row in searched)
    assert not any(row.tobytes() in val for row in searched if row.tobytes() not in train)
    x_train, _, (x_search, _) = pruner._split(x, y, None)
    assert len(x_train) + len(x_search) == len(x) and len(x_search) == 240
    assert not {r.tobytes() for r in x_train} & {r.tobytes() for r in x_search}


def test_nsga2_fine_tunes_the_selected_front_plans_and_keeps_the_best(trained, digits):
    (x, y), validation = digits
    pruner = _pruner(trained, method="nsga2", n_select=2,
                     search_kwargs=SMALL | {"max_prune_ratio": 0.9})
    pruner.fit(x, y, validation_data=validation, epochs=1, batch_size=64)
    assert 1 <= len(pruner.candidates_) <= 2
    full = kb.cost(pruner.evaluator_.graph).macs
    for candidate in pruner.candidates_:      # front plans raised to the budget
        kept = kb.cost(pruner.evaluator_.graph, candidate["plan"]).macs / full
        assert 0.5 - BAND <= kept <= 0.5
    best = max(pruner.candidates_, key=lambda c: c["score"])
    assert pruner.pruned_model_ is best["model"] and pruner.plan_ == best["plan"]


def test_filter_granularity_keeps_kernel_zeros_through_fine_tuning(trained, digits):
    (x, y), _ = digits
    pruner = _pruner(trained, channel_granularity="filter", search_kwargs=SMALL | {
        "upper_slack": 0.6})
    pruner.fit(x, y, epochs=2, batch_size=64, distill=True)
    assert pruner.plan_.kernels, "the lower level should zero some kernel entries"
    for path in pruner.plan_.kernels:
        kernel = keras.ops.convert_to_numpy(pruner.pruned_model_.get_layer(path).kernel)
        assert (np.abs(kernel.reshape(-1, *kernel.shape[-2:])).sum(axis=0) == 0).any()
    assert pruner.report_["sparse_flops_kept"] <= 0.5 < pruner.report_["flops_kept"] + 0.5


def test_a_dataset_is_split_by_batches(trained, digits):
    (x, y), _ = digits
    pytest.importorskip("tensorflow")          # a tf.data.Dataset, on any backend
    dataset = kb.datasets.as_dataset(x, y, batch_size=100)
    pruner = _pruner(trained, search_fraction=0.25)
    pruner.fit(dataset, epochs=1)
    assert len(pruner.evaluator_.y_eval) == 128
    assert pruner.history_.history["loss"]


def test_params_are_stored_and_checked_only_when_fitting(trained, digits):
    (x, y), _ = digits
    pruner = kb.BiLevelPruner(trained, target_flops=2.0)
    assert pruner.get_params()["target_flops"] == 2.0
    with pytest.raises(SearchError, match="target_flops is the share"):
        pruner.fit(x, y)
    pruner.set_params(target_flops=0.5, method="evolve")
    with pytest.raises(SearchError, match="method must be one of"):
        pruner.fit(x, y)
    with pytest.raises(kb.BiPruneError, match="no parameter 'epochs'"):
        pruner.set_params(epochs=3)
    with pytest.raises(TrainingError, match="not compiled"):
        _pruner(_model()).fit(x, y)
    with pytest.raises(SearchError, match="Pass search_data"):
        _pruner(trained).fit(list(x), y)
    with pytest.raises(SearchError, match=r"\['round_to'\].*round_to -> round_to="):
        _pruner(trained, search_kwargs=SMALL | {"round_to": 16}).fit(x, y)
    with pytest.raises(SearchError, match=r"floors keep at least 0\.\d+.*target=0\.2"):
        _pruner(trained, target_flops=0.2, search_kwargs=SMALL | {"max_prune_ratio": 0.3}).fit(
            x, y)
    with pytest.raises(SearchError, match="needs method='bilevel' and a max_accuracy_drop"):
        _pruner(trained, target_flops=None).fit(x, y)
    with pytest.raises(SearchError, match="criteria='blend' calibrates its blend at the FLOPs"):
        _pruner(trained, target_flops=None, max_accuracy_drop=0.01, criteria="blend").fit(x, y)


def test_data_that_does_not_fit_the_model_is_refused(trained, digits):
    (x, y), _ = digits
    with pytest.raises(kb.errors.DataError):
        _pruner(trained).fit(x[:, :4], y)


def test_a_py_dataset_trains_when_search_data_is_given(trained, digits):
    (x, y), validation = digits

    class Batches(keras.utils.PyDataset):
        def __len__(self):
            return 10

        def __getitem__(self, i):
            return x[i * 100:(i + 1) * 100], y[i * 100:(i + 1) * 100]

    pruner = _pruner(trained)
    history = pruner.fit(Batches(), search_data=validation, epochs=1)
    assert len(history.history["loss"]) == 1 and pruner.report_["flops_kept"] <= 0.5


def test_fitting_twice_starts_afresh_and_an_interruption_keeps_the_model(trained, digits):
    (x, y), _ = digits

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise KeyboardInterrupt

    pruner = _pruner(trained, method="nsga2", n_select=2)
    pruner.fit(x, y, epochs=1)
    first = len(pruner.candidates_)
    pruner.set_params(method="bilevel")
    history = pruner.fit(x, y, epochs=5, callbacks=[Interrupt()])
    assert first >= 1 and pruner.candidates_ == []
    assert history.interrupted and len(history.history["loss"]) == 1   # epochs before the stop
    assert pruner.pruned_model_.predict(x[:4], verbose=0).shape == (4, 10)


def test_recovery_distills_a_classifier_by_default_and_not_on_request(trained, digits,
                                                                      monkeypatch, capsys):
    (x, y), validation = digits
    seen = []
    pruner_module = importlib.import_module("keras_biprune.pruner")
    real = pruner_module.finetune
    monkeypatch.setattr(pruner_module, "finetune",
                        lambda *args, **kwargs: seen.append(kwargs) or real(*args, **kwargs))
    pruner = _pruner(trained, verbose=1)
    outputs, calls = [], []
    for distill in ("auto", False):
        pruner.fit(x, y, validation_data=validation, epochs=1, batch_size=64, distill=distill)
        outputs.append([line for line in capsys.readouterr().out.splitlines()
                        if line.startswith("[")])          # the phase lines
        calls.append(seen[:])
        seen.clear()
    # The race's short recoveries (one a finalist and round) and the full one distil alike.
    assert len(calls[0]) > 1 and all(c["teacher"] is trained for c in calls[0])
    assert len(calls[1]) > 1 and all(c["teacher"] is None for c in calls[1])
    first, second = outputs
    assert len(first) == 4 and first[0].endswith("] search: bilevel, at most 50% of the FLOPs")
    assert "] race: 4 finalists, 100 optimizer steps a round (search took 0:" in first[1]
    assert "] fine-tuning: up to 1 epoch(s), distilled from the original (race took 0:" \
        in first[2]
    assert "] done: 0:" in first[3] and "(search 0:" in first[3] and "race 0:" in first[3]
    assert second[2].split("] ")[1].startswith("fine-tuning: up to 1 epoch(s) (race took")
    full = calls[0][-1]
    assert full["schedule"] == "cosine" and full["patience"] == 3
    assert full["validation_data"] is validation


def test_recovery_without_epochs_runs_about_two_thousand_steps(trained, digits, monkeypatch):
    (x, y), _ = digits
    monkeypatch.setattr(importlib.import_module("keras_biprune.training.finetune"),
                        "RECOVERY_STEPS", 40)
    pruner = _pruner(trained)
    history = pruner.fit(x, y, batch_size=270)      # 1080 images: 4 steps an epoch
    assert len(history.history["loss"]) == kb.training.recovery_epochs(4) == 10


def test_an_accuracy_drop_that_does_not_hold_is_reported_and_the_plan_kept(trained, digits,
                                                                           caplog):
    (x, y), validation = digits
    pruner = _pruner(trained, target_flops=0.1, max_accuracy_drop=0.0, recalibrate_bn=False,
                     search_kwargs=SMALL | {"max_prune_ratio": 0.95})
    with caplog.at_level("WARNING", logger="keras_biprune.pruner"):
        pruner.fit(x, y, validation_data=validation, epochs=1, steps_per_epoch=1, batch_size=64)
    drop = pruner.report_["accuracy_drop"]
    assert drop["value"] > 0 and drop["allowed"] == 0.0 and drop["on"] == "validation"
    assert "max_accuracy_drop=0.0 does not hold" in caplog.text
    assert f"{drop['value']:.4f}" in caplog.text
    assert 0.1 - BAND <= pruner.report_["flops_kept"] <= 0.1


def test_the_recovery_race_keeps_the_best_after_recovery_not_before(trained, digits,
                                                                    monkeypatch):
    (x, y), validation = digits
    graph = kb.trace(trained)
    # Both at the budget (0.098 and 0.085 of the MACs): four channels in each conv, or one
    # c1 channel feeding all of c2. After 60 steps the second scores 0.28 on the search
    # data, the first 0.15 and L1's uniform plan 0.22; the search ranks the first far ahead.
    narrow = kb.PruningPlan({"c1": range(4), "c2": range(4)}, signature=graph.signature)
    wide = kb.PruningPlan({"c1": [0]}, signature=graph.signature)
    full = kb.cost(graph).macs
    costs = [kb.cost(graph, plan).macs / full for plan in (narrow, wide)]
    assert 0.1 - BAND <= min(costs) and max(costs) <= 0.1
    ranked = [kb.search.Solution(narrow, 0.99, costs[0]),
              kb.search.Solution(wide, 0.5, costs[1])]
    result = kb.search.SearchResult(ranked[0], kb.search.ParetoFront(ranked), [], 2, ranked)
    monkeypatch.setattr(kb.search.BiLevelSearch, "run", lambda self: self._setup() or result)
    pruner = _pruner(trained, target_flops=0.1, finalists=3, finalist_steps=60)
    pruner.fit(x, y, validation_data=validation, epochs=1, batch_size=64)
    race = pruner.report_["race"]
    assert race["finalists"] == 3 and race["uniform"] == 2
    assert race["scores_before"][:2] == [0.99, 0.5] and race["scores_before"][2] < 0.5
    assert race["rounds"][0]["1"] > race["rounds"][0]["0"] and race["winner"] == 1
    assert pruner.plan_ == wide
    without = _pruner(trained, target_flops=0.1, finalists=1)  # the best before recovery
    without.fit(x, y, epochs=1, batch_size=64)
    assert without.plan_ == narrow and "race" not in without.report_
    default = _pruner(trained, target_flops=0.1, finalist_steps=60)   # one-shot: a race
    default.fit(x, y, epochs=1, batch_size=64)
    assert default.report_["race"]["finalists"] == 3 and default.plan_ == wide
    manual = _pruner(trained, target_flops=0.1, finalists=3, finalist_steps=60)
    assert manual.search(*validation).plan_ == narrow        # scored on what it searched on
    kept, last = manual.race(x, y, batch_size=64), manual.report_["race"]["rounds"][-1]
    assert kept == manual.plan_ != narrow
    assert str(manual.report_["race"]["winner"]) == max(last, key=last.get)


def test_the_race_holds_the_criterions_uniform_plan_against_the_search(trained, digits,
                                                                       monkeypatch):
    (x, y), _ = digits
    graph = kb.trace(trained)
    narrow = kb.PruningPlan({"c1": range(4), "c2": range(4)}, signature=graph.signature)
    ranked = [kb.search.Solution(narrow, 0.99, 0.098)]
    result = kb.search.SearchResult(ranked[0], kb.search.ParetoFront(ranked), [], 1, ranked)
    monkeypatch.setattr(kb.search.BiLevelSearch, "run", lambda self: self._setup() or result)
    pruner = _pruner(trained, target_flops=0.1, finalists=2, finalist_steps=60)
    pruner.search(x, y)
    uniform = pruner._search.uniform(0.1)
    scores = kb.criteria.scores(graph, trained, "l1")
    for group, kept in uniform.keep.items():       # each group's best channels by L1
        assert set(kept) == set(np.argsort(-scores[group])[:len(kept)])
    assert uniform != narrow and 0.1 - BAND <= kb.cost(graph, uniform).macs / kb.cost(
        graph).macs <= 0.1
    assert pruner.race(x, y, batch_size=64) == uniform     # 0.22 after 60 steps, not 0.15
    assert pruner.report_["race"]["uniform"] == 1 and pruner.report_["race"]["winner"] == 1


def test_a_race_needs_a_bilevel_search_first(trained):
    with pytest.raises(kb.BiPruneError, match=r"race\(\) before search\(\)"):
        _pruner(trained, target_flops=0.5).race(np.zeros((2, 8, 8, 1)), np.zeros(2))
    with pytest.raises(kb.BiPruneError, match=r"method='nsga2'"):
        _pruner(trained, method="nsga2").race(np.zeros((2, 8, 8, 1)), np.zeros(2))


def test_pruning_in_stages_reaches_the_target_and_replays_on_the_original(trained, digits,
                                                                         capsys):
    (x, y), validation = digits
    weights = [np.array(w) for w in trained.get_weights()]
    pruner = _pruner(trained, target_flops=0.3, steps=2, stage_steps=20, verbose=1)
    pruner.fit(x, y, validation_data=validation, epochs=1, batch_size=64)
    assert 0.3 - BAND <= pruner.report_["flops_kept"] <= 0.3
    first, last = pruner.report_["stages"]
    assert "race" not in pruner.report_                 # stages: no race by default
    assert first["target"] == pytest.approx(0.3 ** 0.5) and last["target"] == pytest.approx(0.3)
    # One channel of this tiny net is worth up to 7.7 % of its MACs: a stage may land below
    # its band; the last one is raised into it.
    assert 0.3 < first["flops_kept"] <= first["target"]
    assert pruner.stages_[1]["model"].count_params() < trained.count_params()
    replay = kb.apply_plan(trained, pruner.plan_)             # the plan is the original's
    assert [w.shape for w in replay.weights] == [w.shape for w in pruner.pruned_model_.weights]
    assert pruner.pruned_model_.count_params() == pruner.report_["params"]["pruned"]
    assert {s.plan.signature for s in pruner.pareto_front_} == {kb.trace(trained).signature}
    graph, full = kb.trace(trained), kb.cost(kb.trace(trained)).macs
    for solution in pruner.pareto_front_:                       # costs of the original's
        assert solution.cost == pytest.approx(kb.cost(graph, solution.plan).macs / full)
    assert {h["stage"] for h in pruner.search_history_} == {1, 2}
    phases = [line.split("] ")[1] for line in capsys.readouterr().out.splitlines()
              if line.startswith("[")]
    assert [p.split(":")[0] for p in phases] == ["search 1/2", "recovery 1/2", "search 2/2",
                                                 "fine-tuning", "done"]
    for a, b in zip(weights, trained.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kwargs, match", [
    ({"steps": 0}, "steps must be the number of pruning stages, an int >= 1"),
    ({"steps": 2.0}, "an int >= 1"),
    ({"steps": 2, "method": "nsga2"}, "needs method='bilevel'"),
    ({"steps": 2, "finalists": 3}, "finalists=1"),
    ({"finalists": 0}, "finalists must be the number of the search's best plans that race"),
])
def test_bad_stage_settings_are_refused_before_any_work(trained, digits, kwargs, match):
    (x, y), _ = digits
    with pytest.raises(SearchError, match=match):
        _pruner(trained, **kwargs).fit(x, y, epochs=1)


@pytest.fixture(scope="module")
def latency_model(trained, tmp_path_factory):
    """A latency model of the "tf" runtime whose table is exact: overhead, MACs, memory (every
    width priced as timed: ``lanes=1``, so the budget lands in its band)."""
    def timer(sub_model):
        entries = sum(int(np.prod(t.shape[1:])) for t in sub_model.outputs)
        return 0.02 + kb.cost(sub_model).macs / 1e5 + entries / 1e3

    return kb.evaluate.LatencyModel.build(trained, runtime="tf", round_to=8, lanes=1, timer=timer,
                                          cache_dir=tmp_path_factory.mktemp("latency"),
                                          verbose=0)


def test_plans_keep_every_input_channel_unless_a_granularity_asks_for_the_lower_level(
        digits, tmp_path):
    (x, y), _ = digits
    model = build_model(x.shape[1:], width=16)          # a group read by two layers
    model.compile(keras.optimizers.Adam(), keras.losses.SparseCategoricalCrossentropy(True))
    latency = kb.evaluate.LatencyModel.build(
        model, runtime="tf", round_to=4, lanes=1, cache_dir=tmp_path, verbose=0,
        timer=lambda sub_model: 0.02 + kb.cost(sub_model).macs / 1e5)
    lower = {"lower_share": 1.0}
    searched = {
        "layer": _pruner(model, channel_granularity="layer", random_state=0,
                         search_kwargs=SMALL | lower).search(x, y),
        "default": _pruner(model, random_state=0, search_kwargs=SMALL).search(x, y),
        "latency": _pruner(model, target_latency=0.9, runtime=latency, random_state=0,
                           search_kwargs=SMALL).search(x, y)}
    assert any(s.plan.inputs for s in searched["layer"].search_result_.ranked)
    for name in ("default", "latency"):                                      # no gathers
        assert not any(s.plan.inputs for s in searched[name].search_result_.ranked), name
    assert not searched["default"].plan_.inputs
    assert 0.5 - BAND <= kb.cost(kb.trace(model), searched["default"].plan_).ratio_to(
        kb.cost(kb.trace(model))).macs <= 0.5


@pytest.mark.tensorflow      # fit times the pruned model on the "tf" runtime
def test_a_latency_target_is_met_as_predicted_and_checked_by_timing(trained, digits,
                                                                    latency_model, tmp_path):
    (x, y), validation = digits
    pruner = _pruner(trained, target_flops=None, target_latency=0.6, runtime=latency_model)
    pruner.fit(x, y, validation_data=validation, epochs=1, batch_size=64)
    latency = pruner.report_["latency"]
    assert 0.6 - BAND <= latency["predicted"] <= 0.6
    assert latency["predicted"] == latency_model.ratio(pruner.plan_)
    assert (latency["runtime"], latency["batch_size"], latency["target"]) == ("tf", 1, 0.6)
    assert latency["measured"] == latency["pruned_ms"] / latency["original_ms"] > 0
    assert pruner.report_["target_latency"] == 0.6
    text = pruner.summary(print_fn=lambda _: None)
    assert f"latency (tf, batch 1): predicted {latency['predicted']:.1%}, measured" in text
    pruner.save(tmp_path / "saved")
    loaded = kb.BiLevelPruner.load(tmp_path / "saved")
    assert (loaded.runtime, loaded.report_["latency"]) == ("tf", latency)


@pytest.mark.parametrize("method", ["bilevel", "nsga2"])
def test_flops_and_latency_targets_both_hold(trained, digits, latency_model, method):
    (x, y), _ = digits
    pruner = _pruner(trained, method=method, target_flops=0.4, target_latency=0.8,
                     runtime=latency_model)
    pruner.search(x, y)
    assert pruner.pareto_front_.measure == "latency"
    flops = kb.cost(trained, pruner.plan_).macs / kb.cost(trained).macs
    assert flops <= 0.4 and latency_model.ratio(pruner.plan_) <= 0.8
    assert "latency" not in pruner.report_                      # timed after fit only


def test_under_a_latency_target_widths_move_in_the_runtimes_lanes(digits, tmp_path):
    (x, y), _ = digits
    inputs = keras.Input(x.shape[1:])
    h = keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="c1")(inputs)
    h = keras.layers.Conv2D(48, 3, padding="same", activation="relu", name="c2")(h)
    model = keras.Model(inputs, keras.layers.Dense(10)(keras.layers.GlobalAveragePooling2D()(h)))
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    lanes = kb.evaluate.LatencyModel.build(model, runtime="tf", round_to=4, lanes=16,
                                           timer=lambda m: 0.02 + kb.cost(m).macs / 1e5,
                                           cache_dir=tmp_path, verbose=0)
    pruner = _pruner(model, target_flops=None, target_latency=0.9, runtime=lanes, round_to=4)
    pruner.search(x, y)
    widths = {len(v) for s in pruner.search_result_.ranked for v in s.plan.keep.values()}
    assert widths and all(w % 16 == 0 for w in widths), widths  # 4s would waste lanes


def test_a_latency_target_below_the_floors_names_the_smallest_reachable_ratio(trained, digits,
                                                                             latency_model):
    (x, y), _ = digits
    pruner = _pruner(trained, target_flops=None, target_latency=0.05, runtime=latency_model,
                     search_kwargs=SMALL | {"max_prune_ratio": 0.5})
    with pytest.raises(SearchError, match=r"target keeps 0\.050 of the latency, but the floors "
                                          r"keep at least 0\.\d{3}"):
        pruner.search(x, y)


@pytest.mark.parametrize("kwargs, match", [
    ({"target_latency": 1.5}, r"target_latency must be a number in \(0, 1\]"),
    ({"target_latency": 0.5, "runtime": "onnx"}, r"runtime must be one of .*runtime='onnx'"),
    ({"target_latency": 0.5, "latency_batch_size": 0}, "latency_batch_size must be an int >= 1"),
    ({"target_latency": 0.5, "steps": 2}, "Use steps=1 with target_latency"),
])
def test_bad_latency_settings_are_refused_before_any_work(trained, digits, kwargs, match):
    (x, y), _ = digits
    with pytest.raises(SearchError, match=match):
        _pruner(trained, **kwargs).fit(x, y, epochs=1)


def test_a_runtime_that_is_not_installed_is_named_before_any_work(trained, digits, monkeypatch,
                                                                 tmp_path):
    tf = pytest.importorskip("tensorflow")

    from keras_biprune.errors import MissingDependencyError

    (x, y), _ = digits
    monkeypatch.delattr(tf.lite, "Interpreter")
    with pytest.raises(MissingDependencyError, match=r"runtime='tflite' needs the TFLite"):
        _pruner(trained, target_latency=0.5, runtime="tflite").fit(x, y, epochs=1)
    # A latency model built ahead: fit still times the pruned model on its runtime.
    tables = kb.evaluate.LatencyModel.build(trained, runtime="tflite", round_to=8, cache_dir=tmp_path,
                                            timer=lambda sub_model: 1.0, verbose=0)
    with pytest.raises(MissingDependencyError, match=r"runtime='tflite' needs the TFLite"):
        _pruner(trained, target_latency=0.5, runtime=tables).fit(x, y, epochs=1)
