"""Online filter scores and the optimizer state carried through surgery."""

import keras
import numpy as np
import pytest
from zoo import tiny_chain, tiny_classification

import keras_biprune as kb
from keras_biprune.surgery.apply import rebuild
from keras_biprune.surgery.grow import grow
from keras_biprune.training import OnlineFilterScore, TrainingError
from keras_biprune.training.carry import (
    load_optimizer_state,
    map_optimizer_state,
    optimizer_state,
)


@pytest.fixture(scope="module")
def data():
    return tiny_classification(48)


def test_scores_are_exponential_moving_averages(data):
    keras.utils.set_random_seed(0)
    model = tiny_chain()
    score = OnlineFilterScore(data[0][:16], update_every=1, decay=0.75).bind(model)
    assert set(score.scores_) == set()
    now = score.measure()
    assert set(now) == {"c1", "c2"} and len(now["c1"]) == 6 and len(now["c2"]) == 8
    np.testing.assert_allclose(now["c2"].mean(), 1, atol=0.5)
    score.update()
    np.testing.assert_allclose(score.scores_["c1"], now["c1"])
    score.scores_["c1"] = np.zeros(6)
    score.scores_["c2"] = np.r_[np.full(7, 2.0), np.nan]
    score.update()
    np.testing.assert_allclose(score.scores_["c1"], 0.25 * now["c1"])
    np.testing.assert_allclose(score.scores_["c2"][:7], 1.5 + 0.25 * now["c2"][:7])
    assert score.scores_["c2"][7] == pytest.approx(now["c2"][7])   # new: its first score
    assert score.updates_ == 2


def test_a_filter_nothing_reads_scores_zero(data):
    keras.utils.set_random_seed(0)
    model = tiny_chain()
    kernel = model.get_layer("c2").kernel
    kernel.assign(np.asarray(kernel) * (np.arange(6) != 2)[:, None])
    scores = OnlineFilterScore(data[0][:16]).bind(model).measure()
    assert scores["c1"][2] == 0 and (np.delete(scores["c1"], 2) > 0).all()


def test_the_callback_updates_every_n_steps_in_fit(data):
    keras.utils.set_random_seed(0)
    model = tiny_chain()
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    score = OnlineFilterScore(data[0][:16], update_every=2)
    model.fit(*data, batch_size=8, epochs=1, callbacks=[score], verbose=0)
    assert score.steps_ == 6 and score.updates_ == 3
    assert score.scores_["c2"].shape == (8,)


def test_bad_settings_are_refused(data):
    with pytest.raises(TrainingError, match="update_every"):
        OnlineFilterScore(data[0], update_every=0)
    with pytest.raises(TrainingError, match="decay"):
        OnlineFilterScore(data[0], decay=1.0)


def test_optimizer_slots_follow_pruned_and_grown_channels(data):
    keras.utils.set_random_seed(0)
    model = tiny_chain()
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(*data, batch_size=16, epochs=1, verbose=0)
    state = optimizer_state(model)
    momentum = state["slots"]["_momentums"][id(model.get_layer("c1").kernel)]
    graph = kb.trace(model)
    slim, rebuilder = rebuild(model, kb.PruningPlan({"c1": [0, 2, 3, 5]}), graph)
    pruned = map_optimizer_state(state, rebuilder)
    wide, grower, _ = grow(slim, {"c1": 2})
    grown = map_optimizer_state(pruned, grower)
    wide.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    assert load_optimizer_state(wide, grown) == (12, 0)      # 6 variables x 2 Adam slots
    assert int(wide.optimizer.iterations) == 3
    tracked, slots = kb._keras_internals.optimizer_slots(wide.optimizer)
    index = [v is wide.get_layer("c1").kernel for v in tracked].index(True)
    carried = np.asarray(slots["_momentums"][index])
    np.testing.assert_allclose(carried[..., :4], momentum[..., [0, 2, 3, 5]])
    np.testing.assert_array_equal(carried[..., 4:], 0)
