"""Criteria: each ranks hand-made channels right, groups combine, select builds plans."""

import importlib.util

import keras
import numpy as np
import pytest
from keras import layers
from zoo import ZOO, sample_input

import keras_biprune as kb
from keras_biprune.criteria import CriterionError

SCE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def chain(filters=6, seed=0):
    """Input(8, 8, 3) -> c1 -> bn1 -> ReLU -> c2 (4) -> GAP -> head (3)."""
    inputs = keras.Input((8, 8, 3))
    x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name="c1")(inputs)
    x = layers.ReLU()(layers.BatchNormalization(name="bn1")(x))
    x = layers.Conv2D(4, 3, padding="same", activation="relu", name="c2")(x)
    x = layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, layers.Dense(3, name="head")(x), name="chain")
    rng = np.random.default_rng(seed)
    for w in model.weights:
        w.assign(rng.normal(0, 0.3, w.shape).astype("float32"))
    bn = model.get_layer("bn1")
    bn.moving_variance.assign(np.ones(filters, "float32"))
    bn.moving_mean.assign(np.zeros(filters, "float32"))
    bn.gamma.assign(np.ones(filters, "float32"))
    return model


def data(n=8, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 8, 8, 3)).astype("float32"), rng.integers(0, 3, n)


def set_filter(model, layer, k, value):
    kernel = keras.ops.convert_to_numpy(model.get_layer(layer).kernel).copy()
    kernel[..., k] = value
    model.get_layer(layer).kernel.assign(kernel)


def set_entry(variable, k, value):
    array = keras.ops.convert_to_numpy(variable).copy()
    array[k] = value
    variable.assign(array)


@pytest.fixture(scope="module")
def residual():
    """a (4 filters) and b (4 filters, reading a) joined by Add: one group."""
    inputs = keras.Input((6, 6, 2))
    a = layers.Conv2D(4, 1, use_bias=False, name="a")(inputs)
    b = layers.Conv2D(4, 1, use_bias=False, name="b")(layers.ReLU()(a))
    x = layers.GlobalAveragePooling2D()(layers.ReLU()(layers.Add()([a, b])))
    return keras.Model(inputs, layers.Dense(2)(x), name="residual_pair")


def test_l1_and_l2_follow_the_filters_made_large():
    model = chain()
    graph = kb.trace(model)
    set_filter(model, "c1", 2, 1.0)
    set_filter(model, "c1", 4, -2.0)
    kernel = keras.ops.convert_to_numpy(model.get_layer("c1").kernel)
    l1 = np.abs(kernel).reshape(-1, 6).sum(axis=0)
    l2 = np.sqrt((kernel**2).reshape(-1, 6).sum(axis=0))
    np.testing.assert_allclose(kb.criteria.L1()(graph, "c1", model), l1 / l1.mean(), rtol=1e-6)
    np.testing.assert_allclose(kb.criteria.L2()(graph, "c1", model), l2 / l2.mean(), rtol=1e-6)
    plan = kb.criteria.select(graph, model, {"c1": 2}, "l2")
    assert plan.keep == {"c1": (2, 4)}


def test_fpgm_ranks_the_geometric_median_lowest():
    model = chain(filters=5)
    graph = kb.trace(model)
    n = 3 * 3 * 3
    centre = np.full(n, 5.0)
    e1, e2 = np.eye(n)[0], np.eye(n)[1]
    filters = [centre, centre + e1, centre - e1, centre + e2, centre - e2]
    model.get_layer("c1").kernel.assign(np.stack(filters, -1).reshape(3, 3, 3, 5))
    fpgm = kb.criteria.FPGM()(graph, "c1", model)
    assert np.argmin(fpgm) == 0  # the median, though its L1 norm is not the smallest
    assert np.argmin(kb.criteria.L1()(graph, "c1", model)) == 2
    np.testing.assert_allclose(fpgm[1:], fpgm[1], rtol=1e-6)


def test_bn_scale_follows_gamma_and_falls_back_without_batch_norm():
    model = chain()
    graph = kb.trace(model)
    gamma = np.array([0.1, -2.0, 0.5, 3.0, 1.0, 0.05], "float32")
    model.get_layer("bn1").gamma.assign(gamma)
    scores = kb.criteria.BNScale()(graph, "c1", model)
    np.testing.assert_allclose(scores, np.abs(gamma) / np.abs(gamma).mean(), rtol=1e-6)
    np.testing.assert_allclose(
        kb.criteria.BNScale()(graph, "c2", model), kb.criteria.L1()(graph, "c2", model)
    )
    with pytest.raises(CriterionError, match="fallback='l1'"):
        kb.criteria.BNScale(fallback=None)(graph, "c2", model)


