"""The budget is hit: every repaired plan lands in [target - BAND, target], whatever the steps."""

import keras
import numpy as np
import pytest

import keras_biprune as kb
from keras_biprune.search import Budget, SearchError, UpperEncoding
from keras_biprune.search.space import BAND, group_step


def _chain(widths, name):
    x = inputs = keras.Input((12, 12, 3))
    for i, width in enumerate(widths):
        x = keras.layers.Conv2D(width, 3, padding="same", name=f"conv{i}")(x)
        x = keras.layers.ReLU()(keras.layers.BatchNormalization()(x))
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(10)(x), name=name)


CHAINS = {"narrow": [4, 8, 12, 16], "mixed": [16, 16, 32, 64], "wide": [24, 48, 64, 64],
          "odd": [6, 10, 20, 40]}


@pytest.fixture(scope="module", params=sorted(CHAINS))
def graph_and_scores(request):
    model = _chain(CHAINS[request.param], request.param)
    graph = kb.trace(model)
    return graph, kb.criteria.scores(graph, model, "l1")


@pytest.mark.parametrize("round_to", [1, 8, 16])
@pytest.mark.parametrize("kind", ["width", "mask"])
def test_repaired_plans_land_in_the_band_whatever_round_to(graph_and_scores, round_to, kind):
    graph, scores = graph_and_scores
    encoding = UpperEncoding(graph, scores, kind, round_to=round_to)
    rng = np.random.default_rng(0)
    genomes = [encoding.full()] + [np.array([rng.choice(space) for space in encoding.gene_space])
                                   for _ in range(3)]
    for target in (0.3, 0.5, 0.7):
        budget = Budget(graph, target)
        for genome in genomes:
            ratio = budget.ratio(encoding.decode(genome, budget))
            assert target - BAND <= ratio <= target, (target, ratio)


def test_narrow_groups_count_in_smaller_steps():
    assert [group_step(size, 8) for size in (4, 8, 12, 16, 24, 32, 64)] == [1, 2, 4, 4, 8, 8, 8]
    assert [group_step(size, 16) for size in (16, 32, 48, 64)] == [4, 8, 16, 16]
    assert group_step(12, 1) == 1


def test_steps_are_kept_where_they_reach_the_band():
    graph_model = _chain([32, 64, 64, 64], "steps")
    graph = kb.trace(graph_model)
    encoding = UpperEncoding(graph, kb.criteria.scores(graph, graph_model, "l1"), "width",
                             round_to=8)
    budget = Budget(graph, 0.5)
    plan = encoding.decode(encoding.full(), budget)
    assert 0.5 - BAND <= budget.ratio(plan) <= 0.5
    assert all(len(kept) % 8 == 0 for kept in plan.keep.values()), plan.keep


def test_a_group_at_its_limit_gives_a_channel_to_one_whose_channels_outweigh_the_band():
    inputs = keras.Input((8, 8, 1))
    h = keras.layers.Conv2D(12, 3, padding="same", name="c1")(inputs)
    h = keras.layers.ReLU()(keras.layers.BatchNormalization()(h))
    h = keras.layers.ReLU()(keras.layers.Conv2D(16, 3, padding="same", name="c2")(h))
    model = keras.Model(inputs, keras.layers.Dense(10)(keras.layers.GlobalAveragePooling2D()(h)))
    graph = kb.trace(model)
    encoding = UpperEncoding(graph, kb.criteria.scores(graph, model, "l1"), "width", round_to=8)
    budget = Budget(graph, 0.5)
    # Raised from 4 and 12 channels, c2 reaches all 16 (0.33 of the FLOPs); a channel of c1
    # costs 0.08, so c1 stops at 5 (0.42); moving one of c2's to c1 lands at 0.47.
    plan = budget.repair(encoding, {"c1": encoding.ranking["c1"][:4],
                                    "c2": encoding.ranking["c2"][:12]})
    assert 0.5 - BAND <= budget.ratio(plan) <= 0.5
    assert {k: len(v) for k, v in plan.keep.items()} == {"c1": 6, "c2": 15}


