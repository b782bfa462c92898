"""Bi-level filter/channel pruning solved by co-evolution with migration (CEMBA)."""

import math

import numpy as np

from keras_biprune._validate import check_int, check_number
from keras_biprune.errors import SearchError
from keras_biprune.search._evolution import next_generation, seed_for
from keras_biprune.search.base import Search, SearchResult
from keras_biprune.search.space import LowerEncoding


class BiLevelSearch(Search):
    """Filters at the upper level, input channels at the lower level, co-evolved.

    The problem (Bi-CNN-Pruning): the upper level chooses the filters each
    channel group keeps; for that choice, the lower level chooses which input
    channels each layer (``channel_granularity="layer"``, realized
    structurally) or each filter (``"filter"``, realized as exact zero
    kernels) reads. Both levels maximize the same fitness of the combined
    plan (`keras_biprune.search.Objective`): with ``max_accuracy_drop`` ε,
    the smallest cost whose score stays within ε of the unpruned model's (a
    plan outside it ranks by how far outside); without ε, the best score
    within ``target``. An upper individual's fitness is that of its best
    lower-level response, so only lower-level optimal responses count; the
    response that keeps every input channel is always tried, so a lower
    level never makes an upper individual worse.

    The engine (CEMBA): ``islands`` upper populations evolve with PyGAD
    (tournament selection, two-point crossover, random mutation, the best
    individual kept). Every ``migration_interval`` generations each island
    sends its ``migration_size`` best individuals to the next island (a
    ring), replacing its worst. A generation's new upper individuals are
    first scored, in one evaluator call, with their keep-every-input
    response; the best ``lower_share`` of them then get a short lower-level
    PyGAD run (``lower_population_size`` individuals, ``lower_generations``
    generations) whose first population holds the keep-everything response,
    migrants from an archive of the best lower-level solutions of the most
    similar upper individuals seen so far (Hamming or L1 distance of the
    upper genomes), and random thinnings of the keep-everything response.
    Spending the lower level on the promising upper individuals only lets
    the upper level explore more within the same evaluations; set
    ``lower_share=1`` to give every one its run. Every population is scored
    by the evaluator in one call, and repeated plans are never scored twice.

    With a cost ``target`` the upper level is repaired to ``target * (1 +
    upper_slack)`` and each lower-level plan to ``target`` (dropping the
    input channels with the smallest kernel norms, see
    `keras_biprune.search.LowerEncoding.decode`): an upper individual may
    keep more filters than the target allows and its lower level decides
    which inputs pay for them. With ``upper_slack=0`` the upper level alone
    meets the target and the lower level can only cut further.

    With ``max_evaluations`` the run stops at the end of the generation that
    reaches the cap; once it is reached, new upper individuals are scored
    without their lower-level run.

    Args:
        evaluator: a `keras_biprune.Evaluator`.
        max_accuracy_drop: ε (default 0.01).
        channel_granularity: ``"layer"`` or ``"filter"``.
        lower_encoding: ``"mask"`` (one bit per input channel) or
            ``"width"`` (one gene per layer); ``"filter"`` granularity has one
            gene per filter. See `keras_biprune.search.LowerEncoding`.
        lower_levels: steps of a lower-level width gene.
        islands: number of upper populations.
        lower_population_size: individuals of a lower-level run.
        lower_generations: generations of a lower-level run (0: only its
            first population is scored).
        migration_interval: generations between migrations of the islands.
        migration_size: individuals each island sends.
        archive_size: lower-level solutions kept per upper individual.
        upper_slack: how far over ``target`` the upper level may go, as a
            share of it (see above).
        lower_share: the share of each generation's new upper individuals,
            best first by their keep-every-input response, that get a
            lower-level run (1: all of them, as in the paper; 0: none, so
            with ``upper_slack=0`` plans keep every input channel).
        **kwargs: see `keras_biprune.search.Search` (``population_size``
            defaults to 8 per island, ``generations`` to 6).

    Example:

    ```python
    import keras_biprune as kb
    evaluator = kb.Evaluator(model, (x_val, y_val))
    search = kb.search.BiLevelSearch(evaluator, target=0.5, max_accuracy_drop=None,
                                     generations=4, random_state=0)
    result = search.run()
    slim = kb.apply_plan(model, result.best.plan)
    ```
    """

    def __init__(self, evaluator, *, max_accuracy_drop=0.01, channel_granularity="layer",
                 lower_encoding="mask", lower_levels=8, islands=2, population_size=8,
                 generations=6, lower_population_size=6, lower_generations=2,
                 migration_interval=2, migration_size=1, archive_size=4, upper_slack=0.25,
                 lower_share=0.25, **kwargs):
        super().__init__(evaluator, max_accuracy_drop=max_accuracy_drop,
                         population_size=population_size, generations=generations, **kwargs)
        self.channel_granularity = channel_granularity
        self.lower_encoding = lower_encoding
        self.lower_levels = lower_levels
        self.islands = islands
        self.lower_population_size = lower_population_size
        self.lower_generations = lower_generations
        self.migration_interval = migration_interval
        self.migration_size = migration_size
        self.archive_size = archive_size
        self.upper_slack = upper_slack
        self.lower_share = lower_share

    def _setup(self):
        super()._setup()
        for name, low in (("islands", 1), ("lower_population_size", 2),
                          ("lower_generations", 0), ("migration_interval", 1),
                          ("migration_size", 0), ("archive_size", 1)):
            check_int(name, getattr(self, name), low, SearchError)
        if self.migration_size >= self.population_size:
            raise SearchError(
                f"migration_size must be below population_size ({self.population_size}). "
                f"Received: migration_size={self.migration_size}."
            )
        check_number("lower_share", self.lower_share, SearchError, 0, 1,
                     expected="in [0, 1], a share of the upper individuals",
                     fix="1 runs the lower level for every upper individual, 0 for none.")
        check_number("upper_slack", self.upper_slack, SearchError, 0)
        self._lower = LowerEncoding(self.evaluator.graph, self.channel_granularity,
                                    self.lower_encoding, self.lower_levels, self.round_to)
        if self.target is not None:
            self._upper_budget = self._budget.with_target(
                min(1.0, self.target * (1 + self.upper_slack)))

    def run(self):
        """Runs (or resumes) the search.

        Returns:
            A `SearchResult`: ``best`` is the best plan (upper and lower
            level together); ``front`` the Pareto front of every upper
            individual's best response.
        """
        self._setup()
        state = self._checkpoint.load()
        if state is None:
            self._responses, self._archive = {}, []
            populations = [self._seed_population(self.population_size, "island", i)
                           for i in range(self.islands)]
            fitnesses = [self._upper_fitness(p) for p in populations]
            history, generation, elapsed = [], 0, 0.0
        else:
            populations, fitnesses = state["populations"], state["fitnesses"]
            self._objective.restore(state["objective"])
            self._responses = {k: (f, p) for k, (f, p) in zip(
                state["response_keys"], zip(state["response_fitness"],
                                             self._plans_from_state(state["response_plans"])))}
            self._archive = state["archive"]
            history, generation, elapsed = state["history"], state["generation"], state["elapsed"]
        progress = self._progress
        progress.done = generation
        while generation < self.generations and not self._objective.exhausted:
            for i in range(self.islands):
                populations[i], fitnesses[i] = next_generation(
                    populations[i], self._upper_fitness, self._upper.gene_space,
                    seed_for(self.random_state, "upper", i, generation))
            generation += 1
            if self.islands > 1 and self.migration_size and \
                    generation % self.migration_interval == 0:
                self._migrate(populations, fitnesses)
            entry = self._history_entry(generation, np.concatenate(fitnesses),
                                        elapsed + progress.elapsed(),
                                        best_score=self._best().score, best_cost=self._best().cost)
            history.append(entry)
            self._checkpoint.save(generation, {
                "populations": populations, "fitnesses": fitnesses,
                "objective": self._objective.state(), "archive": self._archive,
                "response_keys": list(self._responses),
                "response_fitness": [f for f, _ in self._responses.values()],
                "response_plans": self._plan_state([p for _, p in self._responses.values()]),
                "history": history, "elapsed": entry["elapsed"]})
            progress.update(generation, entry)
        progress.close(generation)
        responses = list(self._responses.values())
        front = self._front([p for _, p in responses])
        ranked = self._ranked([p for _, p in responses], [f for f, _ in responses])
        return SearchResult(self._best(), front, history, self._objective.n_evaluations, ranked)

    def _best(self):
        _, plan = max(self._responses.values(), key=lambda item: item[0])
        return self._solution(plan)

    def _migrate(self, populations, fitnesses):
        """Ring migration: each island's best replace the next island's worst."""
        m = self.migration_size
        best = [np.argsort(-f, kind="stable")[:m] for f in fitnesses]
        sent = [(p[b].copy(), f[b].copy()) for p, f, b in zip(populations, fitnesses, best)]
        for i, (genomes, values) in enumerate(sent):
            target = (i + 1) % self.islands
            worst = np.argsort(fitnesses[target], kind="stable")[:m]
            populations[target][worst] = genomes
            fitnesses[target][worst] = values

    def _upper_fitness(self, genomes):
        """Each upper genome's fitness: that of its best lower-level response.

        New genomes are first scored, in one batch, with their keep-every-input
        response; the best ``lower_share`` of them then get a lower-level run.
        """
        genomes = [np.asarray(g, dtype=np.int64) for g in genomes]
        new = list({g.tobytes(): g for g in genomes if g.tobytes() not in self._responses}.items())
        if new:
            plans = [self._lower.decode(self._lower.full(), self._decode(g), self._budget)
                     for _, g in new]
            for (key, _), plan, value in zip(new, plans, self._objective(plans)):
                self._responses[key] = (float(value), plan)
            ranked = sorted(new, key=lambda item: -self._responses[item[0]][0])
            for key, genome in ranked[:math.ceil(self.lower_share * len(new))]:
                if self._objective.exhausted:
                    break
                self._responses[key] = max(self._responses[key], self._lower_response(genome),
                                           key=lambda response: response[0])
        return np.array([self._responses[g.tobytes()][0] for g in genomes])

    def _lower_response(self, genome):
        """A short lower-level evolution for one upper genome: ``(fitness, best plan)``."""
        upper_plan = self._decode(genome)
        rng = np.random.default_rng(seed_for(self.random_state, "lower", genome.tobytes()))
        population = self._lower_seeds(genome, rng)
        best = {"fitness": -np.inf, "genome": None}

        def fitness_fn(lower_genomes):
            values = self._objective([self._lower.decode(g, upper_plan, self._budget)
                                      for g in lower_genomes])
            top = int(np.argmax(values))
            if values[top] > best["fitness"]:
                best.update(fitness=float(values[top]), genome=np.array(lower_genomes[top]))
            return values

        fitness = fitness_fn(population)
        for generation in range(self.lower_generations):
            if self._objective.exhausted:
                break
            population, fitness = next_generation(
                population, fitness_fn, self._lower.gene_space,
                seed_for(self.random_state, "lower", genome.tobytes(), generation))
        ranked = population[np.argsort(-fitness, kind="stable")]
        unique = list({row.tobytes(): row for row in ranked}.values())[:self.archive_size]
        self._archive.append((genome, np.stack(unique)))
        return best["fitness"], self._lower.decode(best["genome"], upper_plan, self._budget)

    def _lower_seeds(self, genome, rng):
        """Keep-everything, migrants from the most similar upper genomes, random thinnings."""
        full = self._lower.full()
        rows = [full]
        if self._archive:
            distance = [np.abs(genome - other).sum() for other, _ in self._archive]
            for index in np.argsort(distance, kind="stable"):
                for row in self._archive[index][1]:
                    if len(rows) < max(2, self.lower_population_size // 2):
                        rows.append(row)
        while len(rows) < self.lower_population_size:
            thin = rng.random(self._lower.n_genes) < rng.uniform(0.02, 0.3)
            low = np.array([space[0] for space in self._lower.gene_space])
            rows.append(np.where(thin, rng.integers(low, full + 1), full))
        return np.stack(rows).astype(np.int64)