def test_apoz_ranks_an_always_zero_channel_lowest():
    model = chain()
    graph = kb.trace(model)
    set_filter(model, "c1", 3, 0.0)
    set_entry(model.get_layer("bn1").beta, 3, -1.0)  # relu(0 * x - 1) = 0 everywhere
    scores = kb.criteria.APoZ()(graph, "c1", model, data=data())
    assert scores[3] == 0 and (np.delete(scores, 3) > 0).all()


def test_hrank_ranks_a_constant_feature_map_lowest():
    model = chain()
    graph = kb.trace(model)
    set_filter(model, "c1", 1, 0.0)
    set_entry(model.get_layer("bn1").beta, 1, 1.0)  # relu(0 * x + 1) = 1: rank 1
    scores = kb.criteria.HRank()(graph, "c1", model, data=data(n=4)[0])
    assert np.argmin(scores) == 1
    assert np.delete(scores, 1).min() > 2 * scores[1]


def test_taylor_ranks_a_channel_without_effect_on_the_loss_lowest():
    model = chain()
    graph = kb.trace(model)
    kernel = keras.ops.convert_to_numpy(model.get_layer("c2").kernel).copy()
    kernel[:, :, 5, :] = 0.0  # nothing reads channel 5 of c1
    model.get_layer("c2").kernel.assign(kernel)
    scores = kb.criteria.Taylor(loss=SCE)(graph, "c1", model, data=data())
    assert scores[5] == 0 and (np.delete(scores, 5) > 0).all()
    model.compile(loss=SCE)
    np.testing.assert_allclose(kb.criteria.Taylor()(graph, "c1", model, data=data()), scores)


def test_a_residual_group_averages_its_members_normalized_scores(residual):
    graph = kb.trace(residual)
    (group,) = [g for g in graph.prunable_groups if set(g.producers) == {"a", "b"}]
    # per-filter L1 norms a = [2, 2, 0, 1] and b = [2, 0, 0, 1], spread over the kernels
    residual.get_layer("a").kernel.assign(np.tile([1.0, 1.0, 0.0, 0.5], (1, 1, 2, 1)))
    residual.get_layer("b").kernel.assign(np.tile([0.5, 0.0, 0.0, 0.25], (1, 1, 4, 1)))
    scores = kb.criteria.L1()(graph, group, residual)
    expected = (np.array([2, 2, 0, 1]) / 1.25 + np.array([2, 0, 0, 1]) / 0.75) / 2
    np.testing.assert_allclose(scores, expected, rtol=1e-6)
    assert scores[0] > scores[1] > scores[2]  # strong in both > strong in one > in none


def test_a_depthwise_conv_scores_with_the_filters_it_follows():
    inputs = keras.Input((6, 6, 2))
    x = layers.Conv2D(4, 1, use_bias=False, name="c")(inputs)
    x = layers.DepthwiseConv2D(3, depth_multiplier=2, use_bias=False, name="dw")(x)
    x = layers.GlobalAveragePooling2D()(layers.Conv2D(3, 1, name="out")(x))
    model = keras.Model(inputs, x, name="depthwise")
    graph = kb.trace(model)
    conv = np.abs(keras.ops.convert_to_numpy(model.get_layer("c").kernel)).sum(axis=(0, 1, 2))
    dw = np.abs(keras.ops.convert_to_numpy(model.get_layer("dw").kernel)).sum(axis=(0, 1, 3))
    expected = (conv / conv.mean() + dw / dw.mean()) / 2
    np.testing.assert_allclose(kb.criteria.L1()(graph, "c", model), expected, rtol=1e-5)


def test_combine_normalizes_each_member_and_fills_uncovered_positions():
    parts = [(np.array([0, 1]), np.array([3.0, 1.0])), (np.array([1, 2]), np.array([0.0, 0.0]))]
    np.testing.assert_allclose(kb.criteria.combine(4, parts), [1.5, 0.25, 0.0, 1.0])


def test_random_is_reproducible_per_seed_and_per_group():
    model = ZOO["residual"]()
    graph = kb.trace(model)
    group = graph.prunable_groups[1]
    first = kb.criteria.Random(seed=7)(graph, group, model)
    assert first.shape == (group.size,)
    np.testing.assert_array_equal(first, kb.criteria.Random(seed=7)(graph, group, model))
    every_group = kb.criteria.scores(graph, model, kb.criteria.Random(seed=7))
    np.testing.assert_array_equal(first, every_group[group.id])
    assert not np.array_equal(first, kb.criteria.Random(seed=8)(graph, group, model))
    unseeded = kb.criteria.Random()
    assert not np.array_equal(unseeded(graph, group, model), unseeded(graph, group, model))