def test_floor_ratio_is_the_plan_with_every_group_at_its_floor():
    model = _chain([16, 32], "floors")
    graph = kb.trace(model)
    scores = kb.criteria.scores(graph, model, "l1")
    encoding = UpperEncoding(graph, scores, "width", round_to=1, max_prune_ratio=0.5)
    floors = kb.PruningPlan({"conv0": range(8), "conv1": range(16)}, signature=graph.signature)
    budget = Budget(graph, 0.5)
    assert budget.floor_ratio(encoding) == pytest.approx(budget.ratio(floors))


def test_an_unreachable_target_is_refused_before_the_search():
    model = _chain([16, 32], "unreachable")
    x = np.random.default_rng(0).normal(size=(64, 12, 12, 3)).astype("float32")
    y = np.arange(64) % 10
    evaluator = kb.Evaluator(model, (x, y), eval_size=32, calibration_size=16)
    calls = []
    evaluator.evaluate = lambda plans: calls.append(plans)
    search = kb.search.BiLevelSearch(evaluator, target=0.1, max_accuracy_drop=None,
                                     max_prune_ratio=0.5, verbose=0)
    with pytest.raises(SearchError, match=r"floors keep at least 0\.2\d\d.*target=0\.1") as info:
        search.run()
    assert "max_prune_ratio" in str(info.value)
    assert calls == []


def _latency_model(model, tmp_path, lanes=1):
    """A latency model whose timer is exact: overhead, MACs and output entries (memory); with
    ``lanes=1`` every width costs what it is timed at."""
    def timer(sub_model):
        entries = sum(int(np.prod(t.shape[1:])) for t in sub_model.outputs)
        return 0.05 + kb.cost(sub_model).macs / 1e6 + entries / 1e3

    return kb.evaluate.LatencyModel.build(model, runtime="tf", round_to=1, lanes=lanes,
                                          cache_dir=tmp_path, timer=timer, verbose=0)


@pytest.mark.parametrize("kind", ["width", "mask"])
def test_a_latency_budget_lands_the_predicted_latency_in_the_band(kind, tmp_path):
    model = _chain([16, 32, 64, 64], "latency")
    graph = kb.trace(model)
    latency = _latency_model(model, tmp_path)
    encoding = UpperEncoding(graph, kb.criteria.scores(graph, model, "l1"), kind, round_to=8)
    rng = np.random.default_rng(0)
    genomes = [encoding.full()] + [np.array([rng.choice(space) for space in encoding.gene_space])
                                   for _ in range(3)]
    flops, apart = Budget(graph), []
    for target in (0.4, 0.6, 0.8):
        budget = Budget(graph, target, "latency", latency_model=latency)
        for genome in genomes:
            plan = encoding.decode(genome, budget)
            assert target - BAND <= latency.ratio(plan) <= target, (target, latency.ratio(plan))
            assert budget.ratio(plan) == latency.ratio(plan)
            apart.append(abs(flops.ratio(plan) - latency.ratio(plan)))
    assert max(apart) > BAND                                            # not a FLOPs budget


def test_flops_and_latency_budgets_combine(tmp_path):
    model = _chain([16, 32, 64, 64], "combined")
    graph = kb.trace(model)
    latency = _latency_model(model, tmp_path)
    encoding = UpperEncoding(graph, kb.criteria.scores(graph, model, "l1"), "width", round_to=8)
    flops = Budget(graph)
    for latency_target, flops_target in ((0.7, 0.4), (0.4, 0.9)):
        budget = Budget(graph, latency_target, "latency", latency_model=latency,
                        extra_targets={"flops": flops_target})
        plan = encoding.decode(encoding.full(), budget)
        kept = {"latency": latency.ratio(plan), "flops": flops.ratio(plan)}
        assert kept["latency"] <= latency_target and kept["flops"] <= flops_target, kept
        assert budget.slack(plan) == pytest.approx(min(latency_target - kept["latency"],
                                                       flops_target - kept["flops"]))
        assert 0 <= budget.slack(plan) <= BAND, kept            # the binding one is in the band
    half = budget.with_target(0.2)
    assert (half.target, half.extra_targets) == (0.2, {"flops": pytest.approx(0.45)})
    with pytest.raises(SearchError, match="extra_targets"):
        Budget(graph, 0.5, "flops", extra_targets={"flops": 0.4})


