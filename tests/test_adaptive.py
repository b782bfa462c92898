"""AdaptivePruner: widths change while the model trains, in one run and one History."""

import keras
import numpy as np
import pytest
from matplotlib.figure import Figure
from zoo import tiny_chain, tiny_classification

import keras_biprune as kb
from keras_biprune.errors import BiPruneError, DataError, TrainingError, UnsupportedModelError

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
FROZEN = {"optimizer": keras.optimizers.SGD(0.0), "loss": LOSS}   # weights never move
NEVER_PRUNE, ALWAYS_GROW = {"prune_threshold": 0.0}, {"grow_threshold": 0.0, "saturation": 1.0}


def _residual():
    inputs = keras.Input((8, 8, 1))
    a = keras.layers.Conv2D(8, 3, padding="same", name="stem")(inputs)
    h = keras.layers.ReLU()(keras.layers.BatchNormalization(name="bn")(a))
    b = keras.layers.Conv2D(8, 3, padding="same", name="branch")(h)
    h = keras.layers.ReLU()(keras.layers.Add()([a, b]))
    h = keras.layers.GlobalAveragePooling2D()(h)
    return keras.Model(inputs, keras.layers.Dense(3, name="fc")(h), name="res")


@pytest.fixture(scope="module")
def data():
    return tiny_classification()


def _compiled(build=tiny_chain):
    keras.utils.set_random_seed(0)
    model = build()
    model.compile(keras.optimizers.Adam(1e-2), LOSS, metrics=["accuracy"])
    return model


def _outputs(model, x):
    return np.asarray(model(x, training=False))


def test_one_history_covers_the_run_and_the_users_model_is_untouched(data):
    model = _compiled()
    weights, config = [w.copy() for w in model.get_weights()], model.get_config()
    pruner = kb.AdaptivePruner(model, update_every=2, probe_size=16, verbose=0, **ALWAYS_GROW,
                               **NEVER_PRUNE)
    history = pruner.fit(*data, epochs=3, batch_size=16, validation_data=data)
    assert history is pruner.history_ and history.epoch == [0, 1, 2]
    assert {k: len(v) for k, v in history.history.items()} == {
        "loss": 3, "accuracy": 3, "val_loss": 3, "val_accuracy": 3}
    assert [r["epoch"] for r in pruner.width_history_] == [0, 1, 2]
    assert [r["widths"]["c1"] for r in pruner.width_history_] == [6, 8, 10]
    assert pruner.widths_ == {"c1": 10, "c2": 13}
    assert pruner.pruned_model_.get_layer("c1").kernel.shape[-1] == 10
    assert int(pruner.pruned_model_.optimizer.iterations) == 12     # 3 epochs x 4 steps, carried
    assert pruner.report_["flops_kept"] > 1 and pruner.report_["changes"] == 2
    assert isinstance(pruner.plot_widths(), Figure)
    assert "c1: 6 -> 10" in pruner.summary(print_fn=lambda text: None)
    for a, b in zip(model.get_weights(), weights):
        np.testing.assert_array_equal(a, b)
    assert model.get_config() == config and int(model.optimizer.iterations) == 0


def test_a_filter_nothing_reads_is_pruned(data):
    model = _compiled()
    kernel = model.get_layer("c2").kernel
    kernel.assign(np.asarray(kernel) * (np.arange(6) != 2)[:, None])
    pruner = kb.AdaptivePruner(model, update_every=2, probe_size=16, prune_threshold=1e-6,
                               compile_kwargs=FROZEN, grow_threshold=np.inf, verbose=0)
    pruner.fit(*data, epochs=2, batch_size=16)
    assert pruner.widths_ == {"c1": 5, "c2": 8}
    assert pruner.width_history_[1]["pruned"] == {"c1": 1}
    np.testing.assert_array_equal(pruner.pruned_model_.get_layer("c1").kernel,
                                  np.delete(np.asarray(model.get_layer("c1").kernel), 2, axis=-1))
    np.testing.assert_allclose(_outputs(pruner.pruned_model_, data[0]), _outputs(model, data[0]),
                               atol=1e-5)


def test_a_saturated_group_grows_without_changing_the_function(data):
    model = _compiled()
    pruner = kb.AdaptivePruner(model, update_every=2, probe_size=16, compile_kwargs=FROZEN,
                               max_width=1.5, verbose=0, **ALWAYS_GROW, **NEVER_PRUNE)
    pruner.fit(*data, epochs=3, batch_size=16)
    assert [r["grown"] for r in pruner.width_history_[1:]] == [{"c1": 2, "c2": 2},
                                                              {"c1": 1, "c2": 2}]
    assert pruner.widths_ == {"c1": 9, "c2": 12}                        # the cap: 1.5 x width
    np.testing.assert_allclose(_outputs(pruner.pruned_model_, data[0]), _outputs(model, data[0]),
                               atol=1e-5)


