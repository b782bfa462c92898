"""What the searches optimize: evaluator score and cost of a plan, and one fitness."""


import numpy as np

from keras_biprune._validate import check_int, check_number
from keras_biprune.errors import SearchError


class Objective:
    """Scores plans with the evaluator, prices them with a `Budget`, and caches both.

    The fitness every search maximizes is one number per plan:

    - With ``max_accuracy_drop`` (ε): a plan whose score is within ε of the
      unpruned model's is *feasible* and gets ``1 - cost`` (smaller is
      better; in [0, 1)). An infeasible plan gets ``-(violation)``, where the
      violation adds the score drop beyond ε and ten times the cost above
      the budget's target, so it is always below every feasible plan and a
      smaller violation is better. This is the bi-level papers' problem:
      minimize filters (or FLOPs) subject to accuracy.
    - Without ε: the oriented score (higher is better) minus ten times the
      cost above the target: the best accuracy within the budget.

    The oriented score is the evaluator's score, negated when lower is better
    (losses). Scores are in the metric's units (accuracy 0.01 = one point).

    Args:
        evaluator: a `keras_biprune.Evaluator`.
        budget: a `Budget` (its target may be None).
        max_accuracy_drop: ε, or None.
        max_evaluations: plans the evaluator may score (None: no limit).
        on_measured: called with the number of plans scored so far after
            each batch the evaluator scores (a search's progress line).

    Example:

    ```python
    import keras_biprune as kb
    evaluator = kb.Evaluator(model, (x_val, y_val))
    budget = kb.search.Budget(evaluator.graph, target=0.5)
    objective = kb.search.Objective(evaluator, budget, max_accuracy_drop=0.02)
    plans = [kb.PruningPlan.random(evaluator.graph, 0.5, seed=s) for s in range(4)]
    scores, costs = objective.measure(plans)
    fitness = objective.fitness(scores, costs)
    ```
    """

    def __init__(self, evaluator, budget, max_accuracy_drop=None, max_evaluations=None,
                 on_measured=None):
        if max_accuracy_drop is not None:
            check_number("max_accuracy_drop", max_accuracy_drop, SearchError, 0,
                         fix="It is in the metric's units (or None): use e.g. 0.01 for one "
                             "point of accuracy.")
        if max_accuracy_drop is None and budget.target is None:
            raise SearchError(
                "Nothing to optimize: give a cost target (e.g. target_flops=0.5) or "
                "max_accuracy_drop (e.g. 0.01), or both. Received: neither."
            )
        if max_evaluations is not None:
            check_int("max_evaluations", max_evaluations, 1, SearchError, "Or pass None.")
        self.evaluator = evaluator
        self.budget = budget
        self.max_accuracy_drop = max_accuracy_drop
        self.max_evaluations = max_evaluations
        self.sign = 1.0 if evaluator.greater_is_better else -1.0
        self.baseline = self.sign * evaluator.baseline
        self.cache = {}
        self.n_evaluations = 0
        self.on_measured = on_measured

    @property
    def exhausted(self):
        """True once ``max_evaluations`` plans have been scored."""
        return self.max_evaluations is not None and self.n_evaluations >= self.max_evaluations

    def measure(self, plans):
        """``(scores, costs)`` of plans: evaluator scores and cost shares, cached."""
        todo = list(dict.fromkeys(p for p in plans if p not in self.cache))
        if todo:
            scores = self.evaluator.evaluate(todo)
            self.n_evaluations += len(todo)
            if self.on_measured is not None:
                self.on_measured(self.n_evaluations)
            for plan, score in zip(todo, scores):
                self.cache[plan] = (float(score), float(self.budget.ratio(plan)))
        values = np.array([self.cache[p] for p in plans], dtype="float64").reshape(-1, 2)
        return values[:, 0], values[:, 1]

    def drop(self, scores):
        """How far below the unpruned model each score is (in the metric's units)."""
        return self.baseline - self.sign * np.asarray(scores)

    def violation(self, scores, costs):
        """0 for feasible plans, else how far they are outside the constraints."""
        over = 0.0 if self.budget.target is None else np.maximum(0.0, costs - self.budget.target)
        out = 10.0 * over
        if self.max_accuracy_drop is not None:
            out = out + np.maximum(0.0, self.drop(scores) - self.max_accuracy_drop)
        return out * np.ones_like(costs)

    def fitness(self, scores, costs):
        """The scalar fitness (higher is better) of measured plans; see the class doc."""
        violation = self.violation(scores, costs)
        if self.max_accuracy_drop is None:
            return self.sign * np.asarray(scores) - violation
        return np.where(violation > 0, -violation, 1.0 - costs)

    def __call__(self, plans):
        """The scalar fitness of plans (measures them first)."""
        return self.fitness(*self.measure(plans))

    def state(self):
        return {"cache": dict(self.cache), "n_evaluations": self.n_evaluations}

    def restore(self, state):
        self.cache = dict(state["cache"])
        self.n_evaluations = state["n_evaluations"]
