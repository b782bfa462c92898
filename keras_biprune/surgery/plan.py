"""PruningPlan: which channel positions each group keeps. Plain data, JSON-able."""

import json
import numbers

import numpy as np

from keras_biprune.errors import InvalidPlanError, PlanMismatchError

_FORMAT = "keras_biprune.PruningPlan"
_VERSION = 1


class PruningPlan:
    """The channels each group keeps; groups not listed are kept whole.

    Args:
        keep: ``{group_id: kept positions}``; positions index the group's
            channels (``0 … group.size - 1``), in any order, without duplicates.
        signature: the ``ChannelGraph.signature`` the plan was made for, if
            known; `apply_plan` then refuses a plan made for another model.

    Attributes:
        keep: ``{group_id: sorted tuple of kept positions}``.
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

    def __init__(self, keep=None, *, signature=None):
        if keep is None:
            keep = {}
        if not isinstance(keep, dict):
            raise InvalidPlanError(
                "PruningPlan expects a dict {group_id: kept indices}. "
                f"Received: keep={type(keep).__name__}. Example: PruningPlan({{'conv2d': [0, 1, 3]}})."
            )
        self.keep = {}
        for group_id, indices in keep.items():
            self.keep[str(group_id)] = _as_indices(group_id, indices)
        self.signature = signature

    @classmethod
    def keep_all(cls, graph):
        """A plan that prunes nothing."""
        return cls({}, signature=graph.signature)

    @classmethod
    def random(cls, graph, ratio=0.3, seed=None):
        """Prunes ``ratio`` of every prunable group's channels, chosen at random.

        Each group keeps ``size - round(ratio * size)`` channels, at least one.

        Args:
            graph: a `ChannelGraph`.
            ratio: float in [0, 1), the share of channels to prune per group.
            seed: int seed of the random choice.
        """
        if not isinstance(ratio, numbers.Real) or not 0 <= ratio < 1:
            raise InvalidPlanError(
                f"ratio must be a number in [0, 1). Received: ratio={ratio!r}. "
                "Use e.g. ratio=0.3 to prune 30% of each group's channels."
            )
        rng = np.random.default_rng(seed)
        keep = {}
        for group in graph.prunable_groups:
            n_keep = max(1, group.size - round(ratio * group.size))
            keep[group.id] = sorted(rng.choice(group.size, n_keep, replace=False).tolist())
        return cls(keep, signature=graph.signature)

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
                    f"does not have. Received: keep[{group_id!r}]. Known groups start with "
                    f"{[g.id for g in graph.groups[:5]]}; see kb.trace(model).groups."
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

    def get_config(self):
        return {"keep": {k: list(v) for k, v in self.keep.items()}, "signature": self.signature}

    @classmethod
    def from_config(cls, config):
        return cls(config["keep"], signature=config.get("signature"))

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

    def __repr__(self):
        return f"PruningPlan({len(self.keep)} groups pruned, signature={self.signature!r})"


def _as_indices(group_id, indices):
    if isinstance(indices, (str, bytes)) or not hasattr(indices, "__iter__"):
        raise InvalidPlanError(
            f"Kept indices of group {group_id!r} must be a sequence of ints. "
            f"Received: {indices!r}. Example: [0, 1, 3]."
        )
    values = list(indices)
    if not all(isinstance(i, numbers.Integral) and not isinstance(i, bool) for i in values):
        raise InvalidPlanError(
            f"Kept indices of group {group_id!r} must be ints. Received: {values[:10]!r}."
        )
    values = [int(i) for i in values]
    if any(i < 0 for i in values):
        raise InvalidPlanError(
            f"Kept indices of group {group_id!r} must be >= 0. Received: {min(values)}."
        )
    if len(set(values)) != len(values):
        duplicates = sorted({i for i in values if values.count(i) > 1})
        raise InvalidPlanError(
            f"Kept indices of group {group_id!r} contain duplicates. Received: {duplicates}. "
            "List each kept channel once."
        )
    return tuple(sorted(values))
