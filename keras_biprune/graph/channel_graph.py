"""Channel groups: the sets of channels that must be pruned together."""

import dataclasses
import functools
import hashlib
import json

import keras
import numpy as np

from keras_biprune import _keras_internals as internals
from keras_biprune._validate import check_model
from keras_biprune.errors import PlanMismatchError, UnsupportedModelError
from keras_biprune.graph.tracer import Tracer
from keras_biprune.handlers import lookup, reads_channels


@dataclasses.dataclass(frozen=True)
class GroupMember:
    """One place where a group's channels appear.

    Attributes:
        layer: path of the layer or operation (``block1/conv``).
        role: ``"output i"`` (channels it produces or passes on),
            ``"input i"`` (channels it reads) or ``"internal key"``
            (positions inside the layer that no tensor carries, such as
            the heads of an attention layer).
        index_map: int array over that tensor's channel axis: the group
            position of each entry, or -1 where the entry belongs to another
            group. A ``Dense`` after ``Flatten`` maps H·W entries to each
            position.

    Example:

    ```python
    import keras_biprune as kb
    group = kb.trace(model).prunable_groups[0]
    for member in group.members:
        print(member.layer, member.role, member.index_map)   # e.g. conv2d output 0 [0 1 ... 7]
    readers = {m.layer for m in group.members if m.role.startswith("input")}
    ```
    """

    layer: str
    role: str
    index_map: np.ndarray


@dataclasses.dataclass(frozen=True)
class ChannelGroup:
    """Channels that are kept or pruned together.

    Attributes:
        id: stable name: the path of the first layer producing these channels.
        size: number of positions (independently prunable channels).
        members: every ``GroupMember`` where the group's channels appear.
        prunable: False when the group must be kept whole.
        reason: why it is not prunable (``None`` when it is).
        producers: paths of the layers whose filters/units make up the group.

    Example:

    ```python
    import keras_biprune as kb
    graph = kb.trace(model)
    for group in graph.groups:
        print(group.id, group.size, group.prunable, group.reason, group.producers)
    frozen = [group.id for group in graph.groups if not group.prunable]   # e.g. ['dense']
    ```
    """

    id: str
    size: int
    members: tuple
    prunable: bool
    reason: str | None
    producers: tuple

    def __repr__(self):
        state = "prunable" if self.prunable else f"frozen: {self.reason}"
        return f"ChannelGroup(id={self.id!r}, size={self.size}, {state})"


