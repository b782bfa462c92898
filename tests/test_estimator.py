"""The estimator base: parameters (deep and nested) and the reset of fitted attributes."""

import pytest

from keras_biprune._estimator import Estimator
from keras_biprune.errors import BiPruneError


class Inner(Estimator):
    def __init__(self, rate=0.5):
        self.rate = rate


class Outer(Estimator):
    def __init__(self, inner=None, epochs=1):
        self.inner = inner
        self.epochs = epochs


def test_get_params_deep_lists_nested_parameters():
    outer = Outer(Inner(0.25), epochs=3)
    assert outer.get_params(deep=False) == {"inner": outer.inner, "epochs": 3}
    assert outer.get_params() == {"inner": outer.inner, "epochs": 3, "inner__rate": 0.25}


def test_set_params_sets_nested_parameters_and_refuses_unknown_ones():
    outer = Outer(Inner()).set_params(inner__rate=0.75, epochs=2)
    assert (outer.inner.rate, outer.epochs) == (0.75, 2)
    with pytest.raises(BiPruneError, match="has no parameter 'epochs__rate'"):
        outer.set_params(epochs__rate=1)


def test_reset_forgets_fitted_attributes_only():
    outer = Outer()
    outer.plan_, outer._cache = 1, 2
    outer._reset()
    assert not hasattr(outer, "plan_") and outer._cache == 2 and outer.epochs == 1