@pytest.mark.parametrize(
    "criterion",
    [
        *kb.criteria.TABLE,
        kb.criteria.Random(seed=3),
        kb.criteria.BNScale(fallback=None),
        kb.criteria.APoZ(max_batches=2, batch_size=8),
        kb.criteria.Taylor(loss=SCE, max_batches=1),
        kb.criteria.Taylor(loss=["mse", "mae"]),
    ],
    ids=lambda c: c if isinstance(c, str) else type(c).__name__,
)
def test_config_round_trips(criterion):
    criterion = kb.criteria.get(criterion)
    assert type(criterion).from_config(criterion.get_config()) == criterion
    again = kb.criteria.get(kb.criteria.serialize(criterion))
    assert again == criterion and again.get_config() == criterion.get_config()


def test_get_is_case_insensitive_and_returns_instances_as_given():
    assert isinstance(kb.criteria.get("FPGM"), kb.criteria.FPGM)
    taylor = kb.criteria.Taylor(loss="mse")
    assert kb.criteria.get(taylor) is taylor
    assert kb.criteria.get("apoz").requires_data and not kb.criteria.get("l1").requires_data


@pytest.mark.parametrize("name", ["residual", "inception", "depthwise_separable", "nested",
                                  "flatten_dense", "multi_io", "channels_first_flatten"])
def test_every_criterion_scores_every_prunable_group(name):
    model = ZOO[name]()
    graph = kb.trace(model)
    x = sample_input(model, n=3)
    y = [np.zeros((3,) + tuple(t.shape[1:]), "float32") for t in model.outputs]
    uncompiled = [name for name in kb.criteria.TABLE if name != "taylor"]
    for criterion in [*uncompiled, kb.criteria.Taylor(loss="mse")]:
        scores = kb.criteria.scores(graph, model, criterion, data=(x, y if len(y) > 1 else y[0]))
        assert set(scores) == {g.id for g in graph.prunable_groups}
        for group_id, values in scores.items():
            assert values.shape == (graph.group(group_id).size,)
            assert np.isfinite(values).all() and (values >= 0).all()


def test_data_forms_agree():
    model = chain()
    graph = kb.trace(model)
    x, y = data(n=6)

    class Batches(keras.utils.PyDataset):
        def __len__(self):
            return 3

        def __getitem__(self, i):
            return x[2 * i:2 * i + 2], y[2 * i:2 * i + 2]

    apoz = kb.criteria.APoZ(batch_size=2)
    reference = apoz(graph, "c1", model, data=(x, y))
    forms = [x, (x,), [x, y], Batches()]
    if importlib.util.find_spec("tensorflow"):   # tf.data works on every backend with TF installed
        import tensorflow as tf

        forms.append(tf.data.Dataset.from_tensor_slices((x, y)).batch(2))
    for form in forms:
        np.testing.assert_allclose(apoz(graph, "c1", model, data=form), reference)
    first = kb.criteria.APoZ(max_batches=1, batch_size=2)(graph, "c1", model, data=x)
    np.testing.assert_allclose(first, apoz(graph, "c1", model, data=x[:2]))


def test_select_keeps_the_best_channels_and_the_plan_applies():
    model = chain()
    graph = kb.trace(model)
    set_filter(model, "c1", 0, 3.0)
    set_filter(model, "c1", 5, 2.0)
    set_filter(model, "c1", 3, 1.0)
    plan = kb.criteria.select(graph, model, {"c1": 3, "c2": 0.5}, "l1")
    assert plan.keep == {"c1": (0, 3, 5), "c2": tuple(plan.keep["c2"])}
    assert len(plan.keep["c2"]) == 2 and plan.signature == graph.signature
    slim = kb.apply_plan(model, plan)
    assert slim.get_layer("c1").filters == 3 and slim.get_layer("c2").filters == 2
    uniform = kb.criteria.select(graph, model, 0.5, "apoz", data=data())
    assert {k: len(v) for k, v in uniform.keep.items()} == {"c1": 3, "c2": 2}
    assert kb.apply_plan(model, uniform)(data()[0]).shape == (8, 3)


def test_a_residual_plan_from_a_data_criterion_applies():
    model = ZOO["residual"]()
    graph = kb.trace(model)
    x = sample_input(model, n=4)
    plan = kb.criteria.select(graph, model, 0.25, kb.criteria.HRank(), data=x)
    for group in graph.prunable_groups:
        assert len(plan.keep[group.id]) == max(1, round(0.25 * group.size))
    assert kb.apply_plan(model, plan)(x).shape == (4, 5)


