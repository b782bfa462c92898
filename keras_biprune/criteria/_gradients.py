"""Gradients with respect to tensors: one small function per Keras backend.

The only module of keras_biprune outside ``export/`` that imports a backend
framework, and only inside the function for that backend.
"""

import keras

from keras_biprune.errors import CriterionError


def gradient_function(fn):
    """Makes a function that differentiates ``fn`` with respect to its probes.

    Args:
        fn: ``fn(args, probes) -> scalar``; ``args`` and ``probes`` are lists
            of backend tensors.

    Returns:
        ``g(args, probes) -> grads``, taking lists of NumPy arrays and
        returning ``d scalar / d probe`` for each probe as NumPy arrays (zeros
        where the scalar does not depend on a probe). Make it once and
        call it per batch: the TensorFlow one is compiled (eager TensorFlow
        2.21's oneDNN conv gradient corrupts memory on some batch sizes).
    """
    backend = keras.backend.backend()
    if backend not in _BACKENDS:
        raise CriterionError(
            f"Gradients are implemented for {sorted(_BACKENDS)}. Received: the "
            f"{backend!r} backend. Use a criterion without gradients (e.g. 'apoz')."
        )
    compiled = _BACKENDS[backend](fn)
    numpy = keras.ops.convert_to_numpy
    tensor = keras.ops.convert_to_tensor

    def g(args, probes):
        grads = compiled([tensor(a) for a in args], [tensor(p) for p in probes])
        return [numpy(d) for d in grads]

    return g


def _tensorflow(fn):
    import tensorflow as tf

    @tf.function(reduce_retracing=True)
    def g(args, probes):
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(probes)
            value = fn(args, probes)
        return tape.gradient(value, probes, unconnected_gradients=tf.UnconnectedGradients.ZERO)

    return g


def _jax(fn):
    import jax

    return jax.grad(fn, argnums=1)


def _torch(fn):
    import torch

    def g(args, probes):
        probes = [p.requires_grad_(True) for p in probes]
        grads = torch.autograd.grad(fn(args, probes), probes, allow_unused=True)
        return [torch.zeros_like(p) if d is None else d for p, d in zip(probes, grads)]

    return g


_BACKENDS = {"tensorflow": _tensorflow, "jax": _jax, "torch": _torch}
