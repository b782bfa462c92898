"""Blended criteria: a weighted blend of several criteria's ranks, and their clusters.

Criteria often agree (L1 and L2 rank a layer's filters almost alike) and
sometimes disagree (FPGM, Taylor). Per group, `cluster_criteria` groups the
criteria whose rankings correlate (Spearman) and keeps one representative per
cluster; a `BlendedCriterion` ranks channels by a weighted mean of its
members' ranks. `keras_biprune.search.calibrate_blend` searches the weights.
"""

import dataclasses

import numpy as np

from keras_biprune._validate import check_number
from keras_biprune.criteria.base import Criterion, check_model
from keras_biprune.criteria.registry import get, register, serialize
from keras_biprune.errors import CriterionError


@register
class BlendedCriterion(Criterion):
    """A weighted blend of the normalized ranks of several criteria.

    Per group, each member criterion's scores become ranks scaled to [0, 1]
    (lowest 0, highest 1, ties share their average rank); the blend is the
    weighted mean of those ranks, ``sum(w * ranks) / sum(w)`` (all zeros when
    every weight is 0). With a one-hot weight it ranks exactly like that
    criterion alone.

    Args:
        criteria: list of criteria or their names (see `keras_biprune.criteria.get`);
            by default the four weight criteria, so ``get("blend")`` is their
            equal blend.
        weights: None for equal weights; one sequence of non-negative weights
            (one per criterion) for every group; or ``{group_id: weights}``,
            groups not listed getting equal weights.

    Example:

    ```python
    blend = kb.criteria.BlendedCriterion(["l1", "fpgm"], weights=[0.7, 0.3])
    plan = kb.criteria.select(graph, model, 0.5, blend)
    ```
    """

    name = "blend"

    def __init__(self, criteria=("l1", "l2", "fpgm", "bn_scale"), weights=None):
        self.criteria = resolve_criteria(criteria)
        self.requires_data = any(c.requires_data for c in self.criteria)
        if isinstance(weights, dict):
            self.weights = {str(k): self._check_weights(v, k) for k, v in weights.items()}
        else:
            self.weights = None if weights is None else self._check_weights(weights, None)

    def _check_weights(self, weights, group_id):
        values = np.asarray(weights, dtype="float64")
        if values.shape != (len(self.criteria),) or not np.all(np.isfinite(values) & (values >= 0)):
            where = "" if group_id is None else f"[{group_id!r}]"
            raise CriterionError(
                f"BlendedCriterion expects one non-negative finite weight per criterion "
                f"({len(self.criteria)}). Received: weights{where}={weights!r}. Pass a list of "
                f"{len(self.criteria)} weights, or a dict of such lists by group id."
            )
        return values

    def group_weights(self, group_id):
        """The weights that blend ``group_id``'s criteria."""
        if isinstance(self.weights, dict):
            return self.weights.get(group_id, np.ones(len(self.criteria)))
        return np.ones(len(self.criteria)) if self.weights is None else self.weights

    def get_config(self):
        weights = self.weights
        if isinstance(weights, dict):
            weights = {k: v.tolist() for k, v in weights.items()}
        elif weights is not None:
            weights = weights.tolist()
        return {"criteria": [serialize(c) for c in self.criteria],
                "weights": weights}

    def score_groups(self, graph, groups, model, data=None):
        ranks = _rank_groups(graph, model, self.criteria, groups, data)
        return {g.id: blend_ranks(self.group_weights(g.id), ranks[g.id]) for g in groups}


@dataclasses.dataclass
class CriteriaClusters:
    """Criteria clustered per group by the rank correlation of their scores.

    Attributes:
        criteria: the criteria, in the order given; indices below refer to it.
        ranks: ``{group_id: (criteria, group.size) array}`` of normalized ranks.
        correlations: ``{group_id: (criteria, criteria) array}`` of Spearman
            correlations.
        clusters: ``{group_id: [[criterion index, ...], ...]}``.
        representatives: ``{group_id: [criterion index per cluster]}``.

    Returned by `cluster_criteria`.

    Example:

    ```python
    import keras_biprune as kb
    graph = kb.trace(model)
    found = kb.criteria.cluster_criteria(graph, model, ["l1", "l2", "fpgm", "random"])
    group_id = graph.prunable_groups[0].id
    for cluster in found.clusters[group_id]:
        print([found.criteria[i].name for i in cluster])     # e.g. ['l1', 'l2']
    print(found.correlations[group_id].round(2))              # 4 x 4 Spearman matrix
    ```
    """

    criteria: list
    ranks: dict
    correlations: dict
    clusters: dict
    representatives: dict


