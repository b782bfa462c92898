"""The latency model: blocks, tables measured once and cached, predictions that add up.

A deterministic timer (a fixed overhead plus the sub-model's MACs) stands for
the runtime, so every figure here is exact; real timings are measured by
``benchmarks/latency_budget.py``.
"""

import json

import keras
import pytest

import keras_biprune as kb
from keras_biprune.errors import MissingDependencyError, SearchError
from keras_biprune.evaluate import LatencyModel
from keras_biprune.evaluate.latency_model import CALIBRATION, blocks, measure_lanes
from keras_biprune.layers import ChannelSelect
from tests import zoo

OVERHEAD = 0.25


class MacsTimer:
    """Milliseconds = OVERHEAD + MACs / 1e6; counts its calls."""

    def __init__(self):
        self.calls = 0

    def __call__(self, sub_model):
        self.calls += 1
        return OVERHEAD + kb.cost(sub_model).macs / 1e6


def _build(model, tmp_path, timer=None, **kwargs):
    return LatencyModel.build(model, **({"runtime": "tf", "batch_size": 8, "round_to": 1,
                                         "lanes": 1, "cache_dir": tmp_path,
                                         "timer": timer or MacsTimer(), "verbose": 0} | kwargs))


def test_a_conv_its_batch_norm_and_activation_are_one_block():
    model = zoo.plain_chain()
    kinds = [[type(n.operation).__name__ for n in b.nodes] for b in blocks(model, kb.trace(model))]
    assert kinds[0] == ["Conv2D", "BatchNormalization", "Activation"]
    assert sum(len(k) for k in kinds) == len(kb.trace(model).records)


@pytest.mark.parametrize("name", ["plain_chain", "residual", "depthwise_separable",
                                  "flatten_dense", "inception"])
def test_predictions_are_the_sum_of_the_blocks_plus_one_overhead(name, tmp_path):
    model = getattr(zoo, name)()
    graph = kb.trace(model)
    latency = _build(model, tmp_path)
    for seed in range(3):
        plan = kb.PruningPlan.random(graph, ratio=0.5, seed=seed)
        expected = OVERHEAD + kb.cost(graph, plan).macs / 1e6     # MACs are bilinear in widths
        assert latency.predict(plan) == pytest.approx(expected, rel=1e-9)
        assert latency.ratio(plan) == pytest.approx(expected / latency.predict(), rel=1e-9)


def test_the_tables_are_measured_once_and_cached_by_signature_runtime_and_batch(tmp_path):
    model = zoo.plain_chain()
    first = MacsTimer()
    built = _build(model, tmp_path, first)
    assert first.calls > 1
    again = MacsTimer()
    loaded = _build(model, tmp_path, again)
    assert again.calls == 0
    assert loaded.tables == json.loads(json.dumps(built.tables))
    plan = kb.PruningPlan.random(kb.trace(model), ratio=0.5, seed=0)
    assert loaded.predict(plan) == pytest.approx(built.predict(plan))
    for changed in ({"runtime": "tflite"}, {"batch_size": 16}, {"round_to": 4}):
        timer = MacsTimer()
        _build(model, tmp_path, timer, **changed)
        assert timer.calls > 0, changed
    timer = MacsTimer()
    _build(zoo.residual(), tmp_path, timer)                 # another signature
    assert timer.calls > 0
    assert len(list(tmp_path.iterdir())) == 5


def test_the_cache_serves_the_same_model_built_again_with_other_layer_names(tmp_path):
    from keras_biprune.demo import build_model  # named convs, unnamed adds

    built = _build(build_model((8, 8, 1)), tmp_path)
    again = build_model((8, 8, 1))          # Keras names its unnamed layers anew (add_1, ...)
    assert {b.name for b in blocks(again, kb.trace(again))} != set(built.tables)
    timer = MacsTimer()
    loaded = _build(again, tmp_path, timer)
    assert timer.calls == 0
    plan = kb.PruningPlan.random(loaded.graph, ratio=0.5, seed=0)
    assert loaded.predict(plan) == pytest.approx(built.predict(plan), rel=1e-9)


