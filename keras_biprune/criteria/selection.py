"""From criterion scores to pruning plans."""


import numpy as np

from keras_biprune._validate import is_int, is_number
from keras_biprune.criteria.base import check_model
from keras_biprune.criteria.registry import get
from keras_biprune.errors import CriterionError, InvalidPlanError
from keras_biprune.plan import PruningPlan


def scores(graph, model, criterion="l1", data=None):
    """Scores every prunable group of a model in one pass.

    Args:
        graph: the model's `ChannelGraph` (from `kb.trace(model)`).
        model: the traced model.
        criterion: a criterion or its name (see `keras_biprune.criteria.get`).
        data: for data criteria (``"apoz"``, ``"taylor"``, ``"hrank"``): an
            array (inputs only), a tuple ``(x, y)`` of arrays, a
            ``tf.data.Dataset`` or ``keras.utils.PyDataset`` of batches; a few
            batches are used (the criterion's ``max_batches``).

    Returns:
        ``{group_id: float array of shape (group.size,)}``; higher is more
        important.

    Example:

    ```python
    import keras_biprune as kb
    graph = kb.trace(model)
    by_group = kb.criteria.scores(graph, model, "fpgm")
    taylor = kb.criteria.scores(graph, model, kb.criteria.Taylor(loss="mse"),
                                data=(x_val, y_val))
    ```
    """
    check_model(graph, model)
    return get(criterion).score_groups(graph, graph.prunable_groups, model, data)


def plan_from_scores(graph, group_scores, keep):
    """Keeps the highest-scoring positions of each group.

    Args:
        graph: a `ChannelGraph`.
        group_scores: ``{group_id: scores}``, e.g. from `scores`.
        keep: how much each group keeps: a float ratio in (0, 1] for every
            prunable group, or ``{group_id: count or ratio}`` with an int count
            (1 … group size) or a float ratio in (0, 1] per group. A ratio
            keeps ``round(ratio * size)`` channels, at least one. Groups not
            listed are kept whole.

    Returns:
        A `PruningPlan` for ``graph``. Ties keep the lower position.

    Example:

    ```python
    by_group = kb.criteria.scores(graph, model, "l1")
    plan = kb.criteria.plan_from_scores(graph, by_group, 0.5)
    ```
    """
    counts = keep_counts(graph, keep)
    kept = {}
    for group_id, count in counts.items():
        if group_id not in group_scores:
            raise CriterionError(
                f"No scores for group {group_id!r}. Received: scores for "
                f"{sorted(group_scores)[:5]}. Score every group that keep names."
            )
        values = np.asarray(group_scores[group_id], dtype="float64")
        if values.shape != (graph.group(group_id).size,):
            raise CriterionError(
                f"Group {group_id!r} has {graph.group(group_id).size} positions. Received: "
                f"scores of shape {values.shape}. Pass one score per position."
            )
        kept[group_id] = np.argsort(-values, kind="stable")[:count].tolist()
    return PruningPlan(kept, signature=graph.signature)


def select(graph, model, keep, criterion="l1", data=None):
    """A pruning plan keeping each group's most important channels by a criterion.

    Args:
        graph: the model's `ChannelGraph` (from `kb.trace(model)`).
        model: the traced model.
        keep: a float ratio in (0, 1] for every prunable group, or
            ``{group_id: count or ratio}`` (see `plan_from_scores`).
        criterion: a criterion or its name (see `keras_biprune.criteria.get`).
        data: data for data criteria (see `scores`).

    Returns:
        A `PruningPlan`; apply it with `kb.apply_plan(model, plan)`.

    Example:

    ```python
    import keras_biprune as kb
    graph = kb.trace(model)
    plan = kb.criteria.select(graph, model, 0.5, "l1")      # L1, half of every group
    plan = kb.criteria.select(graph, model, {"conv2d": 4}, "apoz", data=x_val)
    slim = kb.apply_plan(model, plan)
    ```
    """
    check_model(graph, model)
    counts = keep_counts(graph, keep)
    groups = [graph.group(group_id) for group_id in counts]
    group_scores = get(criterion).score_groups(graph, groups, model, data)
    return plan_from_scores(graph, group_scores, counts)


def keep_counts(graph, keep):
    """``{group_id: number of channels to keep}`` from a ratio or a per-group dict.

    Args:
        graph: a `ChannelGraph`.
        keep: a float ratio in (0, 1] for every prunable group, or
            ``{group_id: count or ratio}`` (see `plan_from_scores`).

    Returns:
        ``{group_id: int count}`` for the groups ``keep`` covers.

    Example:

    ```python
    import keras_biprune as kb
    graph = kb.trace(model)
    kb.criteria.keep_counts(graph, 0.5)      # {group_id: round(size / 2)} per prunable group
    group_id = graph.prunable_groups[0].id
    kb.criteria.keep_counts(graph, {group_id: 3})   # {group_id: 3}
    ```
    """
    if is_number(keep) and not is_int(keep):
        keep = {group.id: keep for group in graph.prunable_groups}
    if not isinstance(keep, dict):
        raise InvalidPlanError(
            "keep must be a ratio in (0, 1] or a dict {group_id: count or ratio}. "
            f"Received: keep={keep!r}. Example: keep=0.5 or keep={{'conv2d': 4}}."
        )
    counts = {}
    for group_id, value in keep.items():
        group = graph.require(group_id, "keep")
        counts[group_id] = _count(group, value)
        if not group.prunable and counts[group_id] < group.size:
            raise InvalidPlanError(
                f"Group {group_id!r} cannot be pruned: {group.reason}. Received: "
                f"keep[{group_id!r}]={value!r}. Leave it out of keep."
            )
    return counts


def _count(group, value):
    if is_int(value):
        if 1 <= value <= group.size:
            return int(value)
    elif is_number(value) and 0 < value <= 1:
        return max(1, round(value * group.size))
    raise InvalidPlanError(
        f"Group {group.id!r} has {group.size} channels. Received: keep[{group.id!r}]="
        f"{value!r}. Give an int count in [1, {group.size}] or a float ratio in (0, 1]."
    )

