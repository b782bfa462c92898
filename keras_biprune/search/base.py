"""What the searches share: settings, criterion seeding, the upper encoding, results."""

import dataclasses

import numpy as np

from keras_biprune import criteria
from keras_biprune._progress import Progress
from keras_biprune._validate import check_int
from keras_biprune.errors import SearchError
from keras_biprune.plan import PruningPlan
from keras_biprune.search._evolution import Checkpoint, seed_for
from keras_biprune.search.front import ParetoFront, Solution
from keras_biprune.search.objective import Objective
from keras_biprune.search.space import Budget, UpperEncoding


@dataclasses.dataclass
class SearchResult:
    """What a search returns.

    Attributes:
        best: the best `Solution` by the search's fitness.
        front: the `ParetoFront` of the plans it found (score against cost).
        history: one dict per generation (``generation``, ``best``, ``mean``
            fitness, ``evaluations``, ``elapsed`` seconds, and more per search).
        n_evaluations: plans the evaluator scored.
        ranked: the distinct plans within the constraints, best first by the
            search's fitness, as `Solution`s (the finalists a recovery race
            chooses from, see `keras_biprune.BiLevelPruner`).

    Example:

    ```python
    result = kb.search.NSGA2Search(evaluator, max_accuracy_drop=0.05).run()
    print(result.best.score, result.best.cost, len(result.front))
    print(result.history[-1]["hypervolume"], result.n_evaluations)
    ```
    """

    best: Solution
    front: ParetoFront
    history: list
    n_evaluations: int
    ranked: list = dataclasses.field(default_factory=list)


