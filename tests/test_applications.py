"""Every ``keras.applications`` family traces, prunes and stays equivalent.

Each model is built with ``weights=None`` at a small input size, its weights are
randomized (so BatchNormalization statistics, LayerScale gammas and biases
differ per channel and a mis-sliced weight shows up in the outputs), traced,
pruned at random (half of every prunable group) and checked with
`assert_equivalent`: slim outputs == masked outputs and the analytic parameter
count. The classifier has no softmax (``classifier_activation=None``) so the
comparison is made on logits, not on squashed probabilities.

The smallest member of each family runs by default; the others are marked slow
(``RUN_SLOW=1`` or ``-m slow``).
"""

import gc
import re

import keras
import numpy as np
import pytest
from equivalence import assert_equivalent
from zoo import randomize_weights

import keras_biprune as kb

OUTPUT = "model output"

# Families whose only frozen group is the classifier (it reaches the model output).
FULL = frozenset({OUTPUT})

# family, model, input size, frozen reasons allowed, min share of producers
# (conv/dense layers) in prunable groups, smallest member of its family
_CASES = [
    ("VGG", "VGG16", 32, FULL, 0.9, True),
    ("VGG", "VGG19", 32, FULL, 0.9, False),
    ("ResNet", "ResNet50", 32, FULL, 0.9, True),
    ("ResNet", "ResNet101", 32, FULL, 0.9, False),
    ("ResNet", "ResNet152", 32, FULL, 0.9, False),
    ("ResNetV2", "ResNet50V2", 32, FULL, 0.9, True),
    ("ResNetV2", "ResNet101V2", 32, FULL, 0.9, False),
    ("ResNetV2", "ResNet152V2", 32, FULL, 0.9, False),
    ("MobileNet", "MobileNet", 32, FULL, 0.9, True),
    ("MobileNetV2", "MobileNetV2", 32, FULL, 0.9, True),
    ("MobileNetV3", "MobileNetV3Small", 32, FULL, 0.9, True),
    ("MobileNetV3", "MobileNetV3Large", 32, FULL, 0.9, False),
    ("DenseNet", "DenseNet121", 32, FULL, 0.9, True),
    ("DenseNet", "DenseNet169", 32, FULL, 0.9, False),
    ("DenseNet", "DenseNet201", 32, FULL, 0.9, False),
    ("EfficientNet", "EfficientNetB0", 32, FULL, 0.9, True),
    *[("EfficientNet", f"EfficientNetB{i}", 32, FULL, 0.9, False) for i in range(1, 8)],
    ("EfficientNetV2", "EfficientNetV2B0", 32, FULL, 0.9, True),
    *[("EfficientNetV2", f"EfficientNetV2{v}", 32, FULL, 0.9, False)
      for v in ("B1", "B2", "B3", "S", "M", "L")],
    ("Xception", "Xception", 71, FULL, 0.9, True),  # min_size 71
    ("InceptionV3", "InceptionV3", 75, FULL, 0.9, True),  # min_size 75
    ("InceptionResNetV2", "InceptionResNetV2", 75, FULL, 0.9, True),  # min_size 75
    ("NASNet", "NASNetMobile", 32, FULL, 0.9, True),
    ("NASNet", "NASNetLarge", 32, FULL, 0.9, False),
    # ConvNeXt: the residual streams prune through LayerNormalization (statistics
    # over the kept channels) and LayerScale.
    ("ConvNeXt", "ConvNeXtTiny", 32, FULL, 0.9, True),
    *[("ConvNeXt", f"ConvNeXt{v}", 32, FULL, 0.9, False)
      for v in ("Small", "Base", "Large", "XLarge")],
    # RegNet is a tf.keras (Keras 2) application; Keras 3 does not ship it.
    ("RegNet", "RegNetX002", 32, FULL, 0.9, True),
    ("RegNet", "RegNetY002", 32, FULL, 0.9, False),
]


def _param(family, name, size, allowed, min_share, smallest):
    marks = [] if smallest else [pytest.mark.slow]
    if not hasattr(keras.applications, name):
        marks.append(pytest.mark.skip(reason=f"keras {keras.__version__} has no "
                                             f"keras.applications.{name}"))
    return pytest.param(name, size, allowed, min_share, id=name, marks=marks)


CASES = [_param(*case) for case in _CASES]


@pytest.fixture(autouse=True)
def _free_models():
    yield
    keras.backend.clear_session()
    gc.collect()


def _build(name, size):
    model = getattr(keras.applications, name)(
        weights=None,
        input_shape=(size, size, 3),
        include_top=True,
        classes=10,
        classifier_activation=None,
    )
    return randomize_weights(model, seed=0)


def _reason_kinds(group):
    """The reasons a frozen group gives, without the ``layer/path: `` prefix."""
    return {re.sub(r"^[^:]*: ", "", r) for r in group.reason.split("; ")}


@pytest.mark.parametrize("name,size,allowed,min_share", CASES)
def test_application_prunes_equivalently(name, size, allowed, min_share):
    model = _build(name, size)
    graph = kb.trace(model)

    assert graph.prunable_groups, graph.summary()
    frozen = [g for g in graph.groups if not g.prunable]
    reasons = set().union(*(_reason_kinds(g) for g in frozen))
    assert reasons <= allowed, graph.summary()
    producers = sum(len(g.producers) for g in graph.groups)
    prunable = sum(len(g.producers) for g in graph.prunable_groups)
    assert prunable >= min_share * producers, graph.summary()

    plan = kb.PruningPlan.random(graph, ratio=0.5, seed=0)
    x = np.random.default_rng(0).uniform(0, 255, (2, size, size, 3)).astype("float32")
    slim = assert_equivalent(model, plan, x)
    assert slim.count_params() < model.count_params()
