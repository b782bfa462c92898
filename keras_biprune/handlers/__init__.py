"""Layer handlers: how each layer class carries, ties and slices channels."""

from keras_biprune.handlers.base import Channels, LayerHandler, NodeIO, positions
from keras_biprune.handlers.channelwise import PassThroughHandler, PerChannelHandler
from keras_biprune.handlers.registry import REGISTRY


def lookup(op):
    """The handler for a layer or operation (an opaque one if none is registered)."""
    return REGISTRY.lookup(op)


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
    "lookup",
    "positions",
    "register_handler",
]