def test_the_rules_prune_the_weak_spare_new_filters_and_grow_the_saturated():
    model = _compiled()
    pruner = kb.AdaptivePruner(model, prune_threshold=0.5, max_prune_fraction=0.5)
    pruner._limits = {"c1": (4, 12), "c2": (4, 9)}
    pruner._ages = {"c1": np.array([2, 2, 2, 2, 1, 1]), "c2": np.full(8, 2)}  # c1's last two: new
    scores = {"c1": np.array([0.1, 0.2, 1, 1, 0.1, np.nan]), "c2": np.full(8, 0.6)}
    keep, growth = pruner._decide(kb.trace(model), scores)
    assert keep == {"c1": [2, 3, 4, 5]} and growth == {"c2": 1}       # c2 capped at 9
    scores["c2"][0] = 0.59                                             # not every filter strong
    assert pruner._decide(kb.trace(model), scores)[1] == {}


@pytest.mark.parametrize("rules, width", [(ALWAYS_GROW | NEVER_PRUNE, 10),
                                          ({"prune_threshold": 1e9}, 6)])
def test_a_residual_group_changes_in_every_producer(data, rules, width):
    model = _compiled(_residual)
    assert len(kb.trace(model).group("stem").producers) == 2
    pruner = kb.AdaptivePruner(model, update_every=2, probe_size=16, verbose=0, **rules)
    pruner.fit(*data, epochs=2, batch_size=16)
    slim = pruner.pruned_model_
    assert slim.get_layer("stem").kernel.shape[-1] == slim.get_layer("branch").kernel.shape[-1] \
        == slim.get_layer("bn").gamma.shape[0] == width


@pytest.mark.parametrize("from_scratch", [False, True])
def test_training_starts_from_the_trained_weights_or_from_scratch(data, from_scratch):
    model = _compiled()
    pruner = kb.AdaptivePruner(model, from_scratch=from_scratch, compile_kwargs=FROZEN,
                               probe_size=16, verbose=0)
    history = pruner.fit(*data, epochs=1, batch_size=16)
    assert len(history.history["loss"]) == 1 and len(pruner.width_history_) == 1
    same = np.allclose(pruner.pruned_model_.get_layer("c1").kernel, model.get_layer("c1").kernel)
    assert same is not from_scratch


def test_parameters_round_trip(data):
    pruner = kb.AdaptivePruner(_compiled(), decay=0.5)
    assert pruner.get_params()["decay"] == 0.5
    assert pruner.set_params(decay=0.8, min_channels=2) is pruner and pruner.decay == 0.8
    with pytest.raises(BiPruneError, match="no parameter 'epochs'"):
        pruner.set_params(epochs=3)
    clone = kb.AdaptivePruner(**pruner.get_params())
    assert clone.get_params() == pruner.get_params()


@pytest.mark.parametrize("setting, error, match", [
    ({"epochs": 0}, TrainingError, "epochs must be an int >= 1"),
    ({"prune_threshold": -1}, TrainingError, "prune_threshold must be a number"),
    ({"decay": 1.0}, TrainingError, "decay must be a number"),
    ({"max_width": 0.5}, TrainingError, "max_width"),
    ({"update_every": 0}, TrainingError, "update_every"),
    ({"model": "model"}, UnsupportedModelError, "keras.Model"),
    ({"model": "uncompiled"}, TrainingError, "not compiled with a loss"),
    ({"x": np.zeros((4, 5, 5, 1), "float32")}, DataError, "takes samples of shape"),
])
def test_bad_input_is_refused(data, setting, error, match):
    model = {"model": "a string", "uncompiled": tiny_chain()}.get(setting.get("model"), _compiled())
    settings = {k: v for k, v in setting.items() if k not in ("epochs", "x", "model")}
    pruner = kb.AdaptivePruner(model, verbose=0, **settings)
    x = setting.get("x", data[0])
    with pytest.raises(error, match=match):
        pruner.fit(x, data[1][:len(x)], epochs=setting.get("epochs", 1))


def test_reports_need_a_fit():
    with pytest.raises(BiPruneError, match="needs a fitted AdaptivePruner"):
        kb.AdaptivePruner(_compiled()).plot_widths()