def test_a_fill_lands_the_flops_in_their_band_where_the_latency_binds_first(tmp_path):
    model = _chain([16, 32, 64, 64], "fill")
    graph = kb.trace(model)
    latency = _latency_model(model, tmp_path)
    encoding = UpperEncoding(graph, kb.criteria.scores(graph, model, "l1"), "width", round_to=8)
    budget = Budget(graph, 0.45, "latency", latency_model=latency, extra_targets={"flops": 0.5})
    flops = Budget(graph)
    rng = np.random.default_rng(0)
    genomes = [encoding.full()] + [np.array([rng.choice(space) for space in encoding.gene_space])
                                   for _ in range(5)]
    searched = [encoding.decode(genome, budget) for genome in genomes]
    assert min(flops.ratio(plan) for plan in searched) < 0.5 - BAND     # the latency binds
    for plan in searched:
        keep = {g.id: encoding.ranking[g.id][np.isin(encoding.ranking[g.id],
                                                     plan.keep.get(g.id, range(g.size)))]
                for g in encoding.groups}
        filled = budget.repair(encoding, keep, fill=True)
        kept = {"latency": latency.ratio(filled), "flops": flops.ratio(filled)}
        assert kept["latency"] <= 0.45 and 0.5 - BAND <= kept["flops"] <= 0.5, kept
        assert budget.filled(filled) and (budget.filled(plan) or plan != filled)


def test_an_unreachable_latency_target_is_refused_with_the_smallest_reachable_ratio(tmp_path):
    model = _chain([16, 32], "unreachable_latency")
    x = np.random.default_rng(0).normal(size=(64, 12, 12, 3)).astype("float32")
    evaluator = kb.Evaluator(model, (x, np.arange(64) % 10), eval_size=32, calibration_size=16)
    latency = _latency_model(model, tmp_path)
    encoding = UpperEncoding(evaluator.graph, kb.criteria.scores(evaluator.graph, model, "l1"),
                             "mask", max_prune_ratio=0.5)
    smallest = Budget(evaluator.graph, 1.0, "latency", latency_model=latency).floor_ratio(encoding)
    search = kb.search.BiLevelSearch(evaluator, target=0.2, measure="latency",
                                     latency_model=latency, max_accuracy_drop=None,
                                     max_prune_ratio=0.5, verbose=0)
    with pytest.raises(SearchError, match=rf"floors keep at least {smallest:.3f}.*\(latency\)"):
        search.run()
    flops_too = kb.search.BiLevelSearch(evaluator, target=0.9, measure="latency",
                                        latency_model=latency, extra_targets={"flops": 0.1},
                                        max_accuracy_drop=None, max_prune_ratio=0.5, verbose=0)
    with pytest.raises(SearchError, match=r"target=0\.1 \(flops\)"):
        flops_too.run()


def test_a_latency_budget_needs_the_models_latency_model(tmp_path):
    graph = kb.trace(_chain([16, 32], "needs_latency"))
    with pytest.raises(SearchError, match="LatencyModel"):
        Budget(graph, 0.5, measure="latency")
    other = _latency_model(_chain([16, 24], "other"), tmp_path)
    with pytest.raises(SearchError, match="LatencyModel"):
        Budget(graph, 0.5, measure="latency", latency_model=other)


