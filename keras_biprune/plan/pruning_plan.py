"""PruningPlan: which channel positions each group keeps. Plain data, JSON-able."""

import base64
import json

import numpy as np

from keras_biprune._validate import check_number
from keras_biprune.errors import InvalidPlanError, PlanMismatchError
from keras_biprune.plan.per_layer import takes_input_mask, takes_kernel_mask

_FORMAT = "keras_biprune.PruningPlan"
_VERSION = 1


class PruningPlan:
    """The channels each group keeps; groups not listed are kept whole.

    The upper level (``keep``) removes filters: a group's channels disappear
    everywhere. The lower level narrows what single layers read, on top of
    that: ``inputs`` drops input channels of one channel-mixing layer (a conv
    or dense layer), structurally; ``kernels`` drops single (input channel,
    filter) pairs of a conv or dense kernel, as exact zeros.

    Args:
        keep: ``{group_id: kept positions}``; positions index the group's
            channels (``0 … group.size - 1``), in any order, without duplicates.
        inputs: ``{layer_path: kept input channels}``: indices into the
            original layer's input channels. `apply_plan` slices the layer's
            kernel rows and puts a `keras_biprune.layers.ChannelSelect` in
            front of it; other readers of the same tensor are unaffected.
        kernels: ``{layer_path: bool mask}`` of shape ``kernel.shape[-2:]``
            of the original conv (``groups=1``) or dense layer: False entries
            of (input channel, filter) are zeroed in the pruned model.
        signature: the ``ChannelGraph.signature`` the plan was made for, if
            known; `apply_plan` then refuses a plan made for another model.

    Attributes:
        keep: ``{group_id: sorted tuple of kept positions}``.
        inputs: ``{layer_path: sorted tuple of kept input channels}``.
        kernels: ``{layer_path: bool ndarray}``.
        signature: see above.

    Example:

    ```python
    import keras_biprune as kb
    graph = kb.trace(model)
    plan = kb.PruningPlan.random(graph, ratio=0.5, seed=0)
    same = kb.PruningPlan.from_json(plan.to_json())
    manual = kb.PruningPlan({graph.prunable_groups[0].id: [0, 2, 5]})
    ```
    """

    def __init__(self, keep=None, *, inputs=None, kernels=None, signature=None):
        self.keep = {
            str(k): _as_indices(k, v) for k, v in _as_dict("keep", keep, "{'conv2d': [0, 1, 3]}")
        }
        self.inputs = {
            str(k): _as_indices(k, v)
            for k, v in _as_dict("inputs", inputs, "{'block2/conv': [0, 1, 3]}")
        }
        self.kernels = {
            str(k): _as_kernel_mask(k, v)
            for k, v in _as_dict("kernels", kernels, "{'conv2d_1': np.ones((16, 32), bool)}")
        }
        self.signature = signature

    @classmethod
    def keep_all(cls, graph):
        """A plan that prunes nothing."""
        return cls({}, signature=graph.signature)

    @classmethod
    def random(cls, graph, ratio=0.3, seed=None, *, input_ratio=0.0, kernel_ratio=0.0):
        """Prunes ``ratio`` of every prunable group's channels, chosen at random.

        Each group keeps ``size - round(ratio * size)`` channels, at least one.
        With ``input_ratio`` (``kernel_ratio``) > 0 every conv and dense layer
        that can take a lower-level mask also drops that share of the input
        channels it still reads (of its kernel's (input, filter) entries).

        Args:
            graph: a `ChannelGraph`.
            ratio: float in [0, 1), the share of channels to prune per group.
            seed: int seed of the random choice.
            input_ratio: float in [0, 1), the share of each layer's read input
                channels to drop through ``inputs`` masks.
            kernel_ratio: float in [0, 1), the share of kernel entries to zero
                through ``kernels`` masks.
        """
        for name, value in (("ratio", ratio), ("input_ratio", input_ratio),
                            ("kernel_ratio", kernel_ratio)):
            check_number(name, value, InvalidPlanError, 0, 1, open_high=True,
                         fix=f"Use e.g. {name}=0.3 to prune 30%.")
        rng = np.random.default_rng(seed)
        keep = {}
        for group in graph.prunable_groups:
            keep[group.id] = _random_subset(rng, group.size, ratio)
        inputs, kernels = {}, {}
        atom_keep = graph.atom_keep(keep)
        for record in graph.records:
            if input_ratio > 0 and takes_input_mask(record):
                read = np.flatnonzero(atom_keep[record.inputs[0].labels])
                inputs[record.path] = read[_random_subset(rng, len(read), input_ratio)]
            if kernel_ratio > 0 and takes_kernel_mask(record):
                shape = tuple(record.op.kernel.shape[-2:])
                kernels[record.path] = rng.random(shape) >= kernel_ratio
        return cls(keep, inputs=inputs, kernels=kernels, signature=graph.signature)

    def validate(self, graph):
        """Raises `InvalidPlanError` unless this plan fits ``graph``."""
        if self.signature is not None and self.signature != graph.signature:
            raise PlanMismatchError(
                f"This plan was made for another model (graph signature {self.signature}). "
                f"Received: a model {graph.model_name!r} with signature {graph.signature}. "
                "Trace the model you prune and build the plan from that graph."
            )
        for group_id, kept in self.keep.items():
            if group_id not in graph:
                raise PlanMismatchError(
                    f"The plan names group {group_id!r}, which model {graph.model_name!r} "
                    f"does not have. Received: keep[{group_id!r}]. {graph.known_groups()}"
                )
            group = graph.group(group_id)
            if not kept:
                raise InvalidPlanError(
                    f"Group {group_id!r} would keep no channel. Received: keep[{group_id!r}]=(). "
                    "Every group keeps at least one channel; drop the layer from the "
                    "architecture instead."
                )
            if kept[-1] >= group.size:
                raise InvalidPlanError(
                    f"Group {group_id!r} has {group.size} channels (positions 0..{group.size - 1})."
                    f" Received: index {kept[-1]}. Use positions below {group.size}."
                )
            if not group.prunable and len(kept) < group.size:
                raise InvalidPlanError(
                    f"Group {group_id!r} cannot be pruned: {group.reason}. Received: a plan "
                    f"keeping {len(kept)} of its {group.size} channels. Leave it out of the plan."
                )

        atom_keep = graph.atom_keep(self.keep)
        for path, kept in self.inputs.items():
            record = _lower_level_layer(graph, path, "inputs")
            n = len(record.inputs[0])
            if kept[-1] >= n:
                raise InvalidPlanError(
                    f"Layer {path!r} reads {n} input channels. Received: inputs[{path!r}] with "
                    f"index {kept[-1]}. Use indices below {n}."
                )
            if not np.isin(np.flatnonzero(atom_keep[record.inputs[0].labels]), kept).any():
                raise InvalidPlanError(
                    f"Layer {path!r} would read no input channel: inputs[{path!r}] keeps none of "
                    f"the channels its groups keep. Received: inputs[{path!r}]={kept[:10]}. "
                    "Keep at least one channel the upper level keeps."
                )
        for path, mask in self.kernels.items():
            record = _lower_level_layer(graph, path, "kernels")
            layer = record.op
            if not takes_kernel_mask(record):
                raise InvalidPlanError(
                    f"kernels masks apply to Conv (groups=1) and Dense layers. Received: "
                    f"kernels[{path!r}] for {type(layer).__name__}. Use inputs[{path!r}] instead."
                )
            expected = tuple(layer.kernel.shape[-2:])
            if mask.shape != expected:
                raise InvalidPlanError(
                    f"kernels[{path!r}] must have the shape of the layer's kernel (input "
                    f"channels, filters) = {expected}. Received: shape {mask.shape}."
                )

    def without_unread(self, graph):
        """This plan with the channels that no layer reads any more pruned upstream.

        A lower-level mask can leave a channel that its group keeps unread: a
        projection conv drops an input channel of a MobileNetV2 block, and no
        other layer reads it. The channel is then computed for nothing (its
        expansion filter, batch norm, depthwise filter) and read through a
        gather. This plan prunes it from its group instead, which changes no
        output of the pruned model and makes it faster. A channel counts as
        read when a channel-mixing layer (conv, dense) reads it, through its
        ``inputs`` mask and, under ``kernels`` masks, by at least one kept
        filter; when any other layer reads it without passing it on as the
        same channel; or when it belongs to a frozen group. A group all of
        whose channels are unread stays as it is. Lower-level masks that then
        read everything their groups keep are dropped. `apply_plan`, `cost`
        and the evaluator apply this themselves.

        Args:
            graph: the `ChannelGraph` of the model the plan is for.

        Returns:
            A new `PruningPlan` (this one when nothing is unread).

        Example:

        ```python
        graph = kb.trace(model)              # a MobileNetV2 block: expand (96) → dw → project
        plan = kb.PruningPlan(inputs={"block1_project": list(range(48))})
        print(plan.without_unread(graph).keep)      # {'block1_expand': (0, 1, …, 47)}
        ```
        """
        keep = {g.id: tuple(range(g.size)) for g in graph.prunable_groups}
        keep.update(self.keep)
        pruned = False
        while True:
            atom_keep = graph.atom_keep(keep)
            read = _read_atoms(graph, self, atom_keep)
            changed = False
            for index, group in enumerate(graph.groups):
                if not group.prunable:
                    continue
                live = np.intersect1d(keep[group.id],
                                      graph.atom_position[read & (graph.atom_group == index)])
                if 0 < len(live) < len(keep[group.id]):
                    keep[group.id] = tuple(live.tolist())
                    changed = pruned = True
            if not changed:
                break
        if not pruned:
            return self
        inputs = {}
        for path, kept in self.inputs.items():
            carried = np.flatnonzero(atom_keep[graph.record(path).inputs[0].labels])
            if not np.isin(carried, kept).all():
                inputs[path] = kept
        return PruningPlan(
            {g: kept for g, kept in keep.items() if len(kept) < graph.group(g).size},
            inputs=inputs, kernels=self.kernels, signature=self.signature,
        )

    def get_config(self):
        return {
            "keep": {k: list(v) for k, v in self.keep.items()},
            "inputs": {k: list(v) for k, v in self.inputs.items()},
            "kernels": {k: _pack(v) for k, v in self.kernels.items()},
            "signature": self.signature,
        }

    @classmethod
    def from_config(cls, config):
        return cls(
            config["keep"],
            inputs=config.get("inputs"),
            kernels={k: _unpack(k, v) for k, v in config.get("kernels", {}).items()},
            signature=config.get("signature"),
        )

    def to_json(self):
        """The plan as a JSON string (see `from_json`)."""
        return json.dumps({"format": _FORMAT, "version": _VERSION, **self.get_config()})

    @classmethod
    def from_json(cls, text):
        """Reads a plan written by `to_json`."""
        try:
            data = json.loads(text)
        except (TypeError, json.JSONDecodeError) as error:
            raise InvalidPlanError(
                f"from_json expects the JSON text written by PruningPlan.to_json(). "
                f"Received: text that does not parse ({error})."
            ) from None
        if not isinstance(data, dict) or data.get("format") != _FORMAT:
            raise InvalidPlanError(
                f"from_json expects a JSON object with format={_FORMAT!r}. "
                f"Received: {str(text)[:80]!r}."
            )
        return cls.from_config(data)

    def __eq__(self, other):
        return isinstance(other, PruningPlan) and self.get_config() == other.get_config()

    def __hash__(self):
        # Equal plans have equal content; the signature only tells models apart.
        return hash((
            tuple(sorted(self.keep.items())),
            tuple(sorted(self.inputs.items())),
            tuple((k, m.shape, np.packbits(m).tobytes()) for k, m in sorted(self.kernels.items())),
        ))

    def __repr__(self):
        lower = f", {len(self.inputs)} input masks" if self.inputs else ""
        lower += f", {len(self.kernels)} kernel masks" if self.kernels else ""
        return f"PruningPlan({len(self.keep)} groups pruned{lower}, signature={self.signature!r})"


