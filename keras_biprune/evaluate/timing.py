"""Measured inference latency of a Keras model on this machine."""

import time

import keras
import numpy as np

from keras_biprune._backend import compile_function


def latency(model, batch_size=1, runs=30, warmup=5, seed=0):
    """Median wall time of one compiled forward pass, in milliseconds.

    The model runs through a compiled function (``tf.function`` on
    TensorFlow), which is what serving costs; ``model.predict`` adds a large
    per-call overhead and would hide the effect of pruning.

    Args:
        model: a Keras model with fixed input shapes (besides the batch).
        batch_size: samples per pass.
        runs: timed passes; the median is returned.
        warmup: untimed passes first (tracing, caches).
        seed: seed of the random inputs.

    Returns:
        The median latency in milliseconds.

    Example:

    ```python
    slim = kb.apply_plan(model, plan)
    print(kb.evaluate.latency(model), kb.evaluate.latency(slim))      # ms, batch 1
    ```
    """
    rng = np.random.default_rng(seed)
    inputs = [rng.normal(size=(batch_size, *t.shape[1:])).astype(t.dtype or "float32")
              for t in model.inputs]
    inputs = inputs if len(inputs) > 1 else inputs[0]
    forward = compile_function(lambda x: model(x, training=False))
    for _ in range(warmup):
        keras.ops.convert_to_numpy(forward(inputs))
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        keras.ops.convert_to_numpy(forward(inputs))
        times.append(time.perf_counter() - start)
    return 1000.0 * float(np.median(times))
