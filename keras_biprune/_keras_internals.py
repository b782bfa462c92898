"""The one module that touches private Keras attributes.

Keras 3 exposes no public API to walk a functional model's graph node by node
or to list the operation classes behind ``keras.ops`` calls. Everything of that
kind lives here, so a Keras upgrade breaks one file.
"""

import contextlib
import copy
import inspect
import types
import weakref

import keras
from keras.src.layers.core.input_layer import InputLayer
from keras.src.models.functional import Functional
from keras.src.ops import image as _image_ops
from keras.src.ops import nn as _nn_ops
from keras.src.ops import numpy as _np_ops
from keras.src.ops.operation import Operation
from keras.src.saving.serialization_lib import SafeModeScope
from keras.src.utils.backend_utils import DynamicBackend
from keras.src.utils.tracking import DotNotTrackScope

__all__ = [
    "InputLayer",
    "Operation",
    "application_layer_classes",
    "copy_layer",
    "first_input_rank",
    "graph_of",
    "image_ops",
    "input_name",
    "inputs_structure",
    "is_graph_model",
    "nn_ops",
    "node_arguments",
    "node_constants",
    "node_input_tensors",
    "np_ops",
    "optimizer_slots",
    "output_shapes",
    "outputs_structure",
    "traced_into",
    "unsafe_deserialization",
]

np_ops = _np_ops
image_ops = _image_ops
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
    A keras-hub block that is a subclassed layer made of Keras layers comes as
    a node whose operation is its functional view (see `traced_into`), so
    everything that walks graphs walks into it as into a nested model.
    """
    function = model._functional if isinstance(model, keras.Sequential) else model
    nodes = []
    for depth in sorted(function._nodes_by_depth, reverse=True):
        for node in function._nodes_by_depth[depth]:
            if node.operation is not None and not node.is_input:
                view = traced_into(node)
                nodes.append(node if view is None else _ViewNode(node, view))
    return list(function.inputs), list(function.outputs), nodes


class _ViewNode:
    """A node of a block, with the block's functional view as its operation."""

    is_input = False

    def __init__(self, node, view):
        self.operation = view
        self.arguments = node.arguments
        self.outputs = node.outputs


_VIEWS = weakref.WeakKeyDictionary()


def traced_into(node):
    """The functional view of the keras-hub block called at ``node``, or None.

    keras-hub builds its backbones from subclassed layers (a ViT encoder
    block, a MobileNet inverted residual block) whose ``call`` only calls
    Keras layers and ``keras.ops``. Calling that ``call`` on a symbolic input
    records those calls as a functional model over the block's own sublayers
    (the same layer objects and variables; the sublayers gain an inbound
    node, once per block). A block qualifies when its class comes from
    ``keras_hub``, it is called on one tensor (plus ``training``), and every
    weight it has belongs to a sublayer its view calls; others stay opaque
    (or use a registered handler). Views are built once per block.
    """
    layer = node.operation
    if not type(layer).__module__.startswith("keras_hub.") or isinstance(layer, keras.Model):
        return None
    args, kwargs = node.arguments.args, node.arguments.kwargs
    if len(args) != 1 or not isinstance(args[0], keras.KerasTensor) or set(kwargs) - {"training"}:
        return None
    if layer not in _VIEWS:
        _VIEWS[layer] = _view(layer, args[0])
    return _VIEWS[layer]


def _view(layer, tensor):
    inputs = keras.Input(batch_shape=tensor.shape, dtype=tensor.dtype,
                         name=f"{layer.name}_input")
    try:
        outputs = layer.call(inputs)
        view = keras.Model(inputs, outputs, name=layer.name)
    except Exception:  # noqa: BLE001 - a block that cannot be viewed stays opaque
        return None
    if {id(w) for w in layer.weights} - {id(w) for w in view.weights}:
        return None  # the block computes with weights of its own
    return view


def node_arguments(node, tensor_map):
    """The ``(args, kwargs)`` a node was called with, tensors replaced via ``tensor_map``.

    ``tensor_map`` maps ``id(original KerasTensor)`` to its replacement.
    """
    return node.arguments.fill_in(tensor_map)