def _as_dict(name, value, example):
    if value is None:
        return {}.items()
    if not isinstance(value, dict):
        raise InvalidPlanError(
            f"PruningPlan expects {name} as a dict. Received: {name}={type(value).__name__}. "
            f"Example: {name}={example}."
        )
    return value.items()


def _as_kernel_mask(path, mask):
    array = np.asarray(mask)
    if array.ndim != 2 or not (array.dtype == bool or np.isin(array, (0, 1)).all()):
        raise InvalidPlanError(
            f"kernels[{path!r}] must be a 2-D bool mask (input channels, filters). "
            f"Received: an array of shape {array.shape} and dtype {array.dtype}."
        )
    return array.astype(bool)


def _pack(mask):
    packed = base64.b64encode(np.packbits(mask, axis=None).tobytes()).decode("ascii")
    return {"shape": list(mask.shape), "bits": packed}


def _unpack(path, value):
    try:
        shape = tuple(value["shape"])
        bits = np.frombuffer(base64.b64decode(value["bits"]), dtype=np.uint8)
    except (KeyError, TypeError, ValueError):
        raise InvalidPlanError(
            f"kernels[{path!r}] in a plan config must be {{'shape': [...], 'bits': base64}} "
            f"as written by PruningPlan.get_config(). Received: {str(value)[:80]!r}."
        ) from None
    return np.unpackbits(bits, count=int(np.prod(shape))).reshape(shape).astype(bool)