class ChannelGraph:
    """A traced model: its channel groups and what surgery needs to rebuild it.

    Build one with `keras_biprune.trace`.

    Attributes:
        groups: list of `ChannelGroup`, in the order their first producer
            appears in the model.
        signature: a short hash of the groups' ids and sizes; plans made for
            this graph carry it.
        model_name: the traced model's name.

    Example:

    ```python
    import keras_biprune as kb
    graph = kb.trace(model)
    print(graph.summary())                   # one line per group: id, size, state
    group = graph.group(graph.prunable_groups[0].id)   # look a group up by its id
    plan = kb.PruningPlan.random(graph, ratio=0.5, seed=0)
    assert plan.signature == graph.signature
    ```
    """

    def __init__(self, model, tracer):
        self.model_name = model.name
        self.records = tracer.records
        uf = tracer.atoms
        n_atoms = len(uf.parent)
        roots = np.array([uf.find(a) for a in range(n_atoms)], dtype=np.int64)
        owner = np.asarray(tracer.atom_owner, dtype=np.int64)

        owner_uf = list(range(len(tracer.owners)))

        def find(o):
            while owner_uf[o] != o:
                owner_uf[o] = owner_uf[owner_uf[o]]
                o = owner_uf[o]
            return o

        for a in range(n_atoms):
            ra, rb = find(owner[a]), find(owner[roots[a]])
            if ra != rb:
                owner_uf[max(ra, rb)] = min(ra, rb)
        owner_root = np.array([find(o) for o in range(len(tracer.owners))], dtype=np.int64)

        group_roots = sorted(set(owner_root.tolist()))
        group_index = {r: i for i, r in enumerate(group_roots)}
        self.atom_group = np.array([group_index[owner_root[owner[a]]] for a in range(n_atoms)])
        self.atom_position = np.zeros(n_atoms, dtype=np.int64)
        self._position_atoms = []
        for g, _ in enumerate(group_roots):
            atoms = np.flatnonzero(self.atom_group == g)
            position_roots = sorted(set(roots[atoms].tolist()))
            position = {r: p for p, r in enumerate(position_roots)}
            self.atom_position[atoms] = [position[r] for r in roots[atoms]]
            self._position_atoms.append(atoms)

        reasons = [[] for _ in group_roots]
        for atom, reason in tracer.frozen:
            bucket = reasons[self.atom_group[atom]]
            if reason not in bucket:
                bucket.append(reason)

        members = [[] for _ in group_roots]
        for record in self.records:
            for role, channel_list in (("input", record.inputs), ("output", record.outputs)):
                for i, channels in enumerate(channel_list):
                    if channels is None:
                        continue
                    groups = self.atom_group[channels.labels]
                    for g in np.unique(groups):
                        index_map = np.where(groups == g, self.atom_position[channels.labels], -1)
                        members[g].append(GroupMember(record.path, f"{role} {i}", index_map))
            for key, channels in record.internal.items():
                g = self.atom_group[channels.labels[0]]
                members[g].append(GroupMember(record.path, f"internal {key}",
                                              self.atom_position[channels.labels]))

        self.groups = []
        for g, root in enumerate(group_roots):
            size = int(self.atom_position[self._position_atoms[g]].max()) + 1
            producers = tuple(
                tracer.owners[o]["path"] for o in range(len(tracer.owners)) if owner_root[o] == root
            )
            first = tracer.owners[root]
            gid = first["path"] if first["key"] == "out" else f"{first['path']}:{first['key']}"
            reason = "; ".join(reasons[g]) or None
            if reason is None and size < 2:
                reason = "a single channel cannot be pruned"
            self.groups.append(
                ChannelGroup(gid, size, tuple(members[g]), reason is None, reason, producers)
            )
        self._by_id = {group.id: i for i, group in enumerate(self.groups)}
        self._record_by_path = {record.path: record for record in self.records}
        digest = json.dumps([(g.id, g.size, g.prunable) for g in self.groups])
        self.signature = hashlib.sha1(digest.encode()).hexdigest()[:16]

    def group(self, group_id):
        """The `ChannelGroup` with this id (``KeyError`` if there is none)."""
        return self.groups[self._by_id[group_id]]

    def require(self, group_id, where):
        """The group with this id; `PlanMismatchError` naming ``where`` (the argument
        that named it, e.g. ``"keep"``) when the model has none."""
        if group_id not in self._by_id:
            raise PlanMismatchError(
                f"{where} names group {group_id!r}, which model {self.model_name!r} does not "
                f"have. Received: {where}[{group_id!r}]. {self.known_groups()}"
            )
        return self.group(group_id)

    def known_groups(self):
        """The fix for a group id the graph lacks: its first group ids, and where to find all."""
        return (f"Known groups start with {[g.id for g in self.groups[:5]]}; see "
                "kb.trace(model).groups.")

    def record(self, path):
        """The first call of the layer at ``path`` (``KeyError`` if there is none)."""
        return self._record_by_path[path]

    @functools.cached_property
    def reads(self):
        """Where layers read traced channels: ``(record, labels, mixes, passes_on)`` tuples.

        One per traced input of each call record. ``labels`` are the input's
        atoms; ``mixes`` is True for the first input of a channel-mixing layer
        (a conv or dense kernel consumes the channels); ``passes_on`` is a
        bool per channel, True where the layer hands the channel on as the
        same group position (batch norm, activations, depthwise convs, adds,
        pooling, ``Flatten``), so that its readers are the ones that count; a
        layer that normalizes across channels reads them all itself.
        """
        def keys(labels):
            return self.atom_group[labels] * (len(self.atom_group) + 1) + self.atom_position[labels]

        table = []
        for record in self.records:
            out = [keys(c.labels) for c in record.outputs if c is not None]
            out = np.concatenate(out) if out else np.zeros(0, dtype=np.int64)
            for i, channels in enumerate(record.inputs):
                if channels is None:
                    continue
                mixes = i == 0 and reads_channels(record)
                passes_on = np.isin(keys(channels.labels), out)
                if lookup(record.op).channel_statistics:
                    passes_on[:] = False  # its statistics read every channel
                table.append((record, channels.labels, mixes, passes_on))
        return table

    def __contains__(self, group_id):
        return group_id in self._by_id

    @property
    def prunable_groups(self):
        """The groups a plan may prune."""
        return [g for g in self.groups if g.prunable]

    def atom_keep(self, keep):
        """A bool array over atoms from ``{group_id: kept positions}``.

        Groups missing from ``keep`` are kept whole. Validation is the plan's job.
        """
        mask = np.ones(len(self.atom_group), dtype=bool)
        for group_id, kept in keep.items():
            g = self._by_id[group_id]
            atoms = self._position_atoms[g]
            mask[atoms] = np.isin(self.atom_position[atoms], np.asarray(kept, dtype=np.int64))
        return mask

    def summary(self):
        """A text table: one line per group with size, state and producers."""
        lines = [(f"ChannelGraph of {self.model_name!r}: {len(self.groups)} groups, "
                 f"{len(self.prunable_groups)} prunable")]
        width = max((len(g.id) for g in self.groups), default=5)
        for g in self.groups:
            state = "prunable" if g.prunable else f"frozen ({g.reason})"
            lines.append(f"  {g.id:<{width}}  {g.size:>5}  {state}")
        return "\n".join(lines)

    def __repr__(self):
        return (f"<ChannelGraph model={self.model_name!r} groups={len(self.groups)} "
                f"prunable={len(self.prunable_groups)}>")


