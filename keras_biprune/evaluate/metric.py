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
        # Computed in NumPy: the same value as the Keras metric the name stands
        # for, without its per-call op dispatch (a few ms, for every candidate
        # and racing stage).
        if output_shape[-1] == 1:
            return _binary_accuracy, "binary_accuracy"
        if y.ndim == len(output_shape) and y.shape[-1] == output_shape[-1]:
            return _categorical_accuracy, "categorical_accuracy"
        return _sparse_categorical_accuracy, "sparse_categorical_accuracy"
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
        own = type(metric).from_config(metric.get_config())   # the user's metric keeps its state

        def score(y_true, y_pred):
            own.reset_state()
            own.update_state(y_true, y_pred)
            return float(keras.ops.convert_to_numpy(own.result()))

        return score, metric.name
    if callable(metric):
        def score(y_true, y_pred):
            return float(np.mean(keras.ops.convert_to_numpy(metric(y_true, y_pred))))

        return score, getattr(metric, "__name__", type(metric).__name__)
    raise EvaluationError(
        f"metric must be a Keras metric name, a keras.metrics.Metric or a callable "
        f"(y_true, y_pred) -> value. Received: metric={metric!r}."
    )


def _sparse_categorical_accuracy(y_true, y_pred):
    labels = np.asarray(y_true)
    if labels.ndim == np.ndim(y_pred):                   # (…, 1) labels
        labels = labels[..., 0]
    return float(np.mean(np.argmax(y_pred, axis=-1) == labels.astype("int64")))


def _categorical_accuracy(y_true, y_pred):
    return float(np.mean(np.argmax(y_pred, axis=-1) == np.argmax(y_true, axis=-1)))


def _binary_accuracy(y_true, y_pred):
    labels = np.asarray(y_true).reshape(np.shape(y_pred))
    return float(np.mean((np.asarray(y_pred) > 0.5).astype(labels.dtype) == labels))
