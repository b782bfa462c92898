"""Checks of the data ``BiLevelPruner.fit`` and ``search`` receive, before any work starts.

Mistakes in the data used to surface late and far from their cause: x and y
of different lengths as an ``IndexError`` in the split, NaN inputs as a
``TypeError`` in the middle of the search, one-hot targets for a sparse loss
(or labels beyond the model's classes) only when fine-tuning failed deep in
TensorFlow, after the whole search. `check_data` finds them first and raises
`keras_biprune.errors.DataError` saying what was expected and what was
received.

Only data given as arrays (NumPy arrays, tensors, lists or dicts of them, or
tuples ``(x, y[, sample_weight])`` of those) is checked; datasets and
generators are read lazily and checked where they are read.
"""

import numpy as np

from keras_biprune import _keras_internals as internals
from keras_biprune._data import model_inputs
from keras_biprune.errors import DataError

_SPARSE, _CATEGORICAL, _BINARY = "sparse", "categorical", "binary"
_CHUNK = 1 << 22        # elements per chunk when locating non-finite values


def check_data(model, x=None, y=None, *, validation_data=None, search_data=None,
               compile_kwargs=None, who="fit"):
    """Raises `DataError` when array data cannot train or score ``model``.

    Checks, for ``(x, y)``, ``validation_data`` and ``search_data`` when given
    as arrays: every array has the same number of samples (and at least one);
    inputs and targets are finite (no NaN, no inf); inputs match the
    model's inputs; and, for a single-output model compiled with a
    categorical cross-entropy (or given one in ``compile_kwargs``), that the
    targets fit the loss: integer labels in ``[0, classes)`` for a sparse
    loss (not one-hot rows), one-hot (or probability) rows of ``classes``
    entries for a categorical loss, values in ``[0, 1]`` for a binary loss.

    Args:
        model: the model the data is for.
        x: inputs, as ``model.fit`` takes them (non-array data is skipped).
        y: targets.
        validation_data: ``(x, y[, sample_weight])`` or a dataset.
        search_data: ``(x, y)`` or a dataset.
        compile_kwargs: ``model.compile`` arguments used instead of the model's.
        who: the method that received the data, for messages (``"fit"``, ``"search"``).

    Raises:
        DataError: the data does not fit; the message names the argument.
    """
    loss = _loss_of(model, compile_kwargs)
    if x is not None and y is None and who == "search" and _is_data_tuple(x):
        _check_tuple(model, loss, x, f"{who}(x)")       # search(x) takes (x, y) as x
    elif x is not None:
        _check_pair(model, loss, x, y, None, f"{who}(x, y)", x_name="x", y_name="y")
    for name, data in (("validation_data", validation_data), ("search_data", search_data)):
        if data is not None:
            _check_tuple(model, loss, data, name)


def _is_data_tuple(data):
    return isinstance(data, (tuple, list)) and 1 <= len(data) <= 3 and _is_arrays(data[0])


def _check_tuple(model, loss, data, name):
    if _is_arrays(data) and not isinstance(data, (tuple, list)):
        _check_pair(model, loss, data, None, None, name, x_name=name, y_name="y")
        return
    if not _is_data_tuple(data):
        return                  # a dataset or generator: read (and checked) batch by batch
    x, y, weights = (tuple(data) + (None, None))[:3]
    _check_pair(model, loss, x, y, weights, name, x_name="x", y_name="y")


def _check_pair(model, loss, x, y, weights, where, *, x_name, y_name):
    if not _is_arrays(x):
        return
    if isinstance(x, (list, tuple)) and len(x) != len(getattr(model, "inputs", None) or ()):
        return                  # not one array per model input: fit reports how to pass it
    xs = _flatten(x)
    ys = _flatten(y) if _is_arrays(y) else []
    ws = _flatten(weights) if _is_arrays(weights) else []
    _check_lengths(where, x_name, xs, y_name, ys, ws)
    for name, arrays in ((x_name, xs), (y_name, ys)):
        for i, array in enumerate(arrays):
            label = name if len(arrays) == 1 else f"{name} (array {i})"
            _check_finite(where, label, array)
    if internals.is_graph_model(model):
        model_inputs(x, model, f"data of {where}")
    if loss is not None and len(ys) == 1 and len(getattr(model, "outputs", None) or ()) == 1:
        _check_targets(model, loss, ys[0], where, y_name)