def cluster_criteria(graph, model, criteria, data=None, threshold=0.8):
    """Clusters criteria per group by the Spearman correlation of their scores.

    Clustering is single-linkage: two criteria share a cluster when a chain of
    criteria links them, each pair correlating at least ``threshold``. A
    cluster's representative is its member with the highest mean correlation
    to the cluster (the first given on ties). A criterion whose scores are
    constant on a group carries no ranking there: it correlates 1 with other
    constant criteria and 0 with the rest (so a group of one channel has a
    single cluster).

    Args:
        graph: the model's `ChannelGraph` (from `kb.trace(model)`).
        model: the traced model.
        criteria: list of criteria or their names.
        data: data for data criteria (see `keras_biprune.criteria.scores`).
        threshold: the correlation in [-1, 1] that links two criteria.

    Returns:
        A `CriteriaClusters` over every prunable group.

    Example:

    ```python
    found = kb.criteria.cluster_criteria(graph, model, ["l1", "l2", "fpgm", "random"])
    found.representatives["conv2d"]        # e.g. [0, 2, 3]: l2 joined l1
    ```
    """
    check_model(graph, model)
    return cluster_groups(graph, model, resolve_criteria(criteria), graph.prunable_groups, data,
                    threshold)


def blend_ranks(weights, ranks):
    """The weighted mean ``weights @ ranks / sum(weights)`` (zeros when the weights sum to 0)."""
    total = weights.sum()
    return weights @ ranks / total if total > 0 else np.zeros(ranks.shape[1])


def normalized_ranks(values):
    """Ranks of ``values`` scaled to [0, 1]; ties share their average rank."""
    values = np.asarray(values, dtype="float64")
    ranks = np.empty(len(values))
    ranks[np.argsort(values, kind="stable")] = np.arange(len(values))
    _, inverse = np.unique(values, return_inverse=True)
    ranks = (np.bincount(inverse, ranks) / np.bincount(inverse))[inverse]
    return ranks / max(len(values) - 1, 1)


def resolve_criteria(criteria):
    if isinstance(criteria, (str, dict, Criterion)) or not criteria:
        raise CriterionError(
            "Expected a non-empty list of criteria or their names. Received: "
            f"criteria={criteria!r}. Pass e.g. ['l1', 'fpgm']."
        )
    return [get(c) for c in criteria]



def _rank_groups(graph, model, criteria, groups, data):
    """``{group_id: (criteria, size) array}`` of each criterion's normalized ranks."""
    needing = [c.name for c in criteria if c.requires_data]
    if data is None and needing:
        raise CriterionError(
            f"Criteria {needing} run the model on data. Received: data=None. Pass data=(x, y) "
            "(or x), or leave those criteria out."
        )
    scored = [c.score_groups(graph, groups, model, data) for c in criteria]
    return {g.id: np.stack([normalized_ranks(s[g.id]) for s in scored]) for g in groups}


def cluster_groups(graph, model, criteria, groups, data, threshold):
    check_number("threshold", threshold, CriterionError, -1, 1,
                 fix="It is a rank correlation.")
    ranks = _rank_groups(graph, model, criteria, groups, data)
    found = CriteriaClusters(criteria, ranks, {}, {}, {})
    for group_id, group_ranks in ranks.items():
        corr = _spearman(group_ranks)
        linked, clusters, seen = corr >= threshold - 1e-9, [], set()
        for i in range(len(criteria)):
            if i not in seen:
                members, stack = set(), [i]
                while stack:
                    j = stack.pop()
                    if j not in members:
                        members.add(j)
                        stack.extend(np.flatnonzero(linked[j]).tolist())
                seen |= members
                clusters.append(sorted(members))
        found.correlations[group_id] = corr
        found.clusters[group_id] = clusters
        found.representatives[group_id] = [
            c[int(np.argmax(corr[np.ix_(c, c)].mean(axis=1)))] for c in clusters]
    return found


def _spearman(ranks):
    """Pearson correlation of rank rows; constant rows correlate 1 with each other, else 0."""
    centred = ranks - ranks.mean(axis=1, keepdims=True)
    norms = np.sqrt((centred**2).sum(axis=1))
    constant = norms < 1e-12
    safe = np.where(constant, 1.0, norms)
    corr = np.clip(centred @ centred.T / np.outer(safe, safe), -1, 1)
    corr[constant] = 0.0
    corr[:, constant] = 0.0
    corr[np.ix_(constant, constant)] = 1.0
    np.fill_diagonal(corr, 1.0)
    return corr
