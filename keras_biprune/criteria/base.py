"""The criterion interface and the rule that combines a group's member scores."""

import numpy as np

from keras_biprune.errors import CriterionError


class Criterion:
    """Base class of channel importance criteria.

    A criterion scores every position (independently prunable channel) of a
    channel group; higher means more important. Call it on one group, or use
    `keras_biprune.criteria.scores` to score every prunable group in one pass.

    A group's channels may be made by several layers (a residual ``Add`` joins
    the filters of several convs, a depthwise conv's outputs are its input
    channels). A criterion scores each such *member* on its own, then
    `combine` merges the member scores per position.

    Subclasses implement `score_groups`. Class attributes: ``name`` (the key in
    `keras_biprune.criteria.get`) and ``requires_data`` (True when scoring runs
    the model on data).

    Example:

    ```python
    import keras_biprune as kb
    graph = kb.trace(model)
    group = graph.prunable_groups[0]
    l1 = kb.criteria.L1()
    scores = l1(graph, group, model)          # np.ndarray of shape (group.size,)
    ```
    """

    name = None
    requires_data = False

    def __call__(self, graph, group, model, data=None):
        """Scores one group.

        Args:
            graph: the `ChannelGraph` of ``model`` (from `kb.trace`).
            group: a `ChannelGroup` of ``graph`` or its id.
            model: the traced model, whose weights are scored.
            data: what the model is run on, for data criteria (see
                `keras_biprune.criteria.scores`).

        Returns:
            A float array of shape ``(group.size,)``; higher is more important.
        """
        check_model(graph, model)
        group = resolve_group(graph, group)
        return self.score_groups(graph, [group], model, data)[group.id]

    def score_groups(self, graph, groups, model, data=None):
        """Scores several groups at once: ``{group.id: scores}``."""
        raise NotImplementedError

    def get_config(self):
        """The constructor arguments, as plain Python data."""
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other):
        return type(self) is type(other) and self.get_config() == other.get_config()

    def __hash__(self):
        return hash((type(self).__name__, repr(self.get_config())))


def check_model(graph, model):
    """Raises `CriterionError` unless ``model`` is (by name) the model ``graph`` was traced from."""
    if getattr(model, "name", None) != graph.model_name:
        raise CriterionError(
            f"The graph was traced from model {graph.model_name!r}. Received: "
            f"model={getattr(model, 'name', model)!r}. Pass the model you traced."
        )


def resolve_group(graph, group):
    """The `ChannelGroup` of ``graph`` named by ``group`` (a group or its id)."""
    group_id = getattr(group, "id", group)
    if not isinstance(group_id, str) or group_id not in graph:
        raise CriterionError(
            f"The group must be a ChannelGroup of this graph or its id. Received: "
            f"group={group!r}. {graph.known_groups()}"
        )
    return graph.group(group_id)


def position_scores(index_map, entry_scores, reduce=np.mean):
    """Per-position scores of one member from per-entry scores.

    Args:
        index_map: the member's map from channel-axis entries to positions
            (-1 for entries of other groups).
        entry_scores: one score per entry of the channel axis.
        reduce: how the entries of one position merge (a depthwise conv with
            ``depth_multiplier=2`` has two entries per position).

    Returns:
        ``(positions, scores)``: the positions this member carries and their scores.
    """
    positions = np.unique(index_map[index_map >= 0])
    scores = np.array([reduce(entry_scores[index_map == p]) for p in positions], dtype="float64")
    return positions, scores


def combine(size, parts):
    """Merges member scores into one score per group position.

    Each member's scores are divided by their mean over the positions it
    carries, so members of different scale weigh alike (a member whose scores
    are all zero stays zero). Each position then gets the average of the
    normalized scores of the members that carry it; a position no member
    carries gets 1.0, the average normalized score.

    Args:
        size: the group's number of positions.
        parts: list of ``(positions, scores)`` pairs, one per member.

    Returns:
        A float array of shape ``(size,)``.

    Example:

    ```python
    combine(2, [(np.array([0, 1]), np.array([3.0, 1.0])),     # -> [1.5, 0.5]
                (np.array([0, 1]), np.array([0.0, 4.0]))])    # -> [0.0, 2.0]
    # array([0.75, 1.25])
    ```
    """
    total = np.zeros(size)
    count = np.zeros(size)
    for positions, scores in parts:
        mean = scores.mean()
        total[positions] += scores / mean if mean > 0 else scores
        count[positions] += 1
    return np.where(count > 0, total / np.maximum(count, 1), 1.0)
