"""Calibrating a blended criterion: an evolutionary search over its weights.

Example:

```python
import keras_biprune as kb
evaluator = kb.Evaluator(model, (x_val, y_val), metric="accuracy")
blend = kb.search.calibrate_blend(evaluator, model, ("l1", "fpgm", "bn_scale"), keep=0.5)
plan = kb.criteria.select(evaluator.graph, model, 0.5, blend)
```
"""

import logging

import numpy as np
import pygad

from keras_biprune._progress import Progress
from keras_biprune._validate import check_int
from keras_biprune.criteria import keep_counts, plan_from_scores
from keras_biprune.criteria.base import check_model
from keras_biprune.criteria.blend import (
    BlendedCriterion,
    blend_ranks,
    cluster_groups,
    resolve_criteria,
)
from keras_biprune.errors import CriterionError, InvalidPlanError

logger = logging.getLogger(__name__)


def calibrate_blend(evaluator, model, criteria=("l1", "l2", "fpgm", "bn_scale"),
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
        criteria: list of criteria or their names; the default ones need no
            data. Add ``"apoz"``, ``"hrank"`` or ``kb.criteria.Taylor(loss=...)``
            with ``data``.
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
    criteria = resolve_criteria(criteria)
    for name, value, low in (("population_size", population_size, 2),
                             ("generations", generations, 1)):
        check_int(name, value, low, CriterionError)
    try:
        counts = keep_counts(graph, keep)
    except InvalidPlanError as error:
        raise CriterionError(f"calibrate_blend cannot keep channels: {error}") from error
    groups = [graph.group(group_id) for group_id in counts]
    found = cluster_groups(graph, model, criteria, groups, data, threshold)
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
        progress = Progress(generations, verbose, ("best", "mean", "evaluations"))

        def on_generation(ga):
            values = np.asarray(ga.last_generation_fitness, dtype="float64")
            history.append({"generation": ga.generations_completed, "evaluations": len(fitness),
                            "best": float(sign * values.max()),
                            "mean": float(sign * values.mean())})
            progress.update(ga.generations_completed, history[-1])

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


def _seed_genomes(found, layout):
    """Per criterion, the genome one-hot on its cluster's representative in every group;
    then equal weights. Duplicates dropped."""
    heads = {g: {i: rep for c, rep in zip(found.clusters[g], found.representatives[g]) for i in c}
             for g, _ in layout}
    seeds = [np.array([float(r == heads[g][i]) for g, reps in layout for r in reps])
             for i in range(len(found.criteria))]
    seeds.append(np.ones_like(seeds[0]))
    return list({s.tobytes(): s for s in seeds}.values())
