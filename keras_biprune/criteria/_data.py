"""A few batches of data, from anything ``fit`` accepts as ``validation_data``."""

import itertools

import keras
import numpy as np

from keras_biprune import _keras_internals as internals
from keras_biprune.criteria.base import CriterionError

_FORMS = (
    "an array (x), a tuple (x, y) or (x, y, sample_weight) of arrays, a tf.data.Dataset, "
    "a keras.utils.PyDataset or another iterable of such batches"
)


def batches(data, model, criterion, max_batches, batch_size, need_y=False):
    """Yields up to ``max_batches`` batches ``(xs, y)`` of NumPy data.

    Args:
        data: an array or dict of arrays (inputs only); a tuple or list
            ``(x,)``, ``(x, y)`` or ``(x, y, sample_weight)`` of arrays, cut
            into batches of ``batch_size``; or an iterable of such tuples
            (``tf.data.Dataset``, ``keras.utils.PyDataset``, a generator),
            already batched. A model with several inputs takes ``x`` as a
            list (in ``model.inputs`` order) or a dict keyed by input name.
        model: the model the data is for.
        criterion: the criterion's name, for error messages.
        max_batches: the most batches to yield.
        batch_size: the batch size used to cut arrays.
        need_y: raise unless the data has targets.

    Yields:
        ``(xs, y)``: ``xs`` one array per model input (in the order of the
        model's graph), ``y`` the targets' structure of arrays or None.
    """
    if data is None:
        raise CriterionError(
            f"The {criterion!r} criterion runs the model on data. Received: data=None. "
            f"Pass data as {_FORMS}, e.g. data=(x_val, y_val)."
        )
    if hasattr(data, "shape") or isinstance(data, (dict, list, tuple)):
        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        stream = _cut(x, y, batch_size, criterion)
    elif hasattr(data, "__iter__"):
        stream = (keras.utils.unpack_x_y_sample_weight(item)[:2] for item in data)
    else:
        raise CriterionError(
            f"Cannot read data for the {criterion!r} criterion. Received: data of type "
            f"{type(data).__name__}. Pass {_FORMS}."
        )
    count = 0
    for x, y in itertools.islice(stream, max_batches):
        if need_y and y is None:
            raise CriterionError(
                f"The {criterion!r} criterion needs targets to compute a loss. Received: "
                "data without y. Pass data=(x, y) or a dataset of (x, y) batches."
            )
        count += 1
        yield _inputs(x, model, criterion), keras.tree.map_structure(np.asarray, y)
    if count == 0:
        raise CriterionError(
            f"The {criterion!r} criterion received no batch. Received: empty data. "
            "Pass at least one sample."
        )


def _cut(x, y, batch_size, criterion):
    arrays = keras.tree.flatten(x) + ([] if y is None else keras.tree.flatten(y))
    lengths = {np.shape(a)[0] if np.ndim(a) else 0 for a in arrays}
    if len(lengths) != 1:
        raise CriterionError(
            f"The arrays of data for the {criterion!r} criterion must have one sample "
            f"count. Received: sample counts {sorted(lengths)}."
        )
    n = lengths.pop()
    for start in range(0, n, batch_size):
        part = slice(start, start + batch_size)
        yield _take(x, part), None if y is None else _take(y, part)


def _take(structure, part):
    return keras.tree.map_structure(lambda a: a[part], structure)


def _inputs(x, model, criterion):
    """The arrays of ``x`` in graph input order, checked against the model's inputs."""
    inputs = internals.graph_of(model)[0]
    if isinstance(x, dict):
        names = [internals.input_name(t) for t in inputs]
        missing = sorted(set(names) - set(x))
        if missing:
            raise CriterionError(
                f"Model {model.name!r} has inputs {names}. Received: x with keys "
                f"{sorted(x)}, missing {missing}. Key x by input name."
            )
        arrays = [x[name] for name in names]
    else:
        arrays = keras.tree.flatten(x)
    if len(arrays) != len(inputs):
        raise CriterionError(
            f"Model {model.name!r} has {len(inputs)} input(s). Received: x with "
            f"{len(arrays)} array(s). Pass one array per input, as a list or a dict."
        )
    arrays = [np.asarray(a) for a in arrays]
    for array, tensor in zip(arrays, inputs):
        expected = tuple(tensor.shape[1:])
        received = array.shape[1:]
        if len(received) != len(expected) or any(
            e is not None and e != r for e, r in zip(expected, received)
        ):
            raise CriterionError(
                f"Input {internals.input_name(tensor)!r} of model {model.name!r} takes "
                f"samples of shape {expected}. Received: a batch of shape {array.shape} for "
                f"the {criterion!r} criterion. Pass data shaped like the model's input."
            )
    return arrays
