"""Writers of the file formats a pruned model ships in: ``.keras``, SavedModel, JSON."""

import json
import os
import pathlib

import keras
import numpy as np

from keras_biprune import _backend
from keras_biprune.errors import InvalidExportError
from keras_biprune.plan import PruningPlan


def save_keras(model, path):
    """Saves ``model`` as a ``.keras`` archive (architecture, weights, compile state).

    A model with a `keras_biprune.layers.ChannelSelect` layer loads back once
    ``keras_biprune.layers`` is imported: ``import keras_biprune`` does it when
    Keras is already imported, and so does any use of the library.

    Args:
        model: a Keras 3 model.
        path: the file to write; must end in ``.keras``.

    Returns:
        ``path``, as a string.

    Example:

    ```python
    from keras_biprune.export import save_keras
    save_keras(slim_model, "slim.keras")
    reloaded = keras.saving.load_model("slim.keras")
    ```
    """
    path = os.fspath(path)
    if not path.endswith(".keras"):
        raise InvalidExportError(
            f"save_keras writes a .keras archive. Received: path={path!r}. "
            "Use a file name ending in '.keras', e.g. 'model.keras'."
        )
    keras.saving.save_model(model, path)
    return path


def save_saved_model(model, directory):
    """Exports ``model`` for inference as a TensorFlow SavedModel.

    The artifact has one endpoint, ``serve``, that runs the model in inference
    mode; it needs neither Keras nor ``keras_biprune`` to run.

    Args:
        model: a Keras 3 model (TensorFlow backend).
        directory: the directory to write.

    Returns:
        ``directory``, as a string.

    Example:

    ```python
    import tensorflow as tf
    from keras_biprune.export import save_saved_model
    save_saved_model(slim_model, "slim_savedmodel")
    outputs = tf.saved_model.load("slim_savedmodel").serve(x)
    # or, as a Keras layer:
    layer = keras.layers.TFSMLayer("slim_savedmodel", call_endpoint="serve")
    ```
    """
    _backend.require_tensorflow("SavedModel export")
    directory = os.fspath(directory)
    model.export(directory, format="tf_saved_model", verbose=False)
    return directory


def save_plan(plan, path):
    """Writes a `PruningPlan` as JSON, to replay with ``PruningPlan.from_json``.

    Args:
        plan: the `keras_biprune.PruningPlan` to write.
        path: the file to write (``plan.json``).

    Returns:
        ``path``, as a string.

    Example:

    ```python
    import keras_biprune as kb
    from keras_biprune.export import save_plan
    save_plan(plan, "plan.json")
    with open("plan.json") as f:
        slim = kb.apply_plan(model, kb.PruningPlan.from_json(f.read()))
    ```
    """
    if not isinstance(plan, PruningPlan):
        raise InvalidExportError(
            f"save_plan writes a keras_biprune.PruningPlan. Received: plan of type "
            f"{type(plan).__name__}. Pass the plan (e.g. pruner.plan_), or write other "
            "data with save_report."
        )
    return _write_json(json.loads(plan.to_json()), path)


def save_report(report, path):
    """Writes a report (a dict of results) as JSON, NumPy values converted.

    NumPy scalars become Python numbers, arrays become lists, tuples and sets
    become lists, paths become strings, dict keys become strings.

    Args:
        report: a dict of JSON-able values, NumPy values included.
        path: the file to write (``report.json``).

    Returns:
        ``path``, as a string.

    Example:

    ```python
    import numpy as np
    from keras_biprune.export import save_report
    save_report({"accuracy": np.float32(0.91), "kept": np.arange(3)}, "report.json")
    ```
    """
    if not isinstance(report, dict):
        raise InvalidExportError(
            f"save_report writes a dict. Received: report of type {type(report).__name__}. "
            "Pass e.g. {'accuracy': 0.91, 'flops': 1.2e6}."
        )
    return _write_json(jsonable(report), path)


def jsonable(value, where="report"):
    """``value`` with NumPy types, tuples, sets and paths turned into JSON types."""
    if isinstance(value, dict):
        return {_key(k, where): jsonable(v, f"{where}[{k!r}]") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, (set, frozenset)):
        return sorted((jsonable(v, where) for v in value), key=json.dumps)
    if isinstance(value, (np.ndarray, np.generic)):
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    raise InvalidExportError(
        f"A report holds JSON values (numbers, strings, lists, dicts, NumPy values). "
        f"Received: {where} of type {type(value).__name__}. Convert it first, "
        "e.g. str(value) or value.get_config()."
    )


def _key(key, where):
    key = jsonable(key, where)
    if not isinstance(key, (str, int, float, bool)) and key is not None:
        raise InvalidExportError(
            f"Report keys must be strings or numbers. Received: a key {key!r} in {where}."
        )
    return key if isinstance(key, str) else json.dumps(key)


def _write_json(data, path):
    path = pathlib.Path(path)
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return os.fspath(path)