def trace(model):
    """Traces a Keras 3 model into channel groups.

    Walks the model's operations (layers and ``keras.ops`` calls such as
    ``x + y``), including nested models and shared layers, and groups the
    channels that must be pruned together: a residual ``Add`` joins its
    inputs' channels, a ``Concatenate`` lays them side by side, a depthwise
    conv ties its outputs to its inputs. Channels touched by something that
    cannot be proven safe (a ``Lambda``, an unknown custom layer, a reshape
    that mixes channels) are frozen, with the reason; the model's inputs and
    outputs are never pruned.

    Args:
        model: a functional ``keras.Model`` or a built ``keras.Sequential``.

    Returns:
        A `ChannelGraph`.

    Raises:
        UnsupportedModelError: for a subclassed model, an unbuilt Sequential
            model or anything that is not a Keras model.

    Example:

    ```python
    import keras
    import keras_biprune as kb

    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(16, 3, activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(10)(x))
    graph = kb.trace(model)
    print(graph.summary())   # conv2d: 16 channels, prunable; dense: frozen
    ```
    """
    check_model(model, "trace")
    if isinstance(model, keras.Sequential) and not internals.is_graph_model(model):
        raise UnsupportedModelError(
            f"The Sequential model {model.name!r} is not built. Received: a model with "
            "unknown input shape. Add keras.Input(shape) as its first layer or call "
            "model.build(input_shape) before tracing."
        )
    if not internals.is_graph_model(model):
        raise UnsupportedModelError(
            f"Only functional and Sequential models can be traced. Received: "
            f"model={model.name!r} of subclassed type {type(model).__name__}. Its call() "
            "is Python code with no graph to walk; rebuild it with the functional API "
            "(keras.Model(inputs, outputs)) and copy the weights."
        )
    tracer = Tracer()
    tracer.trace(model)
    return ChannelGraph(model, tracer)
