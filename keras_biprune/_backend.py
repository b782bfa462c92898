"""The one place that knows how each Keras backend compiles a function and distributes."""

import contextlib
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


def distribution_scope(model):
    """The scope that builds and trains models alongside ``model`` on its devices.

    TensorFlow: the ``tf.distribute`` strategy ``model`` was built under, when
    no strategy scope is open (an open one is kept), so that a model rebuilt
    from it, its optimizer and a distillation teacher are created, and
    trained, under the same strategy. JAX and PyTorch: no scope (a
    ``keras.distribution`` applies to every model built while it is set).
    """
    if keras.backend.backend() != "tensorflow":
        return contextlib.nullcontext()
    import tensorflow as tf

    if tf.distribute.has_strategy():
        return contextlib.nullcontext()
    return model.distribute_strategy.scope()


def batch_parts():
    """How many parts Keras splits every batch into: the devices of the batch axis of the
    ``keras.distribution`` set on JAX (each part must be as large); 1 otherwise."""
    distribution = _jax_distribution()
    names = list(distribution.device_mesh.axis_names) if distribution is not None else []
    if getattr(distribution, "batch_dim_name", None) not in names:
        return 1
    return int(distribution.device_mesh.shape[names.index(distribution.batch_dim_name)])


def on_own_devices(model):
    """A scope in which Keras runs ``model`` on the devices its variables are on.

    JAX: a ``keras.distribution`` lays out the variables of models built while
    it is set; a model built before (the user's original) keeps its device,
    and Keras cannot run it on batches split among the distribution's devices,
    so the distribution is unset in the scope (and set back after it). Other
    backends, and models laid out by the distribution: no scope.
    """
    distribution = _jax_distribution()
    if distribution is None or not model.variables or len(
            model.variables[0].value.sharding.device_set) >= distribution.device_mesh.devices.size:
        return contextlib.nullcontext()
    return _without_distribution(distribution)


def _jax_distribution():
    """The ``keras.distribution`` set on JAX, or None (none set, or another backend)."""
    return keras.distribution.distribution() if keras.backend.backend() == "jax" else None


@contextlib.contextmanager
def _without_distribution(distribution):
    keras.distribution.set_distribution(None)
    try:
        yield
    finally:
        keras.distribution.set_distribution(distribution)
