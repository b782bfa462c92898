"""What every estimator shares: scikit-learn style parameters and the fitted check."""

import inspect

from keras_biprune.errors import BiPruneError


class Estimator:
    """Constructor arguments as parameters (``get_params``/``set_params``)."""

    def get_params(self, deep=False):
        """The constructor arguments, by name."""
        names = list(inspect.signature(type(self).__init__).parameters)[1:]
        return {name: getattr(self, name) for name in names}

    def set_params(self, **params):
        """Sets constructor arguments; returns the estimator."""
        valid = self.get_params()
        for name, value in params.items():
            if name not in valid:
                raise BiPruneError(f"{type(self).__name__} has no parameter {name!r}. Received: "
                                   f"{name}={value!r}. Valid: {sorted(valid)}.")
            setattr(self, name, value)
        return self

    def _check_fitted(self, what):
        if getattr(self, "pruned_model_", None) is None:
            raise BiPruneError(f"{what}() needs a fitted {type(self).__name__}. Received: an "
                               "unfitted one. Call fit first.")