def output_shapes(model, input_shapes):
    """``{id(tensor): shape}`` for every tensor of a functional model called on
    inputs of ``input_shapes``, computed with each operation's
    ``compute_output_spec`` (no node is added to the model). Tensors whose
    shape cannot be computed keep their own."""
    inputs, _outputs, nodes = graph_of(model)
    specs = {id(t): keras.KerasTensor(shape, dtype=t.dtype) for t, shape in zip(inputs, input_shapes)}
    for node in nodes:
        args, kwargs = node_arguments(node, specs)
        try:
            outputs = keras.tree.flatten(node.operation.compute_output_spec(*args, **kwargs))
        except (TypeError, ValueError, NotImplementedError):
            break
        specs.update((id(t), o) for t, o in zip(node.outputs, outputs))
    return {k: tuple(v.shape) for k, v in specs.items()}


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


def copy_layer(layer, keep=()):
    """A copy of a built layer (sub-layers included) holding fresh variables.

    The copy is made from the layer object itself, not from its config: it
    keeps the layer's function objects (activations, a ``Lambda``'s function),
    its other Python state, and the objects in ``keep`` (regularizers,
    constraints) by identity. Its variables are new ones with the same values,
    names, regularizers and constraints, so it shares no state with ``layer``;
    its call history starts empty. Keras's own ``copy``/``pickle`` path goes
    through the config, which is what this avoids.

    Raises whatever ``copy.deepcopy`` raises on an attribute that cannot be
    copied (a lock, an open file).
    """
    memo = {id(obj): obj for obj in keep}
    for variable in getattr(layer, "variables", ()):
        fresh = _fresh_variable(variable)
        memo[id(variable)] = fresh
        if hasattr(variable, "_value"):
            memo[id(variable._value)] = fresh._value
    return _copy_into(layer, memo)


def _fresh_variable(variable):
    scopes = variable.path.split("/")[:-1]
    with contextlib.ExitStack() as stack:
        for scope in scopes:  # the same path as the original
            stack.enter_context(keras.name_scope(scope))
        fresh = keras.Variable(
            keras.ops.convert_to_numpy(variable), dtype=variable.dtype,
            trainable=variable.trainable, autocast=variable._autocast,
            aggregation=variable.aggregation, synchronization=variable.synchronization,
            name=variable.name,
        )
    fresh.regularizer = variable.regularizer
    fresh.constraint = variable.constraint
    fresh.overwrite_with_gradient = variable.overwrite_with_gradient
    return fresh


def _copy_into(layer, memo):
    new = type(layer).__new__(type(layer))
    memo[id(layer)] = new
    for attr in ("_inbound_nodes", "_outbound_nodes"):
        if hasattr(layer, attr):
            memo[id(getattr(layer, attr))] = []
    for sub in getattr(layer, "_layers", ()):
        if id(sub) not in memo:
            _copy_into(sub, memo)
    # ``Layer.__new__`` wraps ``build`` and ``quantize`` in closures over the
    # new object: keep those, not the original's, which act on the original.
    wrappers = {k: v for k, v in vars(new).items() if callable(v)}
    _keep_shared(layer.__dict__, memo)
    with DotNotTrackScope():  # the copied containers are filled as they are, not re-tracked
        new.__dict__.update(copy.deepcopy(layer.__dict__, memo))
    new.__dict__.update(wrappers)
    tracker = new.__dict__.get("_tracker")
    if tracker is not None:
        tracker.stored_ids = {
            name: {id(x) for x in store} for name, (_test, store) in tracker.config.items()
        }
    return new


def _keep_shared(state, memo):
    """Puts the modules and backend tensors reachable from ``state`` in
    ``memo`` as themselves: a ``SeedGenerator`` holds the backend module and
    preprocessing layers a ``DynamicBackend``, which cannot be copied;
    ``Normalization`` holds its mean as an immutable tensor."""
    stack, seen = [state], set()
    while stack:
        obj = stack.pop()
        if isinstance(obj, _ATOMS) or id(obj) in seen or id(obj) in memo:
            continue
        seen.add(id(obj))
        if isinstance(obj, dict):
            stack.extend(obj.values())
        elif isinstance(obj, (list, tuple, set, frozenset)):
            stack.extend(obj)
        elif isinstance(obj, (types.ModuleType, DynamicBackend)) or keras.ops.is_tensor(obj):
            memo[id(obj)] = obj
        elif hasattr(obj, "__dict__") and not isinstance(obj, _NOT_WALKED):
            stack.extend(vars(obj).values())


# Values ``_keep_shared`` skips: deepcopy copies them or keeps them as they are.
_ATOMS = (str, bytes, int, float, complex, bool, type(None), types.FunctionType, type)
_NOT_WALKED = (inspect.Signature, inspect.Parameter)