class Search:
    """Base of the searches: arguments are stored; `run` does the work.

    Args:
        evaluator: a `keras_biprune.Evaluator` of the model to prune.
        target: kept share of the cost measure, in (0, 1], or None. Upper
            plans are repaired to it (see `keras_biprune.search.Budget`).
        measure: ``"flops"``, ``"params"``, ``"filters"`` or ``"latency"``
            (predicted by ``latency_model``).
        latency_model: a `keras_biprune.evaluate.LatencyModel` of the
            evaluator's model, for a latency ``measure`` or extra target.
        extra_targets: ``{measure: target}``, ceilings on other measures that
            plans must meet too (see `keras_biprune.search.Budget`).
        max_accuracy_drop: the accuracy constraint ε, in the metric's units
            (see `keras_biprune.search.Objective`), or None.
        criterion: ranks channels: which ones a width gene keeps, which ones
            a repair drops, and the seeds of the first population. A name or
            a `keras_biprune.criteria.Criterion`.
        criterion_data: data for a data criterion (default: the evaluator's
            evaluation subset).
        encoding: ``"mask"`` (one bit per filter) or ``"width"`` (one gene
            per group, in steps of ``round_to``).
        round_to: width step; kept counts are multiples of it (and so are
            the input channels a layer reads at the bi-level search's
            ``"layer"`` granularity).
        min_channels: fewest channels a group keeps.
        max_prune_ratio: largest share of a group that may be pruned.
        population_size: individuals per population (island).
        generations: generations of the (upper-level) search.
        max_evaluations: a cap on evaluated plans; the run stops at the end of
            the generation that reaches it.
        random_state: seed of everything random; the same seed gives the
            same result.
        checkpoint_dir: a directory where the state is saved after every
            generation; a run started with a directory holding a state of the
            same settings resumes from it.
        verbose: 0 silent, 1 a progress bar over generations.

    Example:

    ```python
    search = kb.search.BiLevelSearch(evaluator, target=0.5, max_accuracy_drop=None,
                                     checkpoint_dir="search_state")
    search.get_config()          # the settings a checkpoint is tied to
    result = search.run()        # run again after a crash: it resumes
    ```
    """

    _progress_keys = ("best", "mean", "evaluations")

    def __init__(self, evaluator, *, target=None, measure="flops", latency_model=None,
                 extra_targets=None, max_accuracy_drop=None,
                 criterion="l1", criterion_data=None, encoding="mask", round_to=1,
                 min_channels=1, max_prune_ratio=0.9, population_size=16, generations=10,
                 max_evaluations=None, random_state=0, checkpoint_dir=None, verbose=1):
        self.evaluator = evaluator
        self.target = target
        self.measure = measure
        self.latency_model = latency_model
        self.extra_targets = extra_targets
        self.max_accuracy_drop = max_accuracy_drop
        self.criterion = criterion
        self.criterion_data = criterion_data
        self.encoding = encoding
        self.round_to = round_to
        self.min_channels = min_channels
        self.max_prune_ratio = max_prune_ratio
        self.population_size = population_size
        self.generations = generations
        self.max_evaluations = max_evaluations
        self.random_state = random_state
        self.checkpoint_dir = checkpoint_dir
        self.verbose = verbose

    def get_config(self):
        """The search's settings as plain data (no evaluator, no data)."""
        skip = {"evaluator", "criterion_data", "checkpoint_dir", "verbose", "latency_model"}
        config = {k: v for k, v in vars(self).items() if not k.startswith("_") and k not in skip}
        config["criterion"] = criteria.serialize(criteria.get(self.criterion))
        return config

    def _setup(self):
        """Validates the settings and builds the encoding, budget, objective and checkpoint."""
        check_int("population_size", self.population_size, 2, SearchError)
        check_int("generations", self.generations, 1, SearchError)
        graph = self.evaluator.graph
        criterion = criteria.get(self.criterion)
        data = self.criterion_data
        if data is None and criterion.requires_data:
            x = self.evaluator.x_eval
            data = (x[0] if len(x) == 1 else tuple(x), self.evaluator.y_eval)
        self._scores = criteria.scores(graph, self.evaluator.model, criterion, data)
        self._upper = UpperEncoding(graph, self._scores, self.encoding, self.round_to,
                                    self.min_channels, self.max_prune_ratio)
        self._budget = Budget(graph, self.target, self.measure, self.latency_model,
                              self.extra_targets)
        for ceiling in self._budget.ceilings:
            smallest = ceiling.floor_ratio(self._upper)
            if smallest > ceiling.target + 1e-9:
                raise SearchError(
                    f"The target keeps {ceiling.target:.3f} of the {ceiling.measure}, but the "
                    f"floors keep at least {smallest:.3f}: every group keeps at least "
                    f"min_channels={self.min_channels} and {1 - self.max_prune_ratio:.0%} of its "
                    "channels (max_prune_ratio), and frozen groups stay whole. Received: "
                    f"target={ceiling.target!r} ({ceiling.measure}). Raise the target to "
                    f"{smallest:.3f} or more, or lower min_channels or raise max_prune_ratio."
                )
        self._upper_budget = self._budget
        self._progress = Progress(self.generations, self.verbose, self._progress_keys)
        self._objective = Objective(self.evaluator, self._budget, self.max_accuracy_drop,
                                    self.max_evaluations, on_measured=self._progress.tick)
        self._checkpoint = Checkpoint(self.checkpoint_dir, self.get_config())
        self._decoded = {}

    def _decode(self, genome):
        """The repaired upper plan of a genome (cached)."""
        key = np.asarray(genome, dtype=np.int64).tobytes()
        if key not in self._decoded:
            self._decoded[key] = self._upper.decode(genome, self._upper_budget)
        return self._decoded[key]

    def _seed_population(self, size, *coordinates):
        """Criterion seeds (the uniform plans from keep-all down to the floors), then random."""
        rng = np.random.default_rng(seed_for(self.random_state, "seed", *coordinates))
        groups = self._upper.groups
        n_seeds = max(1, size // 2)
        rows = [self._upper.encode_counts({g.id: max(1, round(f * g.size)) for g in groups})
                for f in np.linspace(1.0, 1.0 - self.max_prune_ratio, n_seeds + 1)[:n_seeds]]
        while len(rows) < size:
            if self._upper.kind == "mask":
                rows.append((rng.random(self._upper.n_genes) < rng.uniform(0.2, 1.0))
                            .astype(np.int64))
            else:
                rows.append(np.array([rng.choice(space) for space in self._upper.gene_space]))
        return np.stack(rows)

    def fill(self, plan, target):
        """An upper-level ``plan`` of this run fitted to ``target`` of the cost measure
        (its extra targets scaled alike).

        A plan already within ``BAND`` below ``target`` (every ceiling's, see
        `Budget.filled`) is returned as it is, unless latency is the only
        ceiling;
        otherwise groups get their best-ranked missing channels back (or lose
        their worst-ranked ones) as `Budget.repair` does, so the plan lands
        there: e.g. a Pareto-front solution made to use a FLOPs budget. Under
        latency ceilings alone the plan is then grown (`Budget.grows`): steps
        move between groups to keep the most FLOPs at that latency. Call it
        after `run`.

        Example:

        ```python
        search = kb.search.NSGA2Search(evaluator, max_accuracy_drop=0.1)
        result = search.run()
        plan = search.fill(result.front.select(1)[0].plan, 0.5)
        ```
        """
        budget = self._budget.with_target(target)
        if budget.filled(plan) and not budget.grows:
            return plan
        encoding = self._upper
        keep = {g.id: encoding.ranking[g.id][np.isin(encoding.ranking[g.id],
                                                     plan.keep.get(g.id, range(g.size)))]
                for g in encoding.groups}
        return budget.repair(encoding, keep, fill=True)

    def uniform(self, target):
        """The criterion's own plan at ``target`` of the cost measure: every group cut by
        one common factor to its best-ranked channels, then filled to the band as `fill`
        fills (what a one-line criterion prunes). Call it after `run`.

        Example:

        ```python
        search = kb.search.BiLevelSearch(evaluator, target=0.5)
        result = search.run()
        baseline = search.uniform(0.5)      # e.g. L1-uniform, to race against result.best
        ```
        """
        return self.fill(PruningPlan.keep_all(self.evaluator.graph), target)

    def _solution(self, plan):
        score, cost = self._objective.cache[plan]
        return Solution(plan, score, cost)

    def _history_entry(self, generation, fitness, elapsed, **extra):
        fitness = np.asarray(fitness, dtype="float64")
        return {"generation": generation, "best": float(np.max(fitness)),
                "mean": float(np.mean(fitness[np.isfinite(fitness)])) if np.isfinite(
                    fitness).any() else float("nan"),
                "evaluations": self._objective.n_evaluations, "elapsed": elapsed, **extra}

    def _ranked(self, plans, fitness):
        """Distinct feasible plans as `Solution`s, highest ``fitness`` first."""
        solutions, seen = [], set()
        for index in np.argsort(-np.asarray(fitness, dtype="float64"), kind="stable"):
            solution = self._solution(plans[index])
            if solution.plan in seen:
                continue
            seen.add(solution.plan)
            if self._objective.violation(np.array([solution.score]),
                                         np.array([solution.cost]))[0] == 0:
                solutions.append(solution)
        return solutions

    def _front(self, plans):
        solutions = [self._solution(p) for p in plans]
        violation = self._objective.violation(np.array([s.score for s in solutions]),
                                              np.array([s.cost for s in solutions]))
        feasible = [s for s, v in zip(solutions, violation) if v == 0]
        return ParetoFront(feasible, self.evaluator.greater_is_better, self.measure)

    @staticmethod
    def _plan_state(plans):
        return [p.get_config() for p in plans]

    @staticmethod
    def _plans_from_state(configs):
        return [PruningPlan.from_config(c) for c in configs]
