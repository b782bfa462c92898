"""The searches: encodings, budget, objective, NSGA-II, bi-level, checkpoints."""

import random

import keras
import numpy as np
import pytest

import keras_biprune as kb
from keras_biprune import search
from keras_biprune.search import Budget, LowerEncoding, SearchError, UpperEncoding
from tests import zoo


@pytest.fixture(scope="module")
def trained():
    """A small CNN trained for a few seconds on scikit-learn's digits, and held-out data."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.images[..., None] / 16.0).astype("float32")
    y = digits.target
    keras.utils.set_random_seed(0)
    model = zoo.digits_cnn()
    model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy")
    model.fit(x[:1300], y[:1300], epochs=6, batch_size=32, verbose=0)
    return model, (x[1300:], y[1300:])


@pytest.fixture(scope="module")
def evaluator(trained):
    model, data = trained
    return kb.Evaluator(model, data, eval_size=256, calibration_size=128)


def _search(cls, evaluator, **kwargs):
    settings = {"population_size": 6, "generations": 2, "verbose": 0, "random_state": 0}
    return cls(evaluator, **(settings | kwargs))


def _bilevel(evaluator, **kwargs):
    settings = {"target": 0.5, "max_accuracy_drop": None, "population_size": 4, "islands": 2,
                "lower_population_size": 3, "lower_generations": 1}
    return _search(search.BiLevelSearch, evaluator, **(settings | kwargs))


def test_the_trained_fixture_is_better_than_chance(evaluator):
    assert evaluator.baseline > 0.8


# ----------------------------------------------------------------- encodings
def test_mask_genome_keeps_its_bits_and_the_floor_adds_best_ranked(evaluator):
    graph = evaluator.graph
    scores = {g.id: np.arange(g.size, dtype=float) for g in graph.prunable_groups}
    encoding = UpperEncoding(graph, scores, "mask", min_channels=2)
    genome = encoding.full()
    c1 = graph.group("c1")
    genome[:c1.size] = 0
    genome[3] = 1
    keep = encoding.kept(genome)
    # Position 3 was kept by the genome; the floor adds the best-ranked (highest score) one.
    assert sorted(keep["c1"].tolist()) == [3, c1.size - 1]
    assert len(keep["c2"]) == graph.group("c2").size


def test_width_genome_keeps_the_best_ranked_channels_in_steps(evaluator):
    graph = evaluator.graph
    scores = {g.id: -np.arange(g.size, dtype=float) for g in graph.prunable_groups}
    encoding = UpperEncoding(graph, scores, "width", round_to=4)
    assert encoding.n_genes == len(graph.prunable_groups)
    assert encoding.gene_space[0] == [1, 2, 3]          # 12 channels in steps of 4
    plan = encoding.decode([2, 1])
    assert plan.keep["c1"] == tuple(range(8))
    assert plan.keep["c2"] == tuple(range(4))
    assert np.array_equal(encoding.encode_counts({"c1": 8, "c2": 4}), [2, 1])


def test_mask_genome_rounds_each_group_to_the_step_by_rank(evaluator):
    graph = evaluator.graph
    scores = {g.id: -np.arange(g.size, dtype=float) for g in graph.prunable_groups}
    encoding = UpperEncoding(graph, scores, "mask", round_to=4)
    c1, c2 = (graph.group(k).size for k in ("c1", "c2"))
    genome = np.zeros(c1 + c2, dtype=np.int64)
    genome[[0, 2, 5, 7, 9]] = 1                         # c1 keeps 5: rounds down to 4
    genome[c1 + np.array([1, 4, 6, 10, 11, 13])] = 1    # c2 keeps 6: rounds up to 8
    keep = encoding.kept(genome)
    assert sorted(keep["c1"].tolist()) == [0, 2, 5, 7]           # worst-ranked (9) dropped
    assert sorted(keep["c2"].tolist()) == [0, 1, 2, 4, 6, 10, 11, 13]   # best missing added
    plan = encoding.decode(genome, Budget(graph, 0.3))
    assert all(len(kept) % 4 == 0 for kept in plan.keep.values())


@pytest.mark.parametrize("measure", ["flops", "params", "filters"])
def test_budget_repair_meets_the_target_closely(evaluator, measure):
    graph = evaluator.graph
    encoding = UpperEncoding(graph, kb.criteria.scores(graph, evaluator.model, "l1"), "mask")
    budget = Budget(graph, 0.5, measure)
    plan = encoding.decode(encoding.full(), budget)
    assert 0.5 - search.space.BAND <= budget.ratio(plan) <= 0.5
    if measure == "flops":
        full = kb.cost(graph)
        assert budget.ratio(plan) == pytest.approx(kb.cost(graph, plan).macs / full.macs)
    # The L1-uniform plan: every group keeps its highest-L1 channels.
    l1 = kb.criteria.scores(graph, evaluator.model, "l1")
    for group_id, kept in plan.keep.items():
        best = np.argsort(-l1[group_id], kind="stable")[:len(kept)]
        assert sorted(best.tolist()) == list(kept)


def test_lower_layer_masks_keep_a_read_channel_and_refer_to_original_channels(evaluator):
    graph = evaluator.graph
    lower = LowerEncoding(graph, "layer", "mask")
    assert [r.path for r in lower.records] == ["c2", "fc"]     # c1 reads the model input
    upper = kb.PruningPlan({"c1": [0, 1, 2, 3]}, signature=graph.signature)
    genome = lower.full()
    genome[lower.slices[0]] = 0                       # c2 reads nothing …
    genome[lower.slices[0].start + 7] = 1             # … but channel 7, which the upper pruned
    plan = lower.decode(genome, upper)
    # c2 is the only reader of c1: the channel it reads is the one c1 keeps.
    assert len(plan.keep["c1"]) == 1 and plan.keep["c1"][0] in (0, 1, 2, 3)
    assert plan.inputs == {}
    plan.validate(graph)
    kb.apply_plan(evaluator.model, plan)


@pytest.mark.parametrize("granularity", ["layer", "filter"])
def test_lower_repair_cuts_input_channels_until_the_plan_meets_the_target(evaluator, granularity):
    graph = evaluator.graph
    budget = Budget(graph, 0.5)
    upper = kb.PruningPlan({"c1": range(10)}, signature=graph.signature)
    assert budget.ratio(upper) > 0.5
    lower = LowerEncoding(graph, granularity)
    plan = lower.decode(lower.full(), upper, budget)
    assert 0.4 < budget.ratio(plan) <= 0.5
    if granularity == "filter":
        assert plan.keep == upper.keep and plan.kernels
    else:  # c2 kept its strongest input rows; c1, which only c2 reads, lost the others
        rows = np.abs(np.asarray(evaluator.model.get_layer("c2").kernel)).sum(axis=(0, 1, 3))
        kept = list(plan.keep["c1"])
        dropped = sorted(set(range(10)) - set(kept))
        assert dropped and "c2" not in plan.inputs
        assert rows[kept].min() >= rows[dropped].max()


def test_lower_layer_reads_multiples_of_round_to_best_ranked_first(evaluator):
    graph = evaluator.graph
    lower = LowerEncoding(graph, "layer", "mask", round_to=4)
    genome = lower.full()
    c2 = genome[lower.slices[0]]
    c2[[0, 1, 2, 3, 4]] = 0                           # c2 reads 7 of 12: rounded to 8
    plan = lower.decode(genome, kb.PruningPlan.keep_all(graph))
    kept = plan.keep["c1"]                            # c2 is c1's only reader
    assert len(kept) == 8 and set(range(5, 12)) <= set(kept)
    rows = np.abs(np.asarray(evaluator.model.get_layer("c2").kernel)).sum(axis=(0, 1, 3))
    filler = (set(kept) - set(range(5, 12))).pop()    # the best-ranked dropped channel
    assert rows[filler] == rows[:5].max()
    # c2 reads c1's 12 channels in steps of 4: 4 of them meet a 0.4 budget within the band.
    budget = Budget(graph, 0.4)
    repaired = lower.decode(lower.full(), kb.PruningPlan.keep_all(graph), budget)
    assert 0.4 - search.space.BAND <= budget.ratio(repaired) <= 0.4
    assert len(repaired.keep["c1"]) == 4 and "c2" not in repaired.inputs
    # At 0.5, 4 channels are 0.11 under and 8 over: single channels get as close as they can.
    budget = Budget(graph, 0.5)
    repaired = lower.decode(lower.full(), kb.PruningPlan.keep_all(graph), budget)
    assert budget.ratio(repaired) <= 0.5
    assert len(repaired.keep["c1"]) == 5
    assert budget.ratio(kb.PruningPlan({"c1": range(6)}, signature=graph.signature)) > 0.5


def test_bilevel_layer_plans_read_multiples_of_round_to(evaluator, monkeypatch):
    plans = []
    evaluate = evaluator.evaluate
    monkeypatch.setattr(evaluator, "evaluate", lambda p: plans.extend(p) or evaluate(p))
    # Without a cost target no budget fills the reads back: the lower level's choices stand.
    _bilevel(evaluator, round_to=5, target=None, max_accuracy_drop=0.05).run()
    inputs = [len(kept) for plan in plans for kept in plan.inputs.values()]
    assert len(inputs) >= 4, "the lower level dropped too few input channels to tell"
    assert all(n % 5 == 0 for n in inputs), inputs


def test_lower_filter_genes_zero_kernel_entries(evaluator):
    graph = evaluator.graph
    lower = LowerEncoding(graph, "filter", levels=4)
    genome = lower.full()
    genome[lower.slices[0]] = 1                       # each c2 filter keeps a quarter
    plan = lower.decode(genome, kb.PruningPlan.keep_all(graph))
    mask = plan.kernels["c2"]
    assert mask.shape == (12, 16)
    assert (mask.sum(axis=0) == 3).all()
    report = kb.cost(graph, plan)
    assert report.sparse_macs < report.macs


# ----------------------------------------------------------------- objective
def test_feasible_plans_rank_above_infeasible_ones(evaluator):
    budget = Budget(evaluator.graph, 0.6)
    objective = search.Objective(evaluator, budget, max_accuracy_drop=0.05)
    base = objective.baseline
    scores = np.array([base, base - 0.04, base - 0.2, base - 0.5, base])
    costs = np.array([0.5, 0.3, 0.3, 0.3, 0.9])
    fitness = objective.fitness(scores, costs)
    assert fitness[1] > fitness[0] > 0 > fitness[2] > fitness[3]
    assert fitness[4] < 0                             # over the cost target


def test_objective_scores_each_plan_once(evaluator):
    objective = search.Objective(evaluator, Budget(evaluator.graph, 0.5))
    plans = [kb.PruningPlan.random(evaluator.graph, 0.5, seed=s) for s in (0, 1, 0)]
    before = evaluator.n_evaluations
    first = objective(plans)
    again = objective(plans[:1])
    assert evaluator.n_evaluations - before == 2 == objective.n_evaluations
    assert first[0] == first[2] == again[0]
    assert hash(plans[0]) == hash(plans[2]) and len({plans[0], plans[1], plans[2]}) == 2


# ----------------------------------------------------------------- NSGA-II
@pytest.mark.backends
def test_nsga2_front_is_non_dominated_and_feasible(evaluator):
    result = _search(search.NSGA2Search, evaluator, max_accuracy_drop=0.3,
                     generations=3).run()
    front = result.front
    assert len(front) >= 2
    assert np.all(np.diff(front.costs) > 0) and np.all(np.diff(front.scores) > 0)
    assert np.all(front.scores >= evaluator.baseline - 0.3)
    for s in front:
        assert s.score == pytest.approx(evaluator.evaluate_one(s.plan))
        full = kb.cost(evaluator.graph)
        assert s.cost == pytest.approx(kb.cost(evaluator.graph, s.plan).macs / full.macs)
    picked = front.select(2)
    assert [picked[0].cost, picked[-1].cost] == [front.costs[0], front.costs[-1]]
    assert len(result.history) == 3 and result.history[-1]["hypervolume"] > 0
    assert result.history[-1]["hypervolume"] >= result.history[0]["hypervolume"]
    restored = search.ParetoFront.from_dict(front.to_dict())
    assert restored.costs.tolist() == front.costs.tolist()


def test_nsga2_is_reproducible(evaluator):
    runs = [_search(search.NSGA2Search, evaluator, max_accuracy_drop=0.3, random_state=3).run()
            for _ in range(2)]
    assert [s.plan for s in runs[0].front] == [s.plan for s in runs[1].front]


# ----------------------------------------------------------------- bi-level
@pytest.mark.backends
def test_bilevel_meets_the_target_and_beats_its_criterion_seed(evaluator):
    result = _bilevel(evaluator).run()
    graph = evaluator.graph
    assert result.best.cost <= 0.5
    encoding = UpperEncoding(graph, kb.criteria.scores(graph, evaluator.model, "l1"), "mask")
    l1_uniform = encoding.decode(encoding.full(), Budget(graph, 0.5))
    assert result.best.score >= evaluator.evaluate_one(l1_uniform)
    assert result.best.score == pytest.approx(evaluator.evaluate_one(result.best.plan))
    assert len(result.front) >= 1 and len(result.history) == 2
    assert result.history[1]["best"] >= result.history[0]["best"]


def test_bilevel_lower_level_can_win_with_input_masks(evaluator):
    result = _bilevel(evaluator, target=None, max_accuracy_drop=0.5, generations=2,
                      lower_generations=2, lower_population_size=6).run()
    assert result.best.cost < 1.0
    assert result.best.score >= evaluator.baseline - 0.5
    assert result.best.plan.inputs                    # the lower level cut input channels


def test_lower_level_runs_only_for_the_best_share_of_new_upper_individuals(evaluator):
    none = _bilevel(evaluator, lower_share=0, upper_slack=0, generations=1).run()
    few = _bilevel(evaluator, lower_share=0.25, generations=1).run()
    every = _bilevel(evaluator, lower_share=1.0, generations=1).run()
    assert none.n_evaluations < few.n_evaluations < every.n_evaluations
    assert not any(s.plan.inputs for s in none.ranked)       # every input channel kept


def test_bilevel_filter_granularity_reports_sparse_cost(evaluator):
    result = _bilevel(evaluator, channel_granularity="filter", generations=1).run()
    plan = result.best.plan
    report = kb.cost(evaluator.graph, plan)
    full = kb.cost(evaluator.graph)
    assert result.best.cost == pytest.approx(report.sparse_macs / full.macs)


def test_bilevel_is_reproducible_and_leaves_global_random_state_alone(evaluator):
    np.random.seed(123)
    random.seed(123)
    expected_np, expected_py = np.random.rand(), random.random()
    np.random.seed(123)
    random.seed(123)
    first = _bilevel(evaluator, random_state=5).run()
    assert (np.random.rand(), random.random()) == (expected_np, expected_py)
    second = _bilevel(evaluator, random_state=5).run()
    assert first.best.plan == second.best.plan
    assert [h["best"] for h in first.history] == [h["best"] for h in second.history]


class _Interrupt(Exception):
    pass


class _InterruptingEvaluator:
    """Passes calls through to an evaluator and interrupts the run at a given call."""

    def __init__(self, evaluator, at_call):
        self._evaluator, self._at_call, self.calls = evaluator, at_call, 0

    def __getattr__(self, name):
        return getattr(self._evaluator, name)

    def evaluate(self, plans):
        self.calls += 1
        if self.calls == self._at_call:
            raise _Interrupt
        return self._evaluator.evaluate(plans)


@pytest.mark.parametrize("cls", [search.BiLevelSearch, search.NSGA2Search])
def test_an_interrupted_run_resumes_to_the_same_result(evaluator, tmp_path, cls):
    settings = {"generations": 3, "random_state": 1}
    settings |= ({"target": 0.5, "max_accuracy_drop": None, "population_size": 4,
                  "lower_population_size": 3, "lower_generations": 1}
                 if cls is search.BiLevelSearch else {"max_accuracy_drop": 0.3})
    reference = _search(cls, evaluator, **settings).run()

    counting = _InterruptingEvaluator(evaluator, at_call=0)
    _search(cls, counting, **settings).run()
    interrupted = _InterruptingEvaluator(evaluator, at_call=counting.calls)   # in the last generation
    with pytest.raises(_Interrupt):
        _search(cls, interrupted, checkpoint_dir=tmp_path, **settings).run()
    assert (tmp_path / "state.pkl").exists()
    counting_resumed = _InterruptingEvaluator(evaluator, at_call=0)
    resumed = _search(cls, counting_resumed, checkpoint_dir=tmp_path, **settings).run()
    assert counting_resumed.calls < counting.calls    # it went on from the checkpoint
    assert resumed.best.plan == reference.best.plan
    assert [s.plan for s in resumed.front] == [s.plan for s in reference.front]
    assert [h["best"] for h in resumed.history] == [h["best"] for h in reference.history]


def test_resuming_with_other_settings_is_refused(evaluator, tmp_path):
    _bilevel(evaluator, generations=1, checkpoint_dir=tmp_path).run()
    with pytest.raises(SearchError, match="other settings.*islands"):
        _bilevel(evaluator, generations=1, islands=3, checkpoint_dir=tmp_path).run()


def test_max_evaluations_stops_the_run(evaluator):
    result = _bilevel(evaluator, generations=5, max_evaluations=10).run()
    assert len(result.history) < 5
    assert result.n_evaluations < 10 + 2 * 4 * 3


def test_progress_bar_shows_generations(evaluator, capsys):
    _bilevel(evaluator, generations=2, verbose=1).run()
    out = capsys.readouterr().out
    assert "2/2" in out and "best:" in out and "evaluations:" in out


@pytest.mark.parametrize("cls", [search.BiLevelSearch, search.NSGA2Search])
def test_progress_shows_candidates_before_the_first_generation_ends(evaluator, capsys, cls):
    make = _bilevel if cls is search.BiLevelSearch else (
        lambda e, **kw: _search(search.NSGA2Search, e, max_accuracy_drop=0.5, **kw))
    make(evaluator, generations=1, verbose=1).run()
    lines = capsys.readouterr().out.splitlines()        # captured: not a terminal
    assert lines[0].startswith("generation 0/1 - ") and "evaluations: " in lines[0], lines
    assert int(lines[0].rsplit("evaluations: ", 1)[1]) >= 1
    assert lines[-1].startswith("generation 1/1 - ")


@pytest.mark.parametrize("kwargs, match", [
    ({"target": 1.5}, "target must be the share"),
    ({"target": None, "max_accuracy_drop": None}, "Nothing to optimize"),
    ({"population_size": 1}, "population_size must be an int >= 2"),
    ({"encoding": "bits"}, "kind must be one of"),
    ({"channel_granularity": "kernel"}, "granularity must be one of"),
    ({"max_accuracy_drop": -0.1}, "max_accuracy_drop must be a number >= 0"),
    ({"migration_size": 4}, "migration_size must be below population_size"),
    ({"lower_share": 1.5}, "lower_share must be in"),
])
def test_bad_settings_raise_clear_errors(evaluator, kwargs, match):
    with pytest.raises(SearchError, match=match):
        _bilevel(evaluator, **kwargs).run()


def test_a_budget_that_does_not_bind_changes_nothing():
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(10, 3, name="conv")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Flatten()(x)))
    graph = kb.trace(model)
    encoding = UpperEncoding(graph, kb.criteria.scores(graph, model, "l1"), "width", round_to=8)
    assert encoding.decode(encoding.full(), Budget(graph, 1.0)).keep == {}
    assert encoding.step["conv"] == 2             # 10 channels have fewer than 3 steps of 8
    shrunk = encoding.decode(encoding.full(), Budget(graph, 0.4))
    assert len(shrunk.keep["conv"]) == 4


def test_width_encoding_scales_to_resnet50():
    model = keras.applications.ResNet50(weights=None)
    graph = kb.trace(model)
    scores = kb.criteria.scores(graph, model, "l1")
    encoding = UpperEncoding(graph, scores, "width", round_to=8)
    assert encoding.n_genes == len(graph.prunable_groups) < 60
    budget = Budget(graph, 0.5)
    rng = np.random.default_rng(0)
    genome = np.array([rng.choice(space[len(space) // 2:]) for space in encoding.gene_space])
    assert budget.ratio(encoding.decode(genome)) > 0.5
    plan = encoding.decode(genome, budget)
    assert 0.5 - search.space.BAND <= budget.ratio(plan) <= 0.5
    assert plan.keep and all(len(kept) % 8 == 0 for kept in plan.keep.values())