def _read_atoms(graph, plan, atom_keep):
    """A bool array over atoms: True where some layer reads the channel (see `without_unread`)."""
    read = np.zeros(len(atom_keep), dtype=bool)
    for record, labels, mixes, passes_on in graph.reads:
        if not mixes:
            read[labels[~passes_on]] = True
            continue
        live = np.ones(len(labels), dtype=bool)
        if record.path in plan.inputs:
            live = np.isin(np.arange(len(labels)), plan.inputs[record.path])
        mask = plan.kernels.get(record.path)
        if mask is not None:
            live &= mask[:, atom_keep[record.outputs[0].labels]].any(axis=1)
        read[labels[live]] = True
    return read


def _random_subset(rng, n, ratio):
    return sorted(rng.choice(n, max(1, n - round(ratio * n)), replace=False).tolist())


def _lower_level_layer(graph, path, name):
    """The record of a channel-mixing layer with traced inputs, for lower-level masks."""
    try:
        record = graph.record(path)
    except KeyError:
        raise PlanMismatchError(
            f"The plan's {name} names layer {path!r}, which model {graph.model_name!r} does "
            f"not have. Received: {name}[{path!r}]. Use layer paths as in "
            "kb.trace(model).records (nested layers are 'outer/inner')."
        ) from None
    if not takes_input_mask(record):
        raise InvalidPlanError(
            f"Lower-level {name} masks apply to layers that mix traced input channels (convs "
            f"with groups=1 and dense layers). Received: {name}[{path!r}] for "
            f"{type(record.op).__name__}. Mask the group instead (keep=...)."
        )
    return record


