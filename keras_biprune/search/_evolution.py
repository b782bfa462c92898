"""One PyGAD generation at a time, and checkpoints.

Each generation is one ``pygad.GA`` run of a single generation, started from
the current population with a seed derived from the search's
``random_state`` and the generation's coordinates. A generation is thus a
pure function of (population, seed, fitness), so a run saved after any
generation resumes to exactly the result of an uninterrupted one. Fitness
is cached by the caller, so PyGAD's re-scoring of the starting population
costs no evaluation.
"""

import hashlib
import logging
import os
import pickle

import numpy as np
import pygad

from keras_biprune.errors import SearchError

logger = logging.getLogger(__name__)

_FORMAT = "keras_biprune.search.checkpoint"
_VERSION = 2  # 2: the objective cache is keyed by PruningPlan


def seed_for(random_state, *coordinates):
    """A 32-bit seed from the search seed and where we are (level, island, generation…)."""
    text = ":".join(str(c) for c in (random_state, *coordinates))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")


def next_generation(population, fitness_fn, gene_space, seed, *, multi_objective=False,
                    elitism=1, mutation_probability=None, crossover_type="two_points"):
    """One generation of PyGAD from ``population``: ``(new population, its fitness)``.

    Args:
        population: int array (individuals, genes).
        fitness_fn: ``genomes -> fitness`` for a 2-D int array: one value per
            row, or one row of objectives per row when ``multi_objective``.
        gene_space: PyGAD gene space, one list of allowed values per gene.
        seed: PyGAD's ``random_seed``.
        multi_objective: NSGA-II parent selection (``"nsga2"``) instead of
            tournament selection.
        elitism: the best individuals kept unchanged (single objective).
        mutation_probability: per-gene mutation probability (default
            ``max(1 / genes, 0.01)`` … at least one gene on average).
    """
    population = np.asarray(population, dtype=np.int64)
    size, n_genes = population.shape
    if mutation_probability is None:
        mutation_probability = min(1.0, max(1.0 / n_genes, 0.01))

    def batch_fitness(ga, solutions, indices):
        values = np.asarray(fitness_fn(np.asarray(solutions, dtype=np.int64)), dtype="float64")
        return [list(v) for v in values] if multi_objective else list(values)

    ga = pygad.GA(
        num_generations=1,
        num_parents_mating=max(2, size // 2),
        fitness_func=batch_fitness,
        fitness_batch_size=size,
        initial_population=population,
        gene_space=gene_space,
        gene_type=int,
        parent_selection_type="nsga2" if multi_objective else "tournament",
        K_tournament=2,
        keep_elitism=0 if multi_objective else min(elitism, size),
        keep_parents=-1 if multi_objective else 0,
        crossover_type=crossover_type if n_genes > 2 else "single_point",
        mutation_type="random",
        mutation_probability=mutation_probability,
        mutation_by_replacement=True,
        random_seed=seed,
        suppress_warnings=True,
        logger=logger,
    )
    ga.run()
    return np.asarray(ga.population, dtype=np.int64), np.asarray(ga.last_generation_fitness,
                                                                  dtype="float64")


class Checkpoint:
    """The search state, saved after every generation to ``directory/state.pkl``.

    The file is written to a temporary name and renamed, so a run killed
    while saving leaves the previous state intact. ``config`` (the search's
    settings) is stored with it; resuming with other settings is refused.
    """

    def __init__(self, directory, config):
        self.directory = None if directory is None else os.fspath(directory)
        self.config = config

    @property
    def path(self):
        return os.path.join(self.directory, "state.pkl")

    def load(self):
        """The saved state, or None when there is none (or no directory)."""
        if self.directory is None or not os.path.exists(self.path):
            return None
        with open(self.path, "rb") as f:
            saved = pickle.load(f)
        if saved.get("format") != _FORMAT or saved.get("version") != _VERSION:
            raise SearchError(
                f"{self.path} is not a keras_biprune search checkpoint of version {_VERSION}. "
                "Received: another file. Use an empty checkpoint_dir to start afresh."
            )
        if saved["config"] != self.config:
            changed = sorted(k for k in set(saved["config"]) | set(self.config)
                             if saved["config"].get(k) != self.config.get(k))
            raise SearchError(
                f"The checkpoint in {self.directory} was written by a search with other "
                f"settings. Received: different {changed}. Resume with the same settings, or "
                "use an empty checkpoint_dir to start afresh."
            )
        logger.info("Resuming the search from %s (generation %d).", self.path, saved["generation"])
        return saved["state"] | {"generation": saved["generation"]}

    def save(self, generation, state):
        if self.directory is None:
            return
        os.makedirs(self.directory, exist_ok=True)
        temporary = self.path + ".tmp"
        with open(temporary, "wb") as f:
            pickle.dump({"format": _FORMAT, "version": _VERSION, "config": self.config,
                         "generation": generation, "state": state}, f)
        os.replace(temporary, self.path)
