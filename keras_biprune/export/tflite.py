"""TensorFlow Lite export (float and int8) and a runner for the result."""

import itertools
import os
import pathlib
import sys
import tempfile
import warnings

import numpy as np

from keras_biprune import _backend
from keras_biprune import _keras_internals as internals
from keras_biprune._data import batches
from keras_biprune._stdio import captured_stderr, replay
from keras_biprune._validate import check_int
from keras_biprune.errors import DataError, InvalidExportError, UnsupportedModelError

QUANTIZE_OPTIONS = (None, "int8")
"""Values of ``to_tflite(quantize=...)``."""


def to_tflite(model, path=None, *, quantize=None, representative_data=None, num_calibration=100):
    """Converts a Keras 3 model to TensorFlow Lite, in float or int8.

    With ``quantize="int8"`` the model is quantized after training
    (full-integer post-training quantization): weights and activations are
    int8, their ranges measured on ``representative_data``. The model's input
    and output stay float32 (the model quantizes its input and dequantizes its
    output itself), so the int8 file is a drop-in replacement of the float one.

    Args:
        model: a Keras 3 model (TensorFlow backend).
        path: optional file to write the model to (``.tflite``).
        quantize: ``None`` (float32) or ``"int8"``.
        representative_data: samples like the model's inputs, to calibrate the
            int8 ranges (required for ``"int8"``): an array ``x``, a tuple
            ``(x, y)`` of arrays, or a batched ``tf.data.Dataset`` (or another
            iterable) of ``x`` or ``(x, y)`` batches; ``y`` is ignored.
        num_calibration: the most samples of ``representative_data`` to use.

    Returns:
        The TFLite flatbuffer, as bytes.

    Example:

    ```python
    from keras_biprune.export import run_tflite, to_tflite
    float_bytes = to_tflite(slim_model, "slim.tflite")
    int8_bytes = to_tflite(slim_model, "slim_int8.tflite", quantize="int8",
                           representative_data=x_train[:200])
    predictions = run_tflite(int8_bytes, x_test)
    ```
    """
    _backend.require_tensorflow("TFLite export")
    import tensorflow as tf

    samples = _samples_for(model, quantize, representative_data, num_calibration)
    with tempfile.TemporaryDirectory() as directory:
        model.export(directory, format="tf_saved_model", verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(directory)
        flatbuffer = convert(converter, samples)
    if path is not None:
        pathlib.Path(path).write_bytes(flatbuffer)
    return flatbuffer


def convert(converter, samples=None):
    """Runs a ``tf.lite.TFLiteConverter``: float without ``samples``, else full int8.

    Args:
        converter: a ``tf.lite.TFLiteConverter`` with default settings.
        samples: ``None``, or a list of calibration inputs for int8 (as
            `calibration_samples` returns).
    """
    import tensorflow as tf

    if samples is not None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: iter(samples)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning, module=r"tensorflow\.lite")
        converted = False
        try:
            with captured_stderr() as captured:   # the converter's C++ logs go to fd 2
                flatbuffer = converter.convert()
            converted = True
        finally:
            text = "".join(captured)
            if converted:
                replay(text, drop=_CONVERTER_CHATTER)
            elif text:
                sys.stderr.write(text)            # a failed conversion keeps every line
    return flatbuffer


# What TFLiteConverter.convert writes on every successful run.
_CONVERTER_CHATTER = (
    r"^fully_quantize: ",
    r"\] Ignored output_format\.$",
    r"\] Ignored drop_control_dependency\.$",
    r"\] Skipping runtime version metadata in the model",
)


def calibration_samples(model, data, num_calibration):
    """Up to ``num_calibration`` single-sample input lists from ``data``, as float arrays."""
    check_int("num_calibration", num_calibration, 1, InvalidExportError,
              "It is how many samples calibrate the int8 ranges: use e.g. num_calibration=100.")
    if not internals.is_graph_model(model):
        raise UnsupportedModelError(
            "int8 calibration reads data shaped like a functional or Sequential model's "
            f"inputs. Received: model of type {type(model).__name__}. Export a functional "
            "model, or convert this one in float (quantize=None)."
        )
    stream = batches(data, model, "int8 calibration", max_batches=num_calibration, batch_size=32)
    dtypes = [t.dtype for t in model.inputs]
    singles = (
        [a[i : i + 1].astype(dtype) for a, dtype in zip(xs, dtypes)]
        for xs, _ in stream
        for i in range(len(xs[0]))
    )
    return list(itertools.islice(singles, num_calibration))