def test_widths_are_measured_in_round_to_steps_at_most_max_widths_per_axis(tmp_path):
    model = zoo.plain_chain()
    latency = _build(model, tmp_path, round_to=8, max_widths=3)
    conv = latency.tables[latency.blocks[1].name]           # 8 -> 12 channels
    assert conv["in"] == [2, 6, 8]                          # steps of 2 (group_step(8, 8))
    assert conv["out"] == [4, 8, 12]                        # steps of 4 (group_step(12, 8))
    assert [len(row) for row in conv["ms"]] == [3, 3, 3]


def test_a_spent_time_budget_measures_the_rest_at_two_widths(tmp_path):
    latency = _build(zoo.plain_chain(), tmp_path, time_budget=0.0, max_widths=5)
    assert all(len(t["in"]) <= 2 and len(t["out"]) <= 2 for t in latency.tables.values())


def test_a_blocks_widths_are_timed_in_turn_with_the_overhead(monkeypatch, tmp_path):
    from keras_biprune.evaluate import latency_model

    timed = []       # the models of each paired call, in order

    def paired(calls, rounds=3, runs=10, warmup=3):
        timed.append([call.model for call in calls])
        return [OVERHEAD + kb.cost(call.model).macs / 1e6 for call in calls]

    def forward_call(model, runtime, batch_size, threads=None):
        call = lambda: None
        call.model = model
        return call

    monkeypatch.setattr(latency_model, "paired", paired)
    monkeypatch.setattr(latency_model, "forward_call", forward_call)
    model = zoo.plain_chain()
    latency = LatencyModel.build(model, runtime="tf", batch_size=8, round_to=1, lanes=1,
                                 cache_dir=tmp_path, verbose=0)
    per_block, whole = timed[:len(latency.blocks)], timed[len(latency.blocks):]
    for models in per_block:                 # the empty model, then the block's widths
        assert kb.cost(models[0]).macs == 0 and len(models) > 2
    assert len(whole) == len(CALIBRATION) - 1        # each pruned model against the unpruned
    for unpruned, pruned in whole:
        assert unpruned is model and kb.cost(pruned).macs < kb.cost(model).macs
    plan = kb.PruningPlan.random(latency.graph, ratio=0.5, seed=0)
    assert latency.predict(plan) == pytest.approx(OVERHEAD + kb.cost(latency.graph, plan).macs
                                                  / 1e6, rel=1e-9)


def test_a_runtime_that_is_not_installed_is_named(monkeypatch, tmp_path):
    tf = pytest.importorskip("tensorflow")

    monkeypatch.delattr(tf.lite, "Interpreter")
    with pytest.raises(MissingDependencyError, match=r"runtime='tflite'.*tf\.lite\.Interpreter"):
        LatencyModel.build(zoo.plain_chain(), runtime="tflite", cache_dir=tmp_path, verbose=0)


def test_bad_arguments_are_refused(tmp_path):
    with pytest.raises(SearchError, match=r"runtime must be one of .*runtime='onnx'"):
        LatencyModel.build(zoo.plain_chain(), runtime="onnx", cache_dir=tmp_path)
    with pytest.raises(SearchError, match=r"max_widths=1"):
        _build(zoo.plain_chain(), tmp_path, max_widths=1)
    with pytest.raises(SearchError, match=r"TensorFlow runs on its own.*runtime='tf', threads=2"):
        _build(zoo.plain_chain(), tmp_path, threads=2)
    with pytest.raises(SearchError, match=r"threads must be an int >= 1.*threads=0"):
        _build(zoo.plain_chain(), tmp_path, runtime="tflite", threads=0)


