"""The one place that knows how each Keras backend compiles a function."""

import functools

import keras

from keras_biprune.errors import BackendError


def require_tensorflow(feature):
    """Raises `BackendError` unless Keras runs on TensorFlow, which ``feature`` needs."""
    backend = keras.backend.backend()
    if backend != "tensorflow":
        raise BackendError(
            f"{feature} is TensorFlow's: it needs Keras on the TensorFlow backend. "
            f"Received: KERAS_BACKEND={backend!r}. Export from a process started with "
            "KERAS_BACKEND=tensorflow (save_keras writes a .keras file that any backend "
            "loads), or save only the .keras file, plan and report here."
        )


def compile_function(fn, variables=()):
    """``fn`` compiled for inference on the current backend: traced once per input shape.

    TensorFlow: ``tf.function``; JAX: ``jax.jit``, with the current values of
    ``variables`` (the Keras variables ``fn`` reads) passed in on every call,
    since a trace would keep the values they had when it ran; PyTorch runs
    eagerly under ``torch.no_grad`` (its layers' variables require gradients,
    so eager outputs would otherwise carry an autograd graph NumPy cannot read).
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.function(fn)
    if backend == "jax":
        import jax

        variables = list(variables)

        @jax.jit
        def stateless(values, *args):
            with keras.StatelessScope(state_mapping=list(zip(variables, values))):
                return fn(*args)

        return lambda *args: stateless([v.value for v in variables], *args)
    if backend == "torch":
        import torch

        @functools.wraps(fn)
        def without_gradients(*args, **kwargs):
            with torch.no_grad():
                return fn(*args, **kwargs)

        return without_gradients
    return fn
