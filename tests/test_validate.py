"""One validation policy: ints are Integral but not bool, one error class per kind of mistake."""

import numpy as np
import pytest

import keras_biprune as kb
from keras_biprune._validate import check_int, check_model, check_number
from keras_biprune.errors import SearchError, TrainingError, UnsupportedModelError


def test_ints_are_integral_but_not_bool():
    check_int("n", np.int64(3), 1, SearchError)
    for bad in (True, 3.0, "3", 0):
        with pytest.raises(SearchError, match=r"n must be an int >= 1\. Received: n="):
            check_int("n", bad, 1, SearchError)


@pytest.mark.parametrize("value, accepted", [
    (np.float32(0.5), True), (1, True), (0, False), (True, False), ("0.5", False)])
def test_numbers_are_real_but_not_bool_and_ranges_say_their_bounds(value, accepted):
    if accepted:
        check_number("share", value, TrainingError, 0, 1, open_low=True)
        return
    with pytest.raises(TrainingError, match=r"share must be a number in \(0, 1\]\. Received"):
        check_number("share", value, TrainingError, 0, 1, open_low=True, fix="Use 0.5.")


def test_numpy_ints_pass_where_plain_ints_do():
    score = kb.training.OnlineFilterScore(np.zeros((2, 4, 4, 1), "float32"),
                                          update_every=np.int64(5))
    assert score is not None
    assert kb.evaluate.Racing(first=np.int64(64)).first == 64


@pytest.mark.parametrize("estimator", [kb.BiLevelPruner, kb.AdaptivePruner])
def test_a_non_model_raises_the_same_error_in_every_estimator(estimator):
    with pytest.raises(UnsupportedModelError, match=f"{estimator.__name__} expects a keras.Model"):
        estimator("not a model").fit(np.zeros((4, 2)), np.zeros(4))
    with pytest.raises(UnsupportedModelError, match="Received: model of type list"):
        check_model([], "trace")