def _samples_for(model, quantize, data, num_calibration):
    if quantize not in QUANTIZE_OPTIONS:
        raise InvalidExportError(
            f"to_tflite converts to float (quantize=None) or full-integer int8 "
            f"(quantize='int8'). Received: quantize={quantize!r}."
        )
    if quantize is None:
        return None
    if data is None:
        raise DataError(
            "int8 quantization measures activation ranges on sample inputs. Received: "
            "representative_data=None. Pass e.g. representative_data=x_train[:200] "
            "(arrays, (x, y), or a batched tf.data.Dataset)."
        )
    return calibration_samples(model, data, num_calibration)


def run_tflite(model, x, batch_size=256):
    """Runs a TFLite model on ``x`` and returns its predictions.

    Int8 (or uint8) inputs and outputs are quantized and dequantized with the
    model's own scale and zero point, so ``x`` is float either way.

    Args:
        model: the flatbuffer as bytes, or the path of a ``.tflite`` file, of
            a model with one input.
        x: an array of inputs, samples along the first axis.
        batch_size: samples per interpreter call.

    Returns:
        A float array of predictions (a list of arrays for several outputs,
        in the interpreter's output order).

    Example:

    ```python
    from keras_biprune.export import run_tflite, to_tflite
    logits = run_tflite(to_tflite(model), x_test)
    accuracy = (logits.argmax(-1) == y_test).mean()
    ```
    """
    interpreter = _interpreter(model)
    (source,) = _single_input(interpreter)
    x = np.asarray(x)
    if len(x) == 0:
        raise DataError("run_tflite needs at least one sample. Received: x with 0 samples.")
    outputs = []
    for start in range(0, len(x), batch_size):
        batch = x[start : start + batch_size]
        if start == 0 or len(batch) != batch_size:
            interpreter.resize_tensor_input(source["index"], batch.shape)
            interpreter.allocate_tensors()
        interpreter.set_tensor(source["index"], _quantize(batch, source))
        interpreter.invoke()
        outputs.append(
            [_dequantize(interpreter.get_tensor(d["index"]), d)
             for d in interpreter.get_output_details()]
        )
    merged = [np.concatenate(parts) for parts in zip(*outputs)]
    return merged[0] if len(merged) == 1 else merged


def _interpreter(model):
    if isinstance(model, (bytes, bytearray)):
        kwargs = {"model_content": bytes(model)}
    elif isinstance(model, (str, os.PathLike)) and os.path.isfile(model):
        kwargs = {"model_path": os.fspath(model)}
    else:
        raise InvalidExportError(
            "run_tflite runs a TFLite model given as bytes or as the path of a .tflite file. "
            f"Received: model={str(model)[:80]!r} of type {type(model).__name__}. "
            "Pass the bytes to_tflite returned, or its path."
        )
    import tensorflow as tf

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning, module=r"tensorflow\.lite")
        return tf.lite.Interpreter(**kwargs)


def _single_input(interpreter):
    details = interpreter.get_input_details()
    if len(details) != 1:
        raise InvalidExportError(
            f"run_tflite runs models with one input. Received: a model with {len(details)} "
            "inputs. Use tf.lite.Interpreter(...).get_signature_runner() for several inputs."
        )
    return details


def _quantize(x, detail):
    dtype = detail["dtype"]
    if not np.issubdtype(dtype, np.integer):
        return x.astype(dtype)
    scale, zero_point = detail["quantization"]
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale + zero_point), info.min, info.max).astype(dtype)


def _dequantize(y, detail):
    if not np.issubdtype(detail["dtype"], np.integer):
        return y.astype(np.float32, copy=True)
    scale, zero_point = detail["quantization"]
    return ((y.astype(np.float32) - zero_point) * scale).astype(np.float32)
