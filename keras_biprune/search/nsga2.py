"""One-shot multi-objective filter pruning (EMOFP): NSGA-II over filter masks."""

import numpy as np

from keras_biprune.search._evolution import next_generation, seed_for
from keras_biprune.search.base import Search, SearchResult


class NSGA2Search(Search):
    """NSGA-II over filter masks (or widths): a Pareto front of score against cost.

    Two objectives, both through PyGAD's ``"nsga2"`` selection (PyGAD
    maximizes, so the objectives are the oriented score and ``1 - cost``):
    the evaluator's score before fine-tuning, and the kept share of FLOPs
    (``measure="flops"``), parameters or filters. Constraints: the score may
    drop at most ``max_accuracy_drop`` below the unpruned model's, and, with
    ``target``, upper plans are repaired to that cost. An infeasible plan's
    objectives are both set below every feasible plan's, lower the further
    it is outside (so NSGA-II ranks it behind all feasible plans).

    The front collects every feasible plan scored during the run, not only
    the last population; pick from it with `ParetoFront.select`. Parents
    chosen by NSGA-II selection stay in the next population (elitism).

    The other arguments are those of `keras_biprune.search.Search`
    (``population_size`` defaults to 16, ``generations`` to 10).

    Args:
        evaluator: a `keras_biprune.Evaluator`.

    Example:

    ```python
    import keras_biprune as kb
    evaluator = kb.Evaluator(model, (x_val, y_val))
    result = kb.search.NSGA2Search(evaluator, max_accuracy_drop=0.1,
                                   generations=5, random_state=0).run()
    for solution in result.front.select(3):
        print(solution.cost, solution.score)
        slim = kb.apply_plan(model, solution.plan)
    ```
    """

    _progress_keys = ("front", "hypervolume", "evaluations")

    def run(self):
        """Runs (or resumes) the search.

        Returns:
            A `SearchResult`: ``front`` is the Pareto front, ``best`` its
            highest-scoring solution, ``history`` has ``front`` (its size)
            and ``hypervolume`` per generation.
        """
        self._setup()
        state = self._checkpoint.load()
        if state is None:
            population = self._seed_population(self.population_size)
            self._plans = {}
            fitness = self._fitness(population)
            history, generation, elapsed = [], 0, 0.0
        else:
            population, fitness = state["population"], state["fitness"]
            self._objective.restore(state["objective"])
            self._plans = dict.fromkeys(self._plans_from_state(state["plans"]))
            history, generation, elapsed = state["history"], state["generation"], state["elapsed"]
        progress = self._progress
        progress.done = generation
        while generation < self.generations and not self._objective.exhausted:
            population, fitness = next_generation(
                population, self._fitness, self._upper.gene_space,
                seed_for(self.random_state, "nsga2", generation), multi_objective=True)
            generation += 1
            front = self._front(self._plans)
            entry = self._history_entry(
                generation, fitness[:, 0], elapsed + progress.elapsed(), front=len(front),
                hypervolume=front.hypervolume(baseline=self.evaluator.baseline))
            history.append(entry)
            self._checkpoint.save(generation, {
                "population": population, "fitness": fitness,
                "objective": self._objective.state(),
                "plans": self._plan_state(self._plans), "history": history,
                "elapsed": entry["elapsed"]})
            progress.update(generation, entry)
        progress.close(generation)
        front = self._front(self._plans)
        best = max(front, key=lambda s: self._objective.sign * s.score) if len(front) else None
        ranked = sorted(front, key=lambda s: -self._objective.sign * s.score)
        return SearchResult(best, front, history, self._objective.n_evaluations, ranked)

    def _fitness(self, genomes):
        """Rows of (oriented score, 1 - cost); infeasible rows below every feasible one."""
        plans = [self._decode(g) for g in genomes]
        for plan in plans:
            self._plans.setdefault(plan)
        scores, costs = self._objective.measure(plans)
        violation = self._objective.violation(scores, costs)
        objectives = np.stack([self._objective.sign * scores, 1.0 - costs], axis=1)
        floor = np.array([self._objective.baseline - (self.max_accuracy_drop or 0.0) - 1.0, -1.0])
        infeasible = violation > 0
        objectives[infeasible] = floor - violation[infeasible, None]
        return np.nan_to_num(objectives, neginf=-1e9)
