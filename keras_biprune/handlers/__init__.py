"""Layer handlers: how each layer class carries, ties and slices channels."""

import numpy as np

from keras_biprune.handlers.base import Channels, LayerHandler, NodeIO, positions
from keras_biprune.handlers.channelwise import PassThroughHandler, PerChannelHandler
from keras_biprune.handlers.registry import REGISTRY
from keras_biprune.handlers.take import NoteConsumed


def lookup(op):
    """The handler for a layer or operation (an opaque one if none is registered)."""
    return REGISTRY.lookup(op)


def reads_channels(record):
    """True when a call's layer mixes the traced channels of its first input.

    That is a layer whose handler slices an input-channel axis with
    ``consumed=True`` (a conv or dense kernel): where a pruned channel stops
    mattering. The masked reference model zeroes its kernel rows, the
    evaluator masks its inputs, and plans may narrow what it reads.

    Args:
        record: the layer's call record (``ChannelGraph.record(path)``).
    """
    layer = record.op
    if not record.inputs or record.inputs[0] is None or not getattr(layer, "weights", None):
        return False
    shapes = [np.broadcast_to(np.float32(0), tuple(w.shape)) for w in layer.weights]
    return bool(consumed_slices(record, shapes))


def consumed_slices(record, weights):
    """``(array, axis)`` of every weight axis that reads the layer's input channels.

    Runs the handler's ``prune_weights`` with nothing pruned and notes each
    ``take`` made with ``consumed=True`` (a conv or dense kernel's input axis).

    Args:
        record: the layer's call record (``ChannelGraph.record(path)``).
        weights: arrays shaped like the layer's weights, in ``layer.weights`` order.
    """
    note = NoteConsumed()
    kept = tuple(None if c is None else np.ones(len(c), bool) for c in record.inputs)
    io = NodeIO(kept, (None,) * len(record.outputs), tuple(record.inputs), tuple(record.outputs))
    lookup(record.op).prune_weights(record.op, list(weights), io, note)
    return note.seen


def register_handler(layer_class, handler):
    """Registers a handler for a (custom) layer class.

    The handler serves the class and its subclasses, unless a subclass has its
    own. Without a handler, a custom layer's channels are frozen: the model
    still prunes everywhere else.

    Args:
        layer_class: the layer class, e.g. ``MyScale``.
        handler: an instance of a `LayerHandler` subclass.

    Example:

    ```python
    import keras_biprune as kb
    kb.register_handler(MyScale, kb.handlers.PerChannelHandler())
    ```
    """
    REGISTRY.register(layer_class, handler)


__all__ = [
    "Channels",
    "LayerHandler",
    "NodeIO",
    "PassThroughHandler",
    "PerChannelHandler",
    "consumed_slices",
    "lookup",
    "positions",
    "reads_channels",
    "register_handler",
]
