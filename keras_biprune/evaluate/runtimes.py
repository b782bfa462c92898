"""Runtimes a model is timed on: a compiled TensorFlow call or the TFLite interpreter.

`forward_call` turns a Keras model into a zero-argument call that runs one
forward pass of a fixed random batch; `paired` times several calls in turn.
TensorFlow is imported inside the functions, so this module loads on every
backend.
"""

import time
import warnings

import numpy as np

from keras_biprune.errors import MissingDependencyError, SearchError

RUNTIMES = ("tf", "tflite")
TFLITE_THREADS = 1
"""The TFLite interpreter's threads unless told otherwise. On this 2-core machine the
interpreter on both cores ran a model in two states (19-21 ms or 25-26 ms for MobileNetV2-small
at batch 64), and a pruned model's share of the time moved with them (0.32-0.41 for one plan);
on one thread it held (0.412-0.423)."""


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


def forward_call(model, runtime, batch_size, seed=0, threads=None):
    """A call that runs ``model`` once on a fixed random batch of ``batch_size`` samples.

    ``"tf"``: a ``tf.function`` of the model on a tensor made beforehand, on
    TensorFlow's own thread pools; ``"tflite"``: the float TFLite conversion
    of that function (batch size fixed), run by the interpreter on
    ``threads`` threads (None: `TFLITE_THREADS`), its input set beforehand.
    Neither copies the input per call.
    """
    import tensorflow as tf

    threads = check_threads(runtime, threads)

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
        interpreter = tf.lite.Interpreter(model_content=content, num_threads=threads)
    interpreter.allocate_tensors()
    for detail, x in zip(interpreter.get_input_details(), inputs):
        interpreter.set_tensor(detail["index"], x.numpy())
    return interpreter.invoke


def check_threads(runtime, threads):
    """The interpreter threads ``runtime`` is timed on: ``threads``, `TFLITE_THREADS` for TFLite
    when None, and None for TensorFlow (which runs on its own thread pools).

    Raises:
        SearchError: ``threads`` is not a positive int, or is given for ``"tf"``.
    """
    if threads is None:
        return TFLITE_THREADS if runtime == "tflite" else None
    if runtime != "tflite":
        raise SearchError(
            f"threads sets the TFLite interpreter's threads; TensorFlow runs on its own thread "
            f"pools. Received: runtime={runtime!r}, threads={threads!r}. Leave threads=None, "
            "or time runtime='tflite'.")
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
        raise SearchError(f"threads must be an int >= 1. Received: threads={threads!r}.")
    return threads


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
