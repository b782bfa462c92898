"""Data as the library reads it: batches, sample draws, hold-outs and ``fit`` inputs.

Everything that turns what a user passes as data into what the library
needs goes through here: `batches` reads anything ``fit`` accepts as
``validation_data`` into NumPy batches, `samples` concatenates the first
(or a random subset of the) samples, `hold_out` splits training data,
`as_dataset` and `fit_inputs` feed arrays to ``model.fit`` as a fast
``tf.data`` pipeline, `even_split` cuts arrays so that a distribution's
devices share every batch.
"""

import functools
import itertools
import logging
import math

import keras
import numpy as np

from keras_biprune import _backend
from keras_biprune import _keras_internals as internals
from keras_biprune.errors import DataError, MissingDependencyError, TrainingError

logger = logging.getLogger(__name__)

_FORMS = (
    "an array (x), a tuple (x, y) or (x, y, sample_weight) of arrays, a tf.data.Dataset, "
    "a keras.utils.PyDataset or another iterable of such batches"
)


def batches(data, model, who, max_batches, batch_size, need_y=False):
    """Yields up to ``max_batches`` batches ``(xs, y)`` of NumPy data.

    Args:
        data: an array or dict of arrays (inputs only); a tuple or list
            ``(x,)``, ``(x, y)`` or ``(x, y, sample_weight)`` of arrays, cut
            into batches of ``batch_size``; or an iterable of such tuples
            (``tf.data.Dataset``, ``keras.utils.PyDataset``, a generator),
            already batched. A model with several inputs takes ``x`` as a
            list (in ``model.inputs`` order) or a dict keyed by input name.
        model: the model the data is for.
        who: what reads the data (``"evaluator"``, ``"'taylor' criterion"``), for messages.
        max_batches: the most batches to yield.
        batch_size: the batch size used to cut arrays.
        need_y: raise unless the data has targets.

    Yields:
        ``(xs, y)``: ``xs`` one array per model input (in the order of the
        model's graph), ``y`` the targets' structure of arrays or None.
    """
    if data is None:
        raise DataError(
            f"The {who} runs the model on data. Received: data=None. "
            f"Pass data as {_FORMS}, e.g. data=(x_val, y_val)."
        )
    if hasattr(data, "shape") or isinstance(data, (dict, list, tuple)):
        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        stream = _cut(x, y, batch_size, who)
    elif hasattr(data, "__iter__"):
        stream = (keras.utils.unpack_x_y_sample_weight(item)[:2] for item in data)
    else:
        raise DataError(
            f"Cannot read data for the {who}. Received: data of type "
            f"{type(data).__name__}. Pass {_FORMS}."
        )
    count = 0
    for x, y in itertools.islice(stream, max_batches):
        if need_y and y is None:
            raise DataError(
                f"The {who} needs targets. Received: "
                "data without y. Pass data=(x, y) or a dataset of (x, y) batches."
            )
        count += 1
        yield model_inputs(x, model, who), keras.tree.map_structure(np.asarray, y)
    if count == 0:
        raise DataError(
            f"The {who} received no batch. Received: empty data. "
            "Pass at least one sample."
        )


def _cut(x, y, batch_size, who):
    arrays = [np.asarray(a) for a in keras.tree.flatten(x)]
    targets = [] if y is None else [np.asarray(a) for a in keras.tree.flatten(y)]
    lengths = {len(a) for a in arrays + targets}
    if len(lengths) != 1:
        raise DataError(
            f"The arrays of data for the {who} must have one sample "
            f"count. Received: sample counts {sorted(lengths)}."
        )
    n = lengths.pop()
    for i in range(math.ceil(n / batch_size)):
        cut = functools.partial(_part, part=slice(i * batch_size, (i + 1) * batch_size))
        yield (
            keras.tree.map_structure(cut, x),
            None if y is None else keras.tree.map_structure(cut, y),
        )


def _part(array, part):
    return array[part]


