"""Walks a functional graph and labels every tensor's channels.

Each producer channel (a conv filter, a dense unit) is an *atom*. Handlers say
which atoms each tensor carries and which atoms must be pruned together; a
union-find over atoms collects those ties. ``graph.channel_graph`` turns the
result into channel groups.
"""

import dataclasses

import numpy as np

from keras_biprune import _keras_internals as internals
from keras_biprune.errors import HandlerError
from keras_biprune.handlers import lookup
from keras_biprune.handlers.base import Channels


@dataclasses.dataclass
class CallRecord:
    """The first call of one operation: what the surgeon needs to rebuild it.

    ``calls`` lists ``(input_shapes, output_shapes)`` of every call, the first
    included: a shared layer has one record and one entry per call.
    ``internal`` maps each key of ``ctx.internal`` to the ``Channels`` of
    positions the operation prunes that no tensor carries (attention heads).
    """

    op: object
    path: str
    inputs: list
    outputs: list
    input_shapes: list
    output_shapes: list
    calls: list = dataclasses.field(default_factory=list)
    internal: dict = dataclasses.field(default_factory=dict)


class _UnionFind:
    def __init__(self):
        self.parent = []

    def add(self, n):
        start = len(self.parent)
        self.parent.extend(range(start, start + n))
        return np.arange(start, start + n)

    def find(self, a):
        parent = self.parent
        root = a
        while parent[root] != root:
            root = parent[root]
        while parent[a] != root:
            parent[a], a = root, parent[a]
        return root

    def union(self, a, b):
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            # The older atom stays the root, so positions keep a stable order.
            lo, hi = min(ra, rb), max(ra, rb)
            self.parent[hi] = lo


class TraceContext:
    """What a handler's ``trace`` may ask of the tracer for one call.

    Attributes:
        path: the operation's path (``outer/inner/conv``).
        input_shapes: the shapes of the call's input tensors (batch first).
        output_shapes: the shapes of its output tensors.
        constants: non-tensor arguments of the call (``x * 2.0`` has ``2.0``).
    """

    def __init__(self, tracer, op, path, input_shapes, output_shapes, constants):
        self._tracer = tracer
        self._op = op
        self.path = path
        self.input_shapes = input_shapes
        self.output_shapes = output_shapes
        self.constants = constants
        self.made_internal = {}

    def new(self, n, axis=-1, key="out"):
        """Fresh atoms for ``n`` channels this operation produces.

        Atoms are made once per (operation, key): a shared layer called twice
        produces the same channels both times.
        """
        return Channels(self._tracer.new_atoms(self._op, self.path, key, n), axis)

    def internal(self, n, key):
        """Fresh atoms for ``n`` positions inside the operation that no tensor
        carries (the heads of an attention layer), under ``key``.

        The plan's keep-mask of these atoms reaches the handler as
        ``NodeIO.internal[key]``.
        """
        channels = self.new(n, -1, key)
        self.made_internal[key] = channels
        return channels

    def tie(self, a, b):
        """Ties two channel sets position by position. Returns False (and
        freezes both) when their lengths differ."""
        return self._tracer.tie(a, b, self.path)

    def freeze(self, channels, reason):
        """Marks channels as never prunable, with a human-readable reason."""
        self._tracer.freeze(channels, f"{self.path}: {reason}")

    def frozen(self, n, axis, reason, key="frozen"):
        """Fresh atoms for ``n`` channels that can never be pruned."""
        channels = self.new(n, axis, key)
        self.freeze(channels, reason)
        return channels

    def opaque(self, inputs, reason):
        """Freezes every input channel; outputs are untracked (kept whole)."""
        for channels in inputs:
            self.freeze(channels, reason)
        return [None] * len(self.output_shapes)