def test_plan_from_scores_keeps_the_lower_position_on_ties():
    graph = kb.trace(chain())
    scores = {"c1": np.array([1.0, 2.0, 2.0, 0.0, 2.0, 1.0])}
    assert kb.criteria.plan_from_scores(graph, scores, {"c1": 2}).keep == {"c1": (1, 2)}


@pytest.mark.parametrize(
    ("keep", "error", "match"),
    [
        (0.0, kb.InvalidPlanError, r"keep\['c1'\]=0.0"),
        ({"c1": 7}, kb.InvalidPlanError, r"int count in \[1, 6\]"),
        ({"c1": True}, kb.InvalidPlanError, "Received"),
        ({"nope": 2}, kb.PlanMismatchError, "does not have"),
        ({"head": 2}, kb.InvalidPlanError, "cannot be pruned"),
        (3, kb.InvalidPlanError, "ratio in"),
    ],
)
def test_select_rejects_bad_keep(keep, error, match):
    model = chain()
    with pytest.raises(error, match=match):
        kb.criteria.select(kb.trace(model), model, keep)


def test_errors_name_the_problem_and_the_fix():
    model = chain()
    graph = kb.trace(model)
    with pytest.raises(CriterionError, match=r"Received: 'l3'. Valid names: \['apoz'"):
        kb.criteria.get("l3")
    with pytest.raises(CriterionError, match="Received: 3"):
        kb.criteria.get(3)
    with pytest.raises(kb.errors.DataError, match="data=None"):
        kb.criteria.select(graph, model, 0.5, "apoz")
    with pytest.raises(kb.errors.DataError, match=r"shape \(8, 8, 3\).*\(2, 4, 4, 3\)"):
        kb.criteria.scores(graph, model, "hrank", data=np.zeros((2, 4, 4, 3)))
    with pytest.raises(kb.errors.DataError, match="1 input"):
        kb.criteria.scores(graph, model, "hrank", data=([data()[0], data()[0]],))
    with pytest.raises(kb.errors.DataError, match="type int"):
        kb.criteria.scores(graph, model, "apoz", data=5)
    with pytest.raises(kb.errors.DataError, match="needs targets"):
        kb.criteria.scores(graph, model, kb.criteria.Taylor(loss=SCE), data=data()[0])
    with pytest.raises(CriterionError, match="needs a loss"):
        kb.criteria.scores(graph, model, "taylor", data=data())
    with pytest.raises(kb.errors.DataError, match="no batch"):
        kb.criteria.scores(graph, model, "apoz", data=data()[0][:0])
    with pytest.raises(CriterionError, match="max_batches=0"):
        kb.criteria.APoZ(max_batches=0)
    with pytest.raises(CriterionError, match="Received: group='nope'"):
        kb.criteria.L1()(graph, "nope", model)
    with pytest.raises(CriterionError, match="traced from model 'chain'"):
        kb.criteria.L1()(graph, "c1", ZOO["residual"]())
    assert issubclass(CriterionError, (ValueError, kb.BiPruneError))


@pytest.mark.parametrize("layer", [
    layers.Conv2D(5, 3), layers.Conv2DTranspose(5, 3), layers.Dense(5),
    layers.SeparableConv2D(5, 3, depth_multiplier=2),
])
def test_input_magnitudes_are_per_input_channel_and_filter(layer):
    from keras_biprune.criteria.weights import input_magnitudes

    layer.build((None, 6) if isinstance(layer, layers.Dense) else (None, 8, 8, 6))
    rng = np.random.default_rng(0)
    for w in layer.weights:
        w.assign(rng.normal(0, 1, w.shape).astype("float32"))
    if isinstance(layer, layers.SeparableConv2D):     # input 2 reaches no filter
        layer.depthwise_kernel.assign(layer.depthwise_kernel * np.isin(np.arange(6), 2, invert=True)
                                      .reshape(1, 1, 6, 1))
    elif isinstance(layer, layers.Conv2DTranspose):   # kernel (h, w, filters, inputs)
        layer.kernel.assign(layer.kernel * (np.arange(6) != 2))
    else:
        layer.kernel.assign(layer.kernel * (np.arange(6) != 2)[:, None])
    magnitudes = input_magnitudes(layer)
    assert magnitudes.shape == (6, 5)
    assert (magnitudes[2] == 0).all() and (np.delete(magnitudes, 2, axis=0) > 0).all()