def model_inputs(x, model, who):
    """The arrays of ``x`` in graph input order, checked against the model's inputs."""
    inputs = internals.graph_of(model)[0]
    if isinstance(x, dict):
        names = [internals.input_name(t) for t in inputs]
        missing = sorted(set(names) - set(x))
        if missing:
            raise DataError(
                f"Model {model.name!r} has inputs {names}. Received: x with keys "
                f"{sorted(x)}, missing {missing}. Key x by input name."
            )
        arrays = [x[name] for name in names]
    else:
        arrays = keras.tree.flatten(x)
    if len(arrays) != len(inputs):
        raise DataError(
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
            raise DataError(
                f"Input {internals.input_name(tensor)!r} of model {model.name!r} takes "
                f"samples of shape {expected}. Received: a batch of shape {array.shape} for "
                f"the {who}. Pass data shaped like the model's input."
            )
    return arrays


def samples(data, model, who, count, batch_size, *, subset=False, seed=None, need_y=False):
    """``(xs, y)``: the first batches of ``data`` that hold at least ``count`` samples.

    Args:
        data: as for `batches`.
        model: the model the data is for.
        who: what reads the data, for messages.
        count: the samples wanted (fewer when the data holds fewer).
        batch_size: the batch size used to cut arrays.
        subset: when ``data`` is a tuple of arrays, read a random subset of
            ``count`` samples (in their original order) instead of the
            first ones.
        seed: the seed of that subset.
        need_y: raise unless the data has targets, and return them.

    Returns:
        ``xs``, one array per model input, and ``y``, the targets
        concatenated (None unless ``need_y``); whole batches are kept, so
        there may be more than ``count`` samples.
    """
    if subset and isinstance(data, (tuple, list)) and len(data) in (2, 3) \
            and hasattr(data[0], "shape"):
        x, y = data[0], data[1]
        n = len(x)
        if n and len(y) == n:
            pick = np.sort(np.random.default_rng(seed).permutation(n)[:count])
            data = (x[pick], y[pick])
    xs, ys, read = [], [], 0
    for batch_x, batch_y in batches(data, model, who, None, batch_size, need_y=need_y):
        xs.append(batch_x)
        ys.append(batch_y)
        read += len(batch_x[0])
        if read >= count:
            break
    arrays = [np.concatenate([b[i] for b in xs]) for i in range(len(xs[0]))]
    return arrays, np.concatenate([np.asarray(b) for b in ys]) if need_y else None


def hold_out(x, y, fraction, seed):
    """``(x_kept, y_kept, held)``: ``fraction`` of the training data held out, or None.

    NumPy arrays ``x`` and ``y`` lose a random ``fraction`` of their samples
    (at least one) to ``held = (x_held, y_held)``, both parts in their
    original order; a ``tf.data.Dataset`` of known length holds out its
    first ``fraction`` of batches (``y_kept`` None). Other data (generators,
    datasets of unknown length) cannot be split: None.
    """
    if isinstance(x, np.ndarray) and y is not None:
        n = len(x)
        order = np.random.default_rng(seed).permutation(n)
        n_held = max(1, round(fraction * n))
        held, kept = np.sort(order[:n_held]), np.sort(order[n_held:])
        return x[kept], y[kept], (x[held], y[held])
    if hasattr(x, "take") and hasattr(x, "skip") and hasattr(x, "cardinality"):
        count = int(x.cardinality())
        if count > 1:
            n_held = max(1, round(fraction * count))
            return x.skip(n_held), None, x.take(n_held)
    return None


def as_dataset(x, y=None, batch_size=32, shuffle=False, seed=None):
    """Wraps arrays in a batched ``tf.data.Dataset`` that ``model.fit`` consumes fast.

    Keras 3 ``fit`` on NumPy arrays (TensorFlow backend) idles 35–45 s after
    every epoch in the input iterator's teardown; a dataset with tf.data
    autotuning disabled does not.

    Args:
        x: inputs, an array whose first axis indexes the samples.
        y: targets with the same first axis, or ``None`` for inputs only.
        batch_size: samples per batch (the last batch may be smaller).
        shuffle: reshuffle the samples every epoch.
        seed: seed of the shuffle.

    Returns:
        A ``tf.data.Dataset`` of ``(x, y)`` batches (or ``x`` batches).

    Example:

    ```python
    from keras_biprune.datasets import as_dataset, load_digits
    (x_train, y_train), _ = load_digits()
    model.fit(as_dataset(x_train, y_train, batch_size=64, shuffle=True, seed=0), epochs=5)
    ```
    """
    try:
        import tensorflow as tf
    except ImportError:
        raise MissingDependencyError(
            "as_dataset builds a tf.data.Dataset, which needs TensorFlow. Received: no "
            f"tensorflow module (Keras runs on {keras.backend.backend()!r}). Install "
            "tensorflow, or pass the arrays to fit as they are."
        ) from None

    data = tf.data.Dataset.from_tensor_slices(x if y is None else (x, y))
    if shuffle:
        data = data.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    options = tf.data.Options()
    options.autotune.enabled = False
    return data.batch(batch_size).prefetch(1).with_options(options)


def even_split(data, batch_size, who):
    """``data``, a tuple ``(x, y, …)`` of arrays, without the samples that a distribution's
    devices cannot share.

    Keras on JAX splits every batch of a ``keras.distribution`` (such as
    ``DataParallel``) evenly among the devices of its batch axis and refuses a
    batch that does not split. Arrays lose their last ``(n % batch_size) %
    devices`` samples (fewer than the devices), so that their last batch
    splits too; anything else, and arrays without a distribution, are
    returned as they are. ``None`` entries (no targets) stay None.

    Raises:
        TrainingError: ``batch_size`` is not a multiple of the devices.
    """
    parts = _backend.batch_parts()
    arrays = keras.tree.flatten(data[0])
    if parts == 1 or not arrays or not isinstance(arrays[0], np.ndarray):
        return data
    if batch_size % parts:
        raise TrainingError(
            f"The keras.distribution splits every batch among {parts} devices. Received: "
            f"batch_size={batch_size} for the {who}. Pass a multiple of {parts}."
        )
    n = len(arrays[0])
    drop = n % batch_size % parts
    if not drop:
        return data
    logger.info("The %s leaves out its last %d of %d samples, so that %d devices share "
                "every batch evenly.", who, drop, n, parts)
    cut = functools.partial(_part, part=slice(0, n - drop))
    return tuple(None if part is None else keras.tree.map_structure(cut, part) for part in data)


def fit_inputs(x, y, fit_kwargs, seed):
    """NumPy arrays become a tf.data pipeline without autotuning (TensorFlow backend); on
    other backends arrays are cut to batches the distribution's devices share (`even_split`)."""
    if keras.backend.backend() != "tensorflow" or not isinstance(x, np.ndarray):
        if hasattr(x, "cardinality"):          # a tf.data.Dataset batches and shuffles itself
            fit_kwargs = {"shuffle": False, **fit_kwargs}
        batch_size = fit_kwargs.get("batch_size") or 32
        x, y = even_split((x, y), batch_size, "fine-tuning")
        validation = fit_kwargs.get("validation_data")
        if isinstance(validation, tuple):
            fit_kwargs = {**fit_kwargs, "validation_data": even_split(
                validation, fit_kwargs.get("validation_batch_size") or batch_size,
                "validation")}
        return x, {"y": y, **fit_kwargs} if y is not None else fit_kwargs
    kwargs = dict(fit_kwargs)
    batch_size = kwargs.pop("batch_size", None) or 32
    shuffle = kwargs.pop("shuffle", True)
    if "validation_split" in kwargs:
        raise TrainingError(
            "validation_split is not supported here: the pruner already holds out search data. "
            "Received: validation_split. Pass validation_data=(x_val, y_val) instead."
        )
    validation = kwargs.get("validation_data")
    if isinstance(validation, tuple) and isinstance(validation[0], np.ndarray):
        kwargs["validation_data"] = as_dataset(*validation[:2], batch_size=batch_size)
    kwargs["shuffle"] = False          # the dataset shuffles itself
    return as_dataset(x, y, batch_size=batch_size, shuffle=shuffle, seed=seed), kwargs