class Tracer:
    """Labels the channels of every tensor of a functional or Sequential model."""

    def __init__(self):
        self.atoms = _UnionFind()
        self.atom_owner = []
        self.owners = []  # (path, key) of each atom-producing (operation, key)
        self._owner_index = {}
        self.frozen = []  # (atom, reason)
        self.records = []
        self._record_of = {}

    def new_atoms(self, op, path, key, n):
        owner = self._owner_index.get((id(op), key))
        if owner is None:
            owner = len(self.owners)
            self._owner_index[(id(op), key)] = owner
            self.owners.append({"path": path, "key": key, "atoms": self.atoms.add(n)})
            self.atom_owner.extend([owner] * n)
        atoms = self.owners[owner]["atoms"]
        if len(atoms) != n:
            raise HandlerError(
                f"{path} asked for {n} channels under key {key!r}, but an earlier call "
                f"of the same operation made {len(atoms)}. Handlers must ask for a "
                "stable channel count per key."
            )
        return atoms

    def tie(self, a, b, path):
        if a is None or b is None:
            self.freeze(a if b is None else b, f"{path}: combined with an untracked tensor")
            return False
        if len(a) != len(b):
            reason = f"{path}: ties {len(a)} channels to {len(b)} channels"
            self.freeze(a, reason)
            self.freeze(b, reason)
            return False
        for x, y in zip(a.labels.tolist(), b.labels.tolist()):
            self.atoms.union(x, y)
        return True

    def freeze(self, channels, reason):
        if channels is not None:
            self.frozen.extend((int(a), reason) for a in np.unique(channels.labels))

    def trace(self, model):
        inputs, _outputs, _ = internals.graph_of(model)
        env = self._run(model, "", [None] * len(inputs))
        for channels in env:
            self.freeze(channels, "model output")

    def _run(self, model, prefix, input_channels, input_shapes=None):
        """Traces ``model``'s nodes. A nested model gets the ``input_shapes`` it
        is called on: its own inputs may leave sizes unknown (None) that the
        outer model fixes, and the records carry the known ones."""
        inputs, outputs, nodes = internals.graph_of(model)
        env = {id(t): c for t, c in zip(inputs, input_channels)}
        shape_of = _shapes(model, inputs, input_shapes)
        for node in nodes:
            op = node.operation
            tensors = internals.node_input_tensors(node)
            ins = [env.get(id(t)) for t in tensors]
            path = prefix + op.name
            shapes = ([shape_of(t) for t in tensors], [shape_of(t) for t in node.outputs])
            internal = {}
            if internals.is_graph_model(op):
                outs = self._run(op, path + "/", ins, shapes[0])
            else:
                outs, internal = self._trace_op(op, path, node, shapes, ins)
            first = self._record_of.get(id(op))
            if first is None:
                record = CallRecord(op, path, ins, outs, *shapes, calls=[shapes],
                                    internal=internal)
                self._record_of[id(op)] = record
                self.records.append(record)
            elif getattr(op, "weights", None):
                # One set of weights serves every call: the calls' inputs are
                # the same channels to it.
                for a, b in zip(first.inputs, ins):
                    if a is not None or b is not None:
                        self.tie(a, b, path)
            if first is not None:
                first.calls.append(shapes)
            for t, c in zip(node.outputs, outs):
                env[id(t)] = c
        return [env.get(id(t)) for t in outputs]

    def _trace_op(self, op, path, node, shapes, ins):
        handler = lookup(op)
        ctx = TraceContext(self, op, path, *shapes, internals.node_constants(node))
        outs = list(handler.trace(op, ins, ctx))
        if len(outs) != len(node.outputs):
            raise HandlerError(
                f"{type(handler).__name__}.trace returned {len(outs)} outputs for "
                f"{path}, which has {len(node.outputs)}."
            )
        for channels, t in zip(outs, node.outputs):
            if channels is None:
                continue
            dim = t.shape[channels.axis] if -len(t.shape) <= channels.axis < 0 else "?"
            if dim is not None and dim != len(channels):
                raise HandlerError(
                    f"{type(handler).__name__}.trace labelled {len(channels)} channels on "
                    f"axis {channels.axis} of {path}'s output of shape {t.shape}."
                )
        return outs, ctx.made_internal


def _shapes(model, inputs, input_shapes):
    """``tensor -> shape`` for a model's tensors when called on ``input_shapes``."""
    if input_shapes is None or all(tuple(t.shape) == tuple(s) for t, s in zip(inputs, input_shapes)):
        return lambda t: tuple(t.shape)
    known = internals.output_shapes(model, input_shapes)
    return lambda t: known.get(id(t), tuple(t.shape))
