"""The PyTorch twins carry the Keras weights exactly, and Torch-Pruning's choice transplants back."""

import keras
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torch_pruning")

import keras_biprune as kb
from benchmarks import torch_twins
from benchmarks.compare import plan_from_kept
from benchmarks.models import MODELS

SIZE = 16          # even: Keras' "same" pads a stride-2 3×3 conv on one side only


def _keras_model(name, seed, channels=1):
    """A benchmark model with random weights, biases and batch-norm statistics (not the
    defaults: zero biases could not be told apart)."""
    keras.utils.set_random_seed(seed)
    model = MODELS[name]((SIZE, SIZE, channels), 10)
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, variance = layer.get_weights()
            layer.set_weights([rng.uniform(0.5, 1.5, gamma.shape), rng.normal(0, 0.1, beta.shape),
                               rng.normal(0, 0.1, mean.shape), rng.uniform(0.5, 1.5, variance.shape)])
        elif isinstance(layer, keras.layers.Dense):
            kernel, bias = layer.get_weights()
            layer.set_weights([kernel, rng.normal(0, 0.1, bias.shape)])
    return model


def _twin(name, model):
    weights = {layer.name: layer.get_weights() for layer in model.layers if layer.weights}
    return torch_twins.from_keras(name, weights, SIZE, model.inputs[0].shape[-1])


def _logits(twin, x):
    with torch.no_grad():
        return twin(torch_twins.to_torch(x)).numpy()


@pytest.mark.parametrize("channels", [1, 3])       # Fashion-MNIST, CIFAR
@pytest.mark.parametrize("name", sorted(MODELS))
def test_twin_computes_the_keras_logits(name, channels):
    model = _keras_model(name, 0, channels)
    x = np.random.default_rng(1).normal(size=(8, SIZE, SIZE, channels)).astype("float32")
    np.testing.assert_allclose(_logits(_twin(name, model), x), model.predict(x, verbose=0),
                               atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_torch_pruning_plan_rebuilds_the_same_pruned_network(name):
    model = _keras_model(name, 2)
    twin = _twin(name, model)
    example = torch.zeros(1, 1, SIZE, SIZE)
    pruned = torch_twins.prune_to_flops(twin, "l1", 0.5, example, None, round_to=8, steps=6)
    graph = kb.trace(model)
    plan = plan_from_kept(graph, torch_twins.kept_channels(twin, pruned))
    assert plan.keep, "Torch-Pruning pruned nothing"
    slim = kb.apply_plan(model, plan)
    x = np.random.default_rng(3).normal(size=(8, SIZE, SIZE, 1)).astype("float32")
    np.testing.assert_allclose(_logits(pruned, x), slim.predict(x, verbose=0), atol=1e-4,
                               rtol=1e-4)
    ratio = kb.cost(graph, plan).ratio_to(kb.cost(graph)).macs
    twin_ratio = torch_twins.macs(pruned, example) / torch_twins.macs(twin, example)
    assert ratio == pytest.approx(twin_ratio) and ratio <= 0.5


def test_plan_from_kept_refuses_members_that_disagree():
    model = _keras_model("resnet20", 0)
    graph = kb.trace(model)
    residual = next(g for g in graph.prunable_groups if "stage2_block1_2_conv" in g.producers)
    kept = {"stage2_block1_2_bn": [0, 1, 2], "stage2_block1_shortcut_bn": [0, 1, 3]}
    with pytest.raises(RuntimeError, match=residual.id):
        plan_from_kept(graph, kept)

