"""Latency of a pruned model against its unpruned one, timed call by call in turn.

Imports nothing heavy at module level: `timers` builds TensorFlow and
TFLite calls, `against` times them in turn (`keras_biprune.evaluate.runtimes.paired`).
"""

import os

import numpy as np


def timers(model, batch):
    """``{"tf": call, "tflite": call}``: one forward pass of a random batch each."""
    import keras

    from keras_biprune._backend import compile_function
    from keras_biprune.export import to_tflite

    x = np.random.default_rng(0).normal(size=(batch, *model.inputs[0].shape[1:]))
    x = x.astype("float32")
    forward = compile_function(lambda v: model(v, training=False))
    return {"tf": lambda: keras.ops.convert_to_numpy(forward(x)),
            "tflite": _tflite_call(to_tflite(model), x)}


def against(unpruned, slim, rounds, runs):
    """``{engine_bB: [unpruned ms, pruned ms]}`` for ``unpruned = {batch: timers(model, batch)}``."""
    from keras_biprune.evaluate.runtimes import paired

    out = {}
    for batch, base in unpruned.items():
        for engine, call in timers(slim, batch).items():
            out[f"{engine}_b{batch}"] = paired([base[engine], call], rounds, runs)
    return out


def _tflite_call(content, x):
    import warnings

    import tensorflow as tf

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")         # tf.lite.Interpreter's deprecation notice
        interpreter = tf.lite.Interpreter(model_content=content, num_threads=os.cpu_count())
    index = interpreter.get_input_details()[0]["index"]
    interpreter.resize_tensor_input(index, x.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(index, x)
    return interpreter.invoke
