"""Runtimes a model is timed on: a compiled TensorFlow call or the TFLite interpreter.

`forward_call` turns a Keras model into a zero-argument call that runs one
forward pass of a fixed random batch; `paired` times several calls in turn.
TensorFlow is imported inside the functions, so this module loads on every
backend.
"""

import os
import time
import warnings

import numpy as np

from keras_biprune.errors import MissingDependencyError, SearchError

RUNTIMES = ("tf", "tflite")


def check_runtime(runtime):
    """Raises unless ``runtime`` is one of `RUNTIMES` and installed here.

    Raises:
        SearchError: an unknown runtime name.
        MissingDependencyError: TensorFlow (``"tf"``, ``"tflite"``) or its
            TFLite interpreter (``"tflite"``) cannot be imported.
    """
    if runtime not in RUNTIMES:
        raise SearchError(f"runtime must be one of {RUNTIMES}. Received: runtime={runtime!r}.")
    try:
        import tensorflow as tf
    except ImportError as error:
        raise MissingDependencyError(
            f"runtime={runtime!r} needs TensorFlow, which is not installed here. Received: "
            f"ImportError({error}). Install it (pip install tensorflow) or time another runtime."
        ) from None
    if runtime == "tflite" and getattr(getattr(tf, "lite", None), "Interpreter", None) is None:
        raise MissingDependencyError(
            "runtime='tflite' needs the TFLite interpreter (tf.lite.Interpreter), which this "
            f"TensorFlow {tf.__version__} does not provide. Received: runtime='tflite'. Install "
            "a TensorFlow build with tf.lite, or use runtime='tf'."
        )


def forward_call(model, runtime, batch_size, seed=0):
    """A call that runs ``model`` once on a fixed random batch of ``batch_size`` samples.

    ``"tf"``: a ``tf.function`` of the model on a tensor made beforehand;
    ``"tflite"``: the float TFLite conversion of that function (batch size
    fixed), run by the interpreter on every core, its input set beforehand.
    Neither copies the input per call.
    """
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    inputs = [tf.constant(rng.normal(size=(batch_size, *t.shape[1:])).astype("float32"))
              for t in model.inputs]
    forward = tf.function(lambda *x: model(list(x) if len(x) > 1 else x[0], training=False))
    if runtime == "tf":
        return lambda: forward(*inputs)
    function = forward.get_concrete_function(*(tf.TensorSpec(x.shape, x.dtype) for x in inputs))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning, module=r"tensorflow\.lite")
        content = tf.lite.TFLiteConverter.from_concrete_functions([function], model).convert()
        interpreter = tf.lite.Interpreter(model_content=content, num_threads=os.cpu_count())
    interpreter.allocate_tensors()
    for detail, x in zip(interpreter.get_input_details(), inputs):
        interpreter.set_tensor(detail["index"], x.numpy())
    return interpreter.invoke


def paired(calls, rounds=3, runs=10, warmup=3):
    """Median milliseconds of each call, timed in turn (a, b, a, b, …) ``rounds × runs`` times.

    Alternating call by call gives every call the same share of whatever
    else the machine is doing, so their ratios hold on a busy machine.
    """
    for call in calls:
        for _ in range(warmup):
            call()
    times = [[] for _ in calls]
    for _ in range(rounds * runs):
        for t, call in zip(times, calls):
            start = time.perf_counter()
            call()
            t.append(time.perf_counter() - start)
    return [1000 * float(np.median(t)) for t in times]
