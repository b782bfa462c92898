"""ParetoFront: the non-dominated plans of a search, score against cost."""

import dataclasses

import numpy as np

from keras_biprune._validate import check_int
from keras_biprune.errors import SearchError
from keras_biprune.plan import PruningPlan


@dataclasses.dataclass(frozen=True)
class Solution:
    """One searched plan with what was measured on it.

    Attributes:
        plan: the `PruningPlan`.
        score: the evaluator's score (before fine-tuning).
        cost: its cost as a share of the unpruned model's (the search's measure).

    Example:

    ```python
    best = kb.search.NSGA2Search(evaluator, max_accuracy_drop=0.05).run().best
    slim = kb.apply_plan(model, best.plan)
    ```
    """

    plan: object
    score: float
    cost: float


class ParetoFront:
    """Plans that no other plan beats on both score and cost, cheapest first.

    Args:
        solutions: `Solution` objects (any order, dominated ones allowed:
            they are dropped).
        greater_is_better: whether a higher score is better.
        measure: what the cost measures (``"flops"``, ``"params"``, ``"filters"``).

    Attributes:
        solutions: the non-dominated `Solution` list, by increasing cost.

    Example:

    ```python
    front = kb.search.NSGA2Search(evaluator, max_accuracy_drop=0.05).run()
    for s in front.select(3):
        print(s.cost, s.score)
    ```
    """

    def __init__(self, solutions, greater_is_better=True, measure="flops"):
        self.greater_is_better = greater_is_better
        self.measure = measure
        sign = 1.0 if greater_is_better else -1.0
        ordered = sorted(solutions, key=lambda s: (s.cost, -sign * s.score))
        kept, best = [], -np.inf
        for s in ordered:
            if sign * s.score > best:
                kept.append(s)
                best = sign * s.score
        self.solutions = kept

    def __len__(self):
        return len(self.solutions)

    def __iter__(self):
        return iter(self.solutions)

    def __getitem__(self, index):
        return self.solutions[index]

    @property
    def scores(self):
        return np.array([s.score for s in self.solutions])

    @property
    def costs(self):
        return np.array([s.cost for s in self.solutions])

    def select(self, k):
        """``k`` solutions spread evenly along the front by cost (fewer if the front is smaller).

        The cheapest and the most expensive are always among them when
        ``k >= 2``; the others are the ones nearest to evenly spaced costs.
        """
        check_int("k", k, 1, SearchError)
        if k >= len(self.solutions):
            return list(self.solutions)
        costs = self.costs
        chosen = []
        for target in np.linspace(costs[0], costs[-1], k):
            order = np.argsort(np.abs(costs - target), kind="stable")
            chosen.append(next(int(i) for i in order if int(i) not in chosen))
        return [self.solutions[i] for i in sorted(chosen)]

    def hypervolume(self, reference_drop=1.0, baseline=None):
        """Area dominated by the front in (score, 1 − cost), above a reference point.

        The reference point is cost 1 and a score ``reference_drop`` below
        ``baseline`` (default: the best score on the front).
        """
        if not self.solutions:
            return 0.0
        sign = 1.0 if self.greater_is_better else -1.0
        oriented = sign * self.scores
        floor = (oriented.max() if baseline is None else sign * baseline) - reference_drop
        area, previous = 0.0, floor
        for saving, score in sorted(zip(1.0 - self.costs, oriented), reverse=True):
            if score > previous:
                area += max(0.0, saving) * (score - previous)
                previous = score
        return float(area)

    def to_dict(self):
        """Plain data: measure, and per solution the plan config, score and cost."""
        return {"measure": self.measure, "greater_is_better": self.greater_is_better,
                "solutions": [{"plan": s.plan.get_config(), "score": s.score, "cost": s.cost}
                              for s in self.solutions]}

    @classmethod
    def from_dict(cls, data):
        return cls([Solution(PruningPlan.from_config(s["plan"]), s["score"], s["cost"])
                    for s in data["solutions"]], data["greater_is_better"], data["measure"])

    def __repr__(self):
        return f"ParetoFront({len(self.solutions)} solutions, measure={self.measure!r})"