def _check_lengths(where, x_name, xs, y_name, ys, ws):
    counts = {f"{x_name}" if len(xs) == 1 else f"{x_name} (array {i})": len(a)
              for i, a in enumerate(xs)}
    counts |= {f"{y_name}" if len(ys) == 1 else f"{y_name} (array {i})": len(a)
               for i, a in enumerate(ys)}
    counts |= {"sample_weight" if len(ws) == 1 else f"sample_weight (array {i})": len(a)
               for i, a in enumerate(ws)}
    if len(set(counts.values())) > 1:
        items = list(counts.items())
        received = ", ".join(f"{k} with {n} samples" for k, n in items[:6]) + (
            f" and {len(items) - 6} more arrays" if len(items) > 6 else "")
        raise DataError(
            f"The arrays of {where} must hold the same number of samples (one row per "
            f"sample). Received: {received}. Pass inputs and targets of the same length."
        )
    if counts and not next(iter(counts.values())):
        raise DataError(f"{where} needs at least one sample. Received: {x_name} with 0 samples.")


def _check_finite(where, name, array):
    if not np.issubdtype(array.dtype, np.floating) and not np.issubdtype(
            array.dtype, np.complexfloating):
        return
    if np.isfinite(np.sum(array, dtype=np.float64 if array.dtype != np.complex128 else None)):
        return                  # NaN and inf propagate through a sum: all finite
    flat = array.reshape(len(array), -1) if array.ndim > 1 else array.reshape(-1, 1)
    rows = max(1, _CHUNK // max(1, flat.shape[1]))
    nan = inf = 0
    first = None
    for start in range(0, len(flat), rows):
        chunk = flat[start:start + rows]
        bad_nan, bad_inf = np.isnan(chunk), np.isinf(chunk)
        nan += int(bad_nan.sum())
        inf += int(bad_inf.sum())
        if first is None and (bad_nan.any() or bad_inf.any()):
            first = start + int(np.flatnonzero((bad_nan | bad_inf).any(axis=1))[0])
    if nan or inf:
        raise DataError(
            f"{name} of {where} must be finite numbers. Received: {name} with {nan} NaN and "
            f"{inf} infinite values (the first in sample {first}). Drop or impute those "
            f"samples, e.g. keep = np.isfinite({name.split(' ')[0]}).reshape(len(x), -1)"
            ".all(axis=1)."
        )


def _check_targets(model, loss, y, where, y_name):
    kind, loss_name, ignore_class = loss
    shape = tuple(model.outputs[0].shape)
    classes = shape[-1] if len(shape) > 1 else None
    rank = len(shape)
    if kind == _SPARSE:
        _check_sparse(y, where, y_name, loss_name, classes, rank, ignore_class)
    elif kind == _CATEGORICAL:
        _check_categorical(y, where, y_name, loss_name, classes, rank)
    elif kind == _BINARY:
        _check_range(y, where, y_name, loss_name, 0, 1, "values in [0, 1]")


def _check_sparse(y, where, y_name, loss_name, classes, rank, ignore_class):
    if classes is not None and classes > 1 and y.ndim == rank and y.shape[-1] == classes:
        looks = "one-hot rows" if _one_hot(y) else f"rows of {classes} values"
        raise DataError(
            f"The loss {loss_name} takes integer class labels, shape {y.shape[:-1]}. "
            f"Received: {y_name} of {where} of shape {y.shape}: {looks}. Pass "
            "integer labels (y.argmax(axis=-1)), or compile the model with "
            "keras.losses.CategoricalCrossentropy."
        )
    if y.ndim not in (rank - 1, rank) or (y.ndim == rank and y.shape[-1] != 1):
        raise DataError(
            f"The loss {loss_name} takes one integer class label per output row: targets of "
            f"shape (samples{', ...' if rank > 2 else ''}) for outputs of rank {rank}. "
            f"Received: {y_name} of {where} of shape {y.shape}."
        )
    values = np.asarray(y)
    if not (np.issubdtype(values.dtype, np.integer) or np.issubdtype(values.dtype, np.bool_)):
        if np.issubdtype(values.dtype, np.floating):
            fractional = values[values != np.round(values)]
            if fractional.size:
                raise DataError(
                    f"The loss {loss_name} takes integer class labels. Received: {y_name} of "
                    f"{where} with non-integer values such as {_number(fractional.flat[0])}. Pass "
                    "class indices 0, 1, 2, ..."
                )
        else:
            raise DataError(
                f"The loss {loss_name} takes integer class labels. Received: {y_name} of "
                f"{where} of dtype {values.dtype}. Pass class indices 0, 1, 2, ..."
            )
    if classes is None or classes < 2:
        return
    if ignore_class is not None:
        values = values[values != ignore_class]
    if values.size == 0:
        return
    low, high = values.min(), values.max()
    if low < 0 or high >= classes:
        outside = int(np.count_nonzero((values < 0) | (values >= classes)))
        raise DataError(
            f"The model has {classes} outputs, so the loss {loss_name} takes labels 0 to "
            f"{classes - 1}. Received: {y_name} of {where} with labels from {_number(low)} to "
            f"{_number(high)} ({outside} outside 0..{classes - 1}). Map the labels to 0.."
            f"{classes - 1}, or give the model's last layer as many outputs as classes."
        )


def _check_categorical(y, where, y_name, loss_name, classes, rank):
    if classes is None:
        return
    if classes > 1 and (y.ndim == rank - 1 or (y.ndim == rank and y.shape[-1] == 1)):
        raise DataError(
            f"The loss {loss_name} takes one-hot targets with {classes} columns, one per "
            f"class. Received: {y_name} of {where} of shape {y.shape}, which looks like integer "
            f"labels. Pass keras.utils.to_categorical(y, {classes}), or compile the model with "
            "keras.losses.SparseCategoricalCrossentropy."
        )
    if y.ndim != rank or y.shape[-1] != classes:
        raise DataError(
            f"The loss {loss_name} takes targets shaped like the model's output, with "
            f"{classes} columns. Received: {y_name} of {where} of shape {y.shape}."
        )
    _check_range(y, where, y_name, loss_name, 0, 1, "one-hot or probability rows in [0, 1]")


def _check_range(y, where, y_name, loss_name, low, high, expected):
    values = np.asarray(y)
    if values.dtype == np.bool_ or values.size == 0:
        return
    smallest, largest = values.min(), values.max()
    if smallest < low or largest > high:
        raise DataError(
            f"The loss {loss_name} takes {expected}. Received: {y_name} of {where} with values "
            f"from {_number(smallest)} to {_number(largest)}."
        )


def _one_hot(y):
    values = np.asarray(y)
    return bool(np.isin(values, (0, 1)).all() and np.all(values.sum(axis=-1) == 1))


def _number(value):
    value = value.item() if hasattr(value, "item") else value
    return f"{value:g}" if isinstance(value, float) else str(value)


# ------------------------------------------------------------------ structures
def _is_array(value):
    return hasattr(value, "shape") and hasattr(value, "dtype") and len(
        getattr(value, "shape", ())) > 0


def _is_arrays(value):
    """An array, or a non-empty list/tuple/dict of arrays (not a dataset)."""
    if _is_array(value):
        return True
    if isinstance(value, dict):
        return bool(value) and all(_is_array(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return bool(value) and all(_is_array(v) for v in value)
    return False


def _flatten(value):
    if isinstance(value, dict):
        items = [value[k] for k in sorted(value)]
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        items = [value]
    return [np.asarray(a) for a in items]


# ------------------------------------------------------------------ the loss
def _loss_of(model, compile_kwargs):
    """``(kind, name, ignore_class)`` of the training loss, or None when it is not one we check."""
    if isinstance(compile_kwargs, dict) and "loss" in compile_kwargs:
        loss = compile_kwargs["loss"]
    else:
        loss = getattr(model, "loss", None)
        if loss is None and getattr(model, "compiled", False):
            loss = (model.get_compile_config() or {}).get("loss")
    name, ignore_class = _loss_name(loss)
    if name is None:
        return None
    flat = name.lower().replace("_", "")
    if "sparsecategorical" in flat:
        kind = _SPARSE
    elif "categoricalcrossentropy" in flat or "categoricalfocal" in flat:
        kind = _CATEGORICAL
    elif "binarycrossentropy" in flat or "binaryfocal" in flat:
        kind = _BINARY
    else:
        return None
    return kind, name, ignore_class


def _loss_name(loss):
    if loss is None or isinstance(loss, (list, tuple)):
        return None, None
    if isinstance(loss, str):
        return loss, None
    if isinstance(loss, dict):
        if "class_name" in loss:        # a serialized loss (get_compile_config)
            config = loss.get("config") or {}
            name = config.get("name") if isinstance(config, dict) else None
            ignore = config.get("ignore_class") if isinstance(config, dict) else None
            return name or loss["class_name"], ignore
        return None, None               # one loss per output
    kwargs = getattr(loss, "_fn_kwargs", None) or {}
    fn = getattr(loss, "fn", None)
    name = getattr(fn, "__name__", None) or getattr(loss, "name", None) or getattr(
        loss, "__name__", None) or type(loss).__name__
    return name, kwargs.get("ignore_class")