def _as_indices(group_id, indices):
    if isinstance(indices, (str, bytes)) or not hasattr(indices, "__iter__"):
        raise InvalidPlanError(
            f"Kept indices of group {group_id!r} must be a sequence of ints. "
            f"Received: {indices!r}. Example: [0, 1, 3]."
        )
    # Checked as one array: plans are built by the thousand in a search (the budget's repair).
    listed = None if isinstance(indices, np.ndarray) else list(indices)
    values = np.asarray(indices if listed is None else listed).ravel()
    if values.size and (values.dtype.kind not in "iu" or (listed is not None and any(
            isinstance(i, (bool, np.bool_)) for i in listed))):
        raise InvalidPlanError(
            f"Kept indices of group {group_id!r} must be ints. Received: "
            f"{(listed or values.tolist())[:10]!r}."
        )
    values = np.sort(values.astype(np.int64))
    if values.size and values[0] < 0:
        raise InvalidPlanError(
            f"Kept indices of group {group_id!r} must be >= 0. Received: {int(values[0])}."
        )
    repeated = values[1:][values[1:] == values[:-1]]
    if repeated.size:
        raise InvalidPlanError(
            f"Kept indices of group {group_id!r} contain duplicates. Received: "
            f"{sorted(set(repeated.tolist()))}. List each kept channel once."
        )
    return tuple(values.tolist())


def checked_plan(graph, plan):
    """``plan`` validated against ``graph``, with its unread channels pruned
    (`PruningPlan.without_unread`); ``None`` becomes a keep-all plan.

    Every reader of a plan (`apply_plan`, `cost`, the evaluator) starts here.
    """
    if plan is None:
        plan = PruningPlan.keep_all(graph)
    if not isinstance(plan, PruningPlan):
        raise InvalidPlanError(
            f"Expected a kb.PruningPlan. Received: plan={type(plan).__name__}. "
            "Build one with kb.PruningPlan({group_id: kept_indices}) or PruningPlan.random(graph)."
        )
    plan.validate(graph)
    return plan.without_unread(graph)