def test_tflite_is_timed_on_one_thread_unless_told_and_the_cache_keeps_them_apart(monkeypatch,
                                                                                  tmp_path):
    pytest.importorskip("tensorflow")
    from keras_biprune.evaluate import latency_model

    threads = []     # the interpreter threads of every call timed

    def forward_call(model, runtime, batch_size, threads=None):
        call = lambda: None
        call.model, call.threads = model, threads
        return call

    def paired(calls, rounds=3, runs=10, warmup=3):
        threads.extend(call.threads for call in calls)
        return [OVERHEAD + kb.cost(call.model).macs / 1e6 for call in calls]

    monkeypatch.setattr(latency_model, "paired", paired)
    monkeypatch.setattr(latency_model, "forward_call", forward_call)
    model = zoo.plain_chain()

    def build(**kwargs):
        return LatencyModel.build(model, runtime="tflite", batch_size=8, round_to=1, lanes=1,
                                  cache_dir=tmp_path, verbose=0, **kwargs)

    assert build().threads == 1 and threads and set(threads) == {1}
    timed = len(threads)
    assert build(threads=2).threads == 2 and set(threads[timed:]) == {2}
    assert len(threads) == 2 * timed                    # not served the one-thread tables
    assert build().threads == 1 and len(threads) == 2 * timed



@pytest.mark.parametrize("extra, factor", [(2.0, 1.0), (0.0, 0.5), (0.0, 1.5), (1.0, 1.25),
                                           (-0.2, 1.0)])
def test_block_sums_are_mapped_to_milliseconds_through_whole_models(extra, factor, tmp_path):
    model = zoo.residual()

    def timer(sub_model):           # a whole model (unpruned or pruned) costs more, or less,
        if sub_model.name == model.name:    # than the sum of its blocks timed alone
            return OVERHEAD + extra + factor * kb.cost(sub_model).macs / 1e6
        return OVERHEAD + kb.cost(sub_model).macs / 1e6

    latency = _build(model, tmp_path, timer)
    assert len(latency.calibration) == len(CALIBRATION)
    assert latency.predict() == pytest.approx(timer(model), rel=1e-9)
    for seed in range(3):
        plan = kb.PruningPlan.random(latency.graph, ratio=0.2 + 0.2 * seed, seed=seed)
        expected = timer(kb.apply_plan(model, plan))
        assert latency.predict(plan) == pytest.approx(expected, rel=1e-9)


def test_the_map_follows_whole_models_that_do_not_fall_in_line_with_their_blocks(tmp_path):
    model = zoo.residual()

    def timer(sub_model):           # whole models: the blocks' MACs to the power 1.3
        macs = kb.cost(sub_model).macs / 1e6
        return macs ** 1.3 if sub_model.name == model.name else OVERHEAD + macs

    latency = _build(model, tmp_path, timer)
    for (total, ms), share in zip(latency.calibration, CALIBRATION, strict=True):
        assert ms == pytest.approx(total ** 1.3, rel=1e-9), share
    line = LatencyModel(model, "tf", 8, latency.tables, latency.calibration[::2], lanes=1)
    errors = []                     # between the points: closer than a line through two
    for seed, ratio in enumerate((0.35, 0.45, 0.6)):
        plan = kb.PruningPlan.random(latency.graph, ratio=ratio, seed=seed)
        expected = timer(kb.apply_plan(model, plan))
        assert latency.predict(plan) == pytest.approx(expected, rel=0.1)
        errors.append((abs(latency.predict(plan) - expected), abs(line.predict(plan) - expected)))
    assert sum(e for e, _ in errors) < 0.5 * sum(e for _, e in errors)


def test_a_narrower_model_timed_slower_is_pooled_so_the_map_never_decreases(tmp_path):
    latency = _build(zoo.residual(), tmp_path)
    total = latency.calibration[0][0]
    noisy = [[total, 4.0], [0.75 * total, 3.0], [0.5 * total, 3.4], [0.25 * total, 1.0]]
    pooled = LatencyModel(latency.model, "tf", 8, latency.tables, noisy, lanes=1)
    plans = [kb.PruningPlan.random(pooled.graph, ratio=r / 20, seed=r) for r in range(17)]
    plans.sort(key=latency.predict)                 # by their blocks' sum
    ms = [pooled.predict(plan) for plan in plans]
    assert ms == sorted(ms)
    assert any(m == pytest.approx(3.2) for m in ms)         # between the pooled points
    assert pooled.predict() == pytest.approx(4.0)