def test_under_a_latency_ceiling_counts_move_by_whole_lanes(tmp_path):
    model = _chain([16, 32, 64, 64], "lanes")
    graph = kb.trace(model)
    latency = _latency_model(model, tmp_path, lanes=8)
    encoding = UpperEncoding(graph, kb.criteria.scores(graph, model, "l1"), "width", round_to=8)
    rng = np.random.default_rng(0)
    genomes = [encoding.full()] + [np.array([rng.choice(space) for space in encoding.gene_space])
                                   for _ in range(5)]
    for target in (0.35, 0.55, 0.75):
        budget = Budget(graph, target, "latency", latency_model=latency,
                        extra_targets={"flops": 0.9})
        for genome in genomes:
            widths = [len(k) for k in encoding.decode(genome, budget).keep.values()]
            assert all(w % latency.lanes == 0 for w in widths), (target, widths)


def _single_moves(counts, steps, sizes):
    """Every plan one step away: a group raised a step, another lowered a step or not."""
    for up in counts:
        if counts[up] >= sizes[up]:
            continue
        raised = {**counts, up: min(sizes[up], counts[up] + steps[up])}
        yield raised
        for down in counts:
            if down != up and counts[down] > steps[down]:
                yield {**raised, down: counts[down] - steps[down]}


def test_under_a_latency_ceiling_alone_the_fill_keeps_the_most_flops_the_latency_buys(tmp_path):
    model = _chain([16, 32, 64, 64], "grow")
    graph = kb.trace(model)
    latency = _latency_model(model, tmp_path, lanes=8)
    encoding = UpperEncoding(graph, kb.criteria.scores(graph, model, "l1"), "width", round_to=8)
    flops = Budget(graph)
    sizes = {g.id: g.size for g in encoding.groups}
    steps = {g.id: max(latency.lanes, encoding.step[g.id]) for g in encoding.groups}
    rng = np.random.default_rng(0)
    genomes = [encoding.full()] + [np.array([rng.choice(space) for space in encoding.gene_space])
                                   for _ in range(3)]
    gained = []
    for target in (0.4, 0.6):
        budget = Budget(graph, target, "latency", latency_model=latency)
        assert budget.grows and not Budget(graph, target, "latency", latency_model=latency,
                                           extra_targets={"flops": 0.9}).grows
        for genome in genomes:
            plan = encoding.decode(genome, budget)
            grown = budget.repair(encoding, encoding.kept(genome), fill=True)
            assert latency.ratio(grown) <= target
            gained.append(flops.ratio(grown) - flops.ratio(plan))
            counts = {g.id: len(grown.keep.get(g.id, range(g.size))) for g in encoding.groups}

            def plan_of(c):
                return encoding.plan({k: encoding.ranking[k][:n] for k, n in c.items()})

            best = max((flops.ratio(plan_of(c)) for c in _single_moves(counts, steps, sizes)
                        if latency.ratio(plan_of(c)) <= target), default=0.0)
            assert best <= flops.ratio(grown) + 1e-12, (target, counts)     # no step buys more
    assert min(gained) >= -1e-12 and max(gained) > 0.02, gained


def test_a_search_grows_a_plan_already_in_the_latency_band(tmp_path):
    model = _chain([16, 32, 64, 64], "grow_search")
    graph = kb.trace(model)
    latency = _latency_model(model, tmp_path, lanes=8)
    x = np.random.default_rng(0).normal(size=(32, 12, 12, 3)).astype("float32")
    y = np.arange(32) % 10
    evaluator = kb.Evaluator(model, (x, y), metric="accuracy")
    search = kb.search.BiLevelSearch(evaluator, target=0.5, measure="latency",
                                     latency_model=latency, max_accuracy_drop=None,
                                     population_size=4, generations=1, verbose=0)
    search.run()
    budget = Budget(graph, 0.5, "latency", latency_model=latency)
    encoding = search._upper
    banded = next(p for p in (encoding.decode(encoding.encode_counts(
        {g.id: round(share * g.size) for g in encoding.groups}), budget)
        for share in (1.0, 0.8, 0.6, 0.5)) if budget.filled(p))
    grown = search.fill(banded, 0.5)
    flops = Budget(graph)
    assert latency.ratio(grown) <= 0.5 and flops.ratio(grown) > flops.ratio(banded) + 0.01
