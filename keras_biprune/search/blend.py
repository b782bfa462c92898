"""Blended criteria: cluster criteria by rank correlation, calibrate a blend of representatives.

Criteria often agree (L1 and L2 rank a layer's filters almost alike) and
sometimes disagree (FPGM, Taylor). Per group, `cluster_criteria` groups the
criteria whose rankings correlate (Spearman) and keeps one representative per
cluster; `calibrate_blend` searches, with PyGAD, the per-group weights of a
`BlendedCriterion` over the representatives that score best on an `Evaluator`.

Example:

```python
import keras_biprune as kb
from keras_biprune.search.blend import calibrate_blend
evaluator = kb.Evaluator(model, (x_val, y_val), metric="accuracy")
blend = calibrate_blend(evaluator, model, ("l1", "fpgm", "bn_scale"), keep=0.5)
plan = kb.criteria.select(evaluator.graph, model, 0.5, blend)
```
"""

import dataclasses
import logging
import numbers

import keras
import numpy as np
import pygad

from keras_biprune.criteria import Criterion, get, keep_counts, plan_from_scores, serialize
from keras_biprune.criteria.base import check_model
from keras_biprune.errors import CriterionError, InvalidPlanError

logger = logging.getLogger(__name__)


class BlendedCriterion(Criterion):
    """A weighted blend of the normalized ranks of several criteria.

    Per group, each member criterion's scores become ranks scaled to [0, 1]
    (lowest 0, highest 1, ties share their average rank); the blend is the
    weighted mean of those ranks, ``sum(w * ranks) / sum(w)`` (all zeros when
    every weight is 0). With a one-hot weight it ranks exactly like that
    criterion alone.

    Args:
        criteria: list of criteria or their names (see `keras_biprune.criteria.get`).
        weights: None for equal weights; one sequence of non-negative weights
            (one per criterion) for every group; or ``{group_id: weights}``,
            groups not listed getting equal weights.

    Example:

    ```python
    blend = BlendedCriterion(["l1", "fpgm"], weights=[0.7, 0.3])
    plan = kb.criteria.select(graph, model, 0.5, blend)
    ```
    """

    name = "blend"

    def __init__(self, criteria, weights=None):
        self.criteria = _resolve_criteria(criteria)
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
        return {"criteria": [serialize(c) for c in self.criteria], "weights": weights}

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
    found = cluster_criteria(graph, model, ["l1", "l2", "fpgm", "random"])
    found.representatives["conv2d"]        # e.g. [0, 2, 3]: l2 joined l1
    ```
    """
    check_model(graph, model)
    return _cluster(graph, model, _resolve_criteria(criteria), graph.prunable_groups, data,
                    threshold)


def calibrate_blend(evaluator, model, criteria=("l1", "l2", "fpgm", "bn_scale", "apoz", "taylor"),
                    keep=0.5, data=None, threshold=0.8, population_size=8, generations=5,
                    random_state=0, verbose=0):
    """Searches per-group blend weights of clustered criteria with an evolutionary algorithm.

    The criteria are clustered per group (`cluster_criteria`); a genome holds
    one weight in [0, 1] per representative of each group with several. Its
    fitness is the evaluator's score of the plan that keeps ``keep`` of every
    group by the blend; a generation is scored in one `Evaluator.evaluate`
    call and a genome seen before costs nothing. The first population holds,
    for each criterion, the genome that ranks every group by that criterion's
    representative, then equal weights, then random genomes; the best genome
    ever scored is returned, so the blend scores at least as well as the best
    of these seeds.

    Args:
        evaluator: a `keras_biprune.Evaluator` of ``model``.
        model: the model the evaluator scores.
        criteria: list of criteria or their names.
        keep: a ratio in (0, 1] for every prunable group, or ``{group_id:
            count or ratio}`` (see `keras_biprune.criteria.plan_from_scores`).
        data: data for data criteria (``"apoz"``, ``"taylor"``, ``"hrank"``).
        threshold: the correlation that links two criteria (see `cluster_criteria`).
        population_size: genomes per generation (at least 2; raised to hold
            every seed genome).
        generations: generations after the first population.
        random_state: int seed of the random genomes and of PyGAD.
        verbose: 0 silent, 1 a progress bar over generations.

    Returns:
        A fitted `BlendedCriterion` over the representatives.

        Attributes:
            score_: the evaluator's score of its plan.
            history_: one dict per generation: ``generation``, ``best`` and
                ``mean`` score of the population, ``evaluations`` so far.
            representatives_: ``{group_id: [criterion, ...]}``.
            clusters_: the `CriteriaClusters`.

    Example:

    ```python
    evaluator = kb.Evaluator(model, (x_val, y_val), metric="accuracy")
    blend = calibrate_blend(evaluator, model, ["l1", "fpgm", "apoz"], keep=0.5,
                            data=(x_val, y_val), generations=10, random_state=0)
    print(blend.score_, blend.history_[-1])
    ```
    """
    graph = evaluator.graph
    check_model(graph, model)
    criteria = _resolve_criteria(criteria)
    for name, value, low in (("population_size", population_size, 2),
                             ("generations", generations, 1)):
        if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < low:
            raise CriterionError(f"calibrate_blend expects {name} to be an int >= {low}. "
                                 f"Received: {name}={value!r}.")
    try:
        counts = keep_counts(graph, keep)
    except InvalidPlanError as error:
        raise CriterionError(f"calibrate_blend cannot keep channels: {error}") from error
    groups = [graph.group(group_id) for group_id in counts]
    found = _cluster(graph, model, criteria, groups, data, threshold)
    union = sorted({i for reps in found.representatives.values() for i in reps})
    slot = {i: j for j, i in enumerate(union)}
    layout = [(g, reps) for g, reps in found.representatives.items() if len(reps) > 1]

    def weights_of(genome):
        weights, start = {}, 0
        for group_id, reps in found.representatives.items():
            w = np.zeros(len(union))
            if len(reps) == 1:
                w[slot[reps[0]]] = 1.0
            else:
                w[[slot[i] for i in reps]] = genome[start:start + len(reps)]
                start += len(reps)
            weights[group_id] = w
        return weights

    sign = 1.0 if evaluator.greater_is_better else -1.0
    fitness = {}  # genome bytes -> (fitness, genome), in the order scored

    def score(genomes):
        genomes = [np.asarray(g, dtype="float64") for g in genomes]
        new = list({g.tobytes(): g for g in genomes if g.tobytes() not in fitness}.items())
        if new:
            plans = [plan_from_scores(graph, {
                gid: blend_ranks(w, found.ranks[gid][union]) for gid, w in weights_of(g).items()
            }, counts) for _, g in new]
            for (key, genome), value in zip(new, evaluator.evaluate(plans)):
                fitness[key] = (sign * float(value), genome)
        return [fitness[g.tobytes()][0] for g in genomes]

    seeds = _seed_genomes(found, layout)
    n_genes, size = len(seeds[0]), max(population_size, len(seeds) + 1)
    rng = np.random.default_rng(random_state)
    population = np.array(seeds + [rng.random(n_genes) for _ in range(size - len(seeds))])
    history = []
    if n_genes:
        progbar = keras.utils.Progbar(generations, verbose=verbose,
                                      stateful_metrics=["best", "mean"]) if verbose else None

        def on_generation(ga):
            values = np.asarray(ga.last_generation_fitness, dtype="float64")
            history.append({"generation": ga.generations_completed, "evaluations": len(fitness),
                            "best": float(sign * values.max()),
                            "mean": float(sign * values.mean())})
            if progbar is not None:
                progbar.update(ga.generations_completed, [("best", history[-1]["best"]),
                                                          ("mean", history[-1]["mean"])])

        logger.debug("calibrate_blend: %d weights over %d groups.", n_genes, len(layout))
        pygad.GA(num_generations=generations, num_parents_mating=max(2, size // 2),
                 fitness_func=lambda ga, genomes, _: score(genomes), fitness_batch_size=size,
                 initial_population=population, gene_space={"low": 0.0, "high": 1.0},
                 gene_type=float, crossover_type="uniform", on_generation=on_generation,
                 random_seed=random_state, suppress_warnings=True).run()
    else:
        score(population[:1])
    best, genome = max(fitness.values(), key=lambda item: item[0])
    result = BlendedCriterion([criteria[i] for i in union], weights_of(genome))
    result.score_ = sign * best
    result.history_ = history
    result.representatives_ = {g: [criteria[i] for i in reps]
                               for g, reps in found.representatives.items()}
    result.clusters_ = found
    return result


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


def _resolve_criteria(criteria):
    if isinstance(criteria, (str, dict, Criterion)) or not criteria:
        raise CriterionError(
            "Expected a non-empty list of criteria or their names. Received: "
            f"criteria={criteria!r}. Pass e.g. ['l1', 'fpgm']."
        )
    return [BlendedCriterion.from_config(c["config"])
            if isinstance(c, dict) and c.get("name") == BlendedCriterion.name else get(c)
            for c in criteria]


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


def _cluster(graph, model, criteria, groups, data, threshold):
    if not isinstance(threshold, numbers.Real) or not -1 <= threshold <= 1:
        raise CriterionError(f"threshold must be a correlation in [-1, 1]. Received: "
                             f"threshold={threshold!r}.")
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


def _seed_genomes(found, layout):
    """Per criterion, the genome one-hot on its cluster's representative in every group;
    then equal weights. Duplicates dropped."""
    heads = {g: {i: rep for c, rep in zip(found.clusters[g], found.representatives[g]) for i in c}
             for g, _ in layout}
    seeds = [np.array([float(r == heads[g][i]) for g, reps in layout for r in reps])
             for i in range(len(found.criteria))]
    seeds.append(np.ones_like(seeds[0]))
    return list({s.tobytes(): s for s in seeds}.values())
