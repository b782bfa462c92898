"""How surgery copies one layer of the user's model.

A layer whose shapes the plan leaves as they are is *carried*: copied as an
object (`carried`), so it keeps every function object, regularizer and
constraint it holds and behaves bit for bit as the original, whatever its
config says. Re-creating it from its config instead breaks custom layers
whose ``__init__`` takes no ``**kwargs`` or whose config does not round-trip,
regularizers without ``get_config``, ``Lambda`` functions that read module
globals, and swaps ``activation=ops.gelu`` for the exact GELU.

A layer the plan slims must be re-created with new shapes (`recreated`):
from its config patched by its handler, then with the original's callables
put back, so only its shapes differ.
"""

import inspect

import keras

from keras_biprune import _keras_internals as internals
from keras_biprune.errors import UnsupportedModelError

# What Keras raises for an object it cannot serialize (a regularizer without get_config).
SERIALIZATION_ERRORS = (NotImplementedError, TypeError, ValueError, AttributeError)


def behaviour(layer):
    """``{attribute: value}`` of the callables a layer holds: activations,
    regularizers, constraints, initializers, a ``Lambda``'s function.

    Methods, and functions that close over the layer itself (the ``build``
    wrapper Keras puts on every layer), are the layer's own, not behaviour;
    so are objects with state (sub-layers, metrics), which are copied.
    """
    return {
        name: value for name, value in vars(layer).items()
        if callable(value) and not inspect.ismethod(value)
        and not isinstance(value, _STATEFUL)
        and not _closes_over(value, layer)
    }


_STATEFUL = (type, internals.Operation, keras.Variable, keras.metrics.Metric)


def _closes_over(function, obj):
    for cell in getattr(function, "__closure__", None) or ():
        try:
            if cell.cell_contents is obj:
                return True
        except ValueError:  # an empty cell
            continue
    return False


def carried(layer):
    """A copy of ``layer`` with fresh variables holding the same values."""
    try:
        return internals.copy_layer(layer, keep=behaviour(layer).values())
    except Exception as error:
        raise UnsupportedModelError(
            f"Layer {layer.name!r} ({type(layer).__name__}) cannot be copied: "
            f"{type(error).__name__}: {error}. Surgery copies a layer the plan does not change "
            "as an object with fresh variables; every attribute must support copy.deepcopy. "
            "Keep objects such as locks or open files out of the layer's attributes."
        ) from error


def recreated(layer, configure):
    """A new layer from ``configure(config)`` with ``layer``'s callables put back.

    ``configure`` patches the config (the handler's new channel counts). A
    config that cannot be serialized because of a callable (a regularizer
    without ``get_config``) is read from a copy where the callables that do
    not serialize are None; the originals are put back before the new layer
    is built.
    """
    callables = behaviour(layer)
    try:
        config = layer.get_config()
    except SERIALIZATION_ERRORS:  # retried below without the callables that do not serialize
        stand_in = carried(layer)
        for name, value in callables.items():
            if not _serializes(value):
                setattr(stand_in, name, None)
        config = _config(stand_in)
    config = configure(config)
    try:
        with internals.unsafe_deserialization():  # copies the user's live Lambda layers
            new = type(layer).from_config(config)
    except Exception as error:
        raise UnsupportedModelError(
            f"Layer {layer.name!r} ({type(layer).__name__}) must be re-created with new "
            "channel counts, but from_config failed on its patched config: "
            f"{type(error).__name__}: {error}. Give the class an __init__ that accepts "
            "**kwargs and a get_config that returns every argument, or keep its channels "
            "out of the plan."
        ) from error
    for name, value in callables.items():
        setattr(new, name, value)
    return new


def _serializes(value):
    try:
        keras.saving.serialize_keras_object(value)
    except SERIALIZATION_ERRORS:
        return False
    return True


def _config(layer):
    try:
        return layer.get_config()
    except Exception as error:
        raise UnsupportedModelError(
            f"Layer {layer.name!r} ({type(layer).__name__}) must be re-created with new "
            f"channel counts, but its get_config failed: {type(error).__name__}: {error}. "
            "Implement get_config for the layer (and its regularizers and constraints), "
            "or keep its channels out of the plan."
        ) from error
