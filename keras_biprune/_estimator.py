"""What every estimator shares: scikit-learn style parameters, fitted state and its check.

The estimators (`BiLevelPruner`, `AdaptivePruner`) follow one convention:
``__init__`` only stores its arguments (the parameters), ``fit`` validates
them, forgets what an earlier fit learnt (`Estimator._reset`), learns the
fitted attributes (public names ending in ``_``) and returns the training
``History``, as ``keras.Model.fit`` does (it is also ``history_``). Steps
that do not train (``BiLevelPruner.search``) return the estimator.
"""

import inspect

from keras_biprune.errors import BiPruneError


class Estimator:
    """Constructor arguments as parameters (``get_params``/``set_params``), fitted attributes."""

    def get_params(self, deep=True):
        """The constructor arguments, by name.

        Args:
            deep: also list the parameters of arguments that have
                ``get_params`` themselves, as ``argument__parameter``
                (scikit-learn's convention).
        """
        names = list(inspect.signature(type(self).__init__).parameters)[1:]
        params = {name: getattr(self, name) for name in names}
        if deep:
            for name, value in list(params.items()):
                if hasattr(value, "get_params") and not isinstance(value, type):
                    params |= {f"{name}__{key}": inner
                               for key, inner in value.get_params().items()}
        return params

    def set_params(self, **params):
        """Sets constructor arguments (``argument__parameter`` for nested ones); returns self."""
        valid = self.get_params(deep=False)
        for name, value in params.items():
            outer, _, inner = name.partition("__")
            if outer not in valid or (inner and not hasattr(valid[outer], "set_params")):
                raise BiPruneError(f"{type(self).__name__} has no parameter {name!r}. Received: "
                                   f"{name}={value!r}. Valid: {sorted(valid)}.")
            if inner:
                valid[outer].set_params(**{inner: value})
            else:
                setattr(self, name, value)
        return self

    def _reset(self):
        """Forgets an earlier fit: deletes every fitted attribute (public, ending in ``_``)."""
        for name in [n for n in vars(self) if n.endswith("_") and not n.startswith("_")]:
            delattr(self, name)

    def _check_fitted(self, what):
        if getattr(self, "pruned_model_", None) is None:
            raise BiPruneError(f"{what}() needs a fitted {type(self).__name__}. Received: an "
                               "unfitted one. Call fit first.")
