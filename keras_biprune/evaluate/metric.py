"""The evaluator's metric: a name, a Keras metric or a callable, as one scoring function."""

import keras
import numpy as np

from keras_biprune.errors import EvaluationError

_LOWER_IS_BETTER = ("loss", "error", "crossentropy", "hinge", "squared", "absolute", "mse",
                    "mae", "mape", "msle", "log_cosh", "logcosh", "kl_divergence", "poisson")


def guess_greater_is_better(name):
    """Whether a metric named ``name`` is better higher (losses and errors are not)."""
    return not any(s in name.lower() for s in _LOWER_IS_BETTER)


def resolve_metric(metric, y, output_shape):
    """A function ``(y_true, y_pred) -> float`` and the metric's name."""
    if isinstance(metric, str) and metric.lower() in ("accuracy", "acc"):
        if output_shape[-1] == 1:
            metric = keras.metrics.BinaryAccuracy()
        elif y.ndim == len(output_shape) and y.shape[-1] == output_shape[-1]:
            metric = keras.metrics.CategoricalAccuracy()
        else:
            metric = keras.metrics.SparseCategoricalAccuracy()
    elif isinstance(metric, str):
        try:
            metric = keras.metrics.get(metric)
        except ValueError:
            raise EvaluationError(
                f"Unknown metric. Received: metric={metric!r}. Use a Keras metric name such "
                "as 'accuracy' or 'mse', a keras.metrics.Metric, or a callable "
                "(y_true, y_pred) -> value."
            ) from None
    if isinstance(metric, keras.metrics.Metric):
        config, cls = metric.get_config(), type(metric)

        def score(y_true, y_pred):
            fresh = cls.from_config(config)
            fresh.update_state(y_true, y_pred)
            return float(keras.ops.convert_to_numpy(fresh.result()))

        return score, metric.name
    if callable(metric):
        def score(y_true, y_pred):
            return float(np.mean(keras.ops.convert_to_numpy(metric(y_true, y_pred))))

        return score, getattr(metric, "__name__", type(metric).__name__)
    raise EvaluationError(
        f"metric must be a Keras metric name, a keras.metrics.Metric or a callable "
        f"(y_true, y_pred) -> value. Received: metric={metric!r}."
    )
