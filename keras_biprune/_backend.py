"""The one place that knows how each Keras backend compiles a function."""

import keras


def compile_function(fn):
    """``fn`` compiled for the current backend: traced once per input shape.

    TensorFlow: ``tf.function``; JAX: ``jax.jit``; PyTorch runs eagerly.
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.function(fn)
    if backend == "jax":
        import jax

        return jax.jit(fn)
    return fn