def test_a_width_costs_what_the_next_multiple_of_lanes_costs(tmp_path):
    model = zoo.plain_chain()
    graph = kb.trace(model)
    exact = _build(model, tmp_path, round_to=4)
    timer = MacsTimer()
    padded = _build(model, tmp_path, timer, round_to=4, lanes=4)
    assert timer.calls == 0                     # the same widths measured: the cache serves
    assert exact.tables == padded.tables
    for group in graph.prunable_groups:
        if group.size < 8:
            continue
        odd = kb.PruningPlan({group.id: list(range(5))})
        four, eight = (kb.PruningPlan({group.id: list(range(n))}) for n in (4, 8))
        assert exact.predict(four) < exact.predict(odd) < exact.predict(eight)
        assert padded.predict(odd) == pytest.approx(padded.predict(eight), rel=1e-9)
        assert padded.predict(four) < padded.predict(odd)


def test_a_layer_reading_a_subset_of_its_input_is_priced_as_reading_all_of_it_plus_a_gather(
        tmp_path):
    def timer(sub_model):       # MACs, and a gather 1 microsecond a channel it keeps
        gathers = [layer for layer in sub_model.layers if isinstance(layer, ChannelSelect)]
        return OVERHEAD + kb.cost(sub_model).macs / 1e6 + sum(len(g.indices) for g in gathers) / 1e3

    model = zoo.plain_chain()
    latency = _build(model, tmp_path, timer=timer)
    upper = kb.PruningPlan.random(latency.graph, ratio=0.25, seed=0)
    masked = kb.PruningPlan.random(latency.graph, ratio=0.25, seed=0, input_ratio=0.5)
    assert masked.inputs and masked.keep == upper.keep
    gathers = sum(len(kept) for kept in masked.inputs.values()) / 1e3
    assert latency.predict(masked) == pytest.approx(latency.predict(upper) + gathers, rel=1e-9)
    free = _build(model, tmp_path / "free")                 # a gather that costs nothing
    assert free.predict(masked) == pytest.approx(free.predict(upper), rel=1e-12)


def _conv_timer(cost):
    """A timer of `measure_lanes`' convs: ``cost(output channels)`` milliseconds."""
    return lambda conv: cost(conv.outputs[0].shape[-1])


@pytest.mark.parametrize("cost, lanes", [
    (lambda w: 1 + w / 8, 4),                                   # every channel costs
    (lambda w: 1 + -(-w // 8), 8),                              # padded to 8
    (lambda w: 1 + -(-w // 16) * (1.02 if w % 16 else 1), 16),  # 16, a little noise
    (lambda w: 1 + -(-w // 8) + (2 if w % 8 else 0), 8),        # between multiples: dearer
])
def test_lanes_are_the_widest_padding_that_hides_no_saving(cost, lanes):
    assert measure_lanes("tf", 64, timer=_conv_timer(cost)) == lanes


def test_tables_are_measured_in_steps_of_lanes_and_a_timer_prices_every_width(tmp_path):
    x = inputs = keras.Input((8, 8, 3))
    for i, width in enumerate((32, 64)):
        x = keras.layers.Conv2D(width, 3, padding="same", name=f"conv{i}")(x)
    model = keras.Model(inputs, keras.layers.Dense(10)(keras.layers.GlobalAveragePooling2D()(x)))
    wide = _build(model, tmp_path, round_to=4, lanes=16)
    conv = wide.tables[wide.blocks[1].name]
    assert conv["in"] == [8, 16, 24, 32]                    # group_step(32, 16): 8
    assert conv["out"] == [16, 32, 48, 64]                  # the lanes, not round_to's 4s
    assert _build(model, tmp_path, lanes="auto").lanes == 1     # the timer prices every width
    with pytest.raises(SearchError, match='lanes must be an int >= 1 or "auto"'):
        _build(model, tmp_path, lanes="wide")
