"""The one module that touches private Keras attributes.

Keras 3 exposes no public API to walk a functional model's graph node by node
or to list the operation classes behind ``keras.ops`` calls. Everything of that
kind lives here, so a Keras upgrade breaks one file.
"""

import contextlib

import keras
from keras.src.layers.core.input_layer import InputLayer
from keras.src.models.functional import Functional
from keras.src.ops import nn as _nn_ops
from keras.src.ops import numpy as _np_ops
from keras.src.ops.operation import Operation
from keras.src.saving.serialization_lib import SafeModeScope

__all__ = [
    "InputLayer",
    "Operation",
    "application_layer_classes",
    "first_input_rank",
    "graph_of",
    "input_name",
    "inputs_structure",
    "is_graph_model",
    "nn_ops",
    "node_arguments",
    "node_constants",
    "node_input_tensors",
    "np_ops",
    "optimizer_slots",
    "outputs_structure",
    "unsafe_deserialization",
]

np_ops = _np_ops
nn_ops = _nn_ops


def is_graph_model(obj):
    """True for a functional model or a built Sequential model."""
    if isinstance(obj, keras.Sequential):
        return getattr(obj, "_functional", None) is not None
    return isinstance(obj, Functional)


def graph_of(model):
    """Returns ``(inputs, outputs, nodes)`` of a functional or Sequential model.

    ``nodes`` are the model's non-input nodes in an order where every node comes
    after the nodes producing its inputs (the order Keras itself executes them).
    """
    function = model._functional if isinstance(model, keras.Sequential) else model
    nodes = []
    for depth in sorted(function._nodes_by_depth, reverse=True):
        for node in function._nodes_by_depth[depth]:
            if node.operation is not None and not node.is_input:
                nodes.append(node)
    return list(function.inputs), list(function.outputs), nodes


def node_arguments(node, tensor_map):
    """The ``(args, kwargs)`` a node was called with, tensors replaced via ``tensor_map``.

    ``tensor_map`` maps ``id(original KerasTensor)`` to its replacement.
    """
    return node.arguments.fill_in(tensor_map)


def inputs_structure(model):
    function = model._functional if isinstance(model, keras.Sequential) else model
    return function._inputs_struct


def outputs_structure(model):
    function = model._functional if isinstance(model, keras.Sequential) else model
    return function._outputs_struct


@contextlib.contextmanager
def unsafe_deserialization():
    """Lets ``from_config`` rebuild in-memory ``Lambda`` layers, then restores safe mode.

    Only used to copy a layer of the user's own live model, never to load a file.
    """
    with SafeModeScope(False):
        yield


def node_input_tensors(node):
    """The KerasTensors a node consumed, flattened in call order."""
    return list(node.arguments.keras_tensors)


def node_constants(node):
    """The non-tensor positional and keyword arguments a node was called with."""
    args, kwargs = node.arguments.convert(lambda x: x)
    flat = keras.tree.flatten((args, kwargs))
    return [x for x in flat if not isinstance(x, keras.KerasTensor)]


def first_input_rank(layer):
    """The rank of the first input of a layer's first call (shared layers too)."""
    return len(layer._inbound_nodes[0].input_tensors[0].shape)


def input_name(tensor):
    """The name of the ``InputLayer`` that created a model input tensor."""
    return tensor._keras_history.operation.name


def application_layer_classes():
    """Custom layers that ``keras.applications`` models use, by role.

    Returns ``{"layer_scale": [...], "elementwise": [...], "merge": [...]}``:
    ConvNeXt's per-channel ``LayerScale``, its ``StochasticDepth`` (identity at
    inference) and Inception-ResNet's ``CustomScaleLayer`` (``a + scale * b``).
    """
    from keras.src.applications import convnext, inception_resnet_v2

    return {
        "layer_scale": [convnext.LayerScale],
        "elementwise": [convnext.StochasticDepth],
        "merge": [inception_resnet_v2.CustomScaleLayer],
    }


def optimizer_slots(optimizer):
    """``(variables, {name: slots})``: the trainable variables a built optimizer
    tracks, and each of its per-variable state lists (Adam's ``_momentums`` and
    ``_velocities``, SGD's ``momentums``…) aligned with them, by attribute name."""
    tracked = list(getattr(optimizer, "_trainable_variables", None) or [])
    slots = {}
    for name, value in vars(optimizer).items():
        if (name != "_trainable_variables" and isinstance(value, list) and tracked
                and len(value) == len(tracked)
                and all(isinstance(v, keras.Variable) and tuple(v.shape) == tuple(t.shape)
                        for v, t in zip(value, tracked))):
            slots[name] = value
    return tracked, slots
