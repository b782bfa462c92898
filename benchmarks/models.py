"""Benchmark models — VGG-small, ResNet-20, MobileNetV2-small — trained once and cached.

Run from the repository root:

```
python -m benchmarks.models --train vgg_small resnet20 mobilenetv2 [--dataset digits]
```

It trains each model that is not cached yet (or was cached after a different
number of epochs), saves ``benchmarks/_cache/<name>.keras`` with a
``<name>.json`` record (epochs, test accuracy, wall time), prints those
figures, and checks that the model traces into prunable channel groups and
survives a random 50 % pruning plan.
"""

import argparse
import json
import os
import time

import keras
from keras import layers

import keras_biprune as kb
from keras_biprune.datasets import (
    as_dataset,
    load_cifar10,
    load_cifar100,
    load_digits,
    load_fashion_mnist,
)

CACHE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_cache")


def _conv_bn(x, filters, name, kernel_size=3, strides=1):
    x = layers.Conv2D(filters, kernel_size, strides=strides, padding="same", use_bias=False,
                      kernel_initializer="he_normal", name=f"{name}_conv")(x)
    return layers.BatchNormalization(name=f"{name}_bn")(x)


def vgg_small(input_shape=(28, 28, 1), classes=10):
    """A small VGG: three stages of two 3×3 conv–BN–ReLU (32, 64, 128 filters) and a max-pool.

    The head is ``Flatten`` → ``Dense(128)`` → ReLU → ``Dense(classes)``
    (logits), so pruning the last stage exercises the Flatten index map.

    Args:
        input_shape: shape of one image, channels last.
        classes: number of output logits.

    Returns:
        An uncompiled functional ``keras.Model`` named ``"vgg_small"``.

    Example:

    ```python
    from benchmarks.models import vgg_small
    model = vgg_small()          # 28×28×1 → 10 logits
    ```
    """
    inputs = keras.Input(input_shape, name="image")
    x = inputs
    for stage, filters in enumerate((32, 64, 128), start=1):
        for i in (1, 2):
            x = layers.ReLU(name=f"block{stage}_{i}_relu")(_conv_bn(x, filters, f"block{stage}_{i}"))
        x = layers.MaxPooling2D(name=f"block{stage}_pool")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(128, activation="relu", name="fc")(x)
    return keras.Model(inputs, layers.Dense(classes, name="logits")(x), name="vgg_small")


def resnet20(input_shape=(28, 28, 1), classes=10):
    """He et al.'s CIFAR ResNet-20: a 3×3 stem and 3 stages × 3 basic blocks (16, 32, 64 filters).

    Each stage after the first halves the resolution in its first block, whose
    shortcut is a 1×1 conv with BN (option B), so every stage's residual
    ``Add``\\ s form one channel group that can be pruned as a whole.

    Args:
        input_shape: shape of one image, channels last.
        classes: number of output logits.

    Returns:
        An uncompiled functional ``keras.Model`` named ``"resnet20"``.

    Example:

    ```python
    from benchmarks.models import resnet20
    model = resnet20(input_shape=(32, 32, 3))    # CIFAR-10 shape
    ```
    """
    inputs = keras.Input(input_shape, name="image")
    x = layers.ReLU(name="stem_relu")(_conv_bn(inputs, 16, "stem"))
    for stage, filters in enumerate((16, 32, 64), start=1):
        for block in (1, 2, 3):
            name = f"stage{stage}_block{block}"
            strides = 2 if stage > 1 and block == 1 else 1
            y = layers.ReLU(name=f"{name}_relu1")(_conv_bn(x, filters, f"{name}_1", strides=strides))
            y = _conv_bn(y, filters, f"{name}_2")
            if strides != 1:
                x = _conv_bn(x, filters, f"{name}_shortcut", kernel_size=1, strides=strides)
            x = layers.ReLU(name=f"{name}_relu2")(layers.Add(name=f"{name}_add")([x, y]))
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    return keras.Model(inputs, layers.Dense(classes, name="logits")(x), name="resnet20")


def mobilenetv2(input_shape=(28, 28, 1), classes=10):
    """A small MobileNetV2: inverted residual blocks (1×1 expand, 3×3 depthwise, 1×1 project).

    Stem 3×3 conv (16), then blocks of (expansion t, width c, repeats n,
    stride s): (1, 16, 1, 1), (4, 24, 2, 2), (4, 32, 2, 2), (4, 64, 2, 1);
    a block adds its input when the stride is 1 and the width unchanged.
    Then a 1×1 conv (128), global average pooling and ``Dense(classes)``.
    ReLU6 everywhere but after the projections (linear bottlenecks). The
    depthwise convs tie each expansion's input and output channels, and the
    residual adds tie a stage's bottlenecks into one group.

    Args:
        input_shape: shape of one image, channels last.
        classes: number of output logits.

    Returns:
        An uncompiled functional ``keras.Model`` named ``"mobilenetv2"``.

    Example:

    ```python
    from benchmarks.models import mobilenetv2
    model = mobilenetv2()        # 28×28×1 → 10 logits
    ```
    """
    inputs = keras.Input(input_shape, name="image")
    x = layers.ReLU(6.0, name="stem_relu")(_conv_bn(inputs, 16, "stem"))
    width = 16
    for stage, (t, c, n, s) in enumerate(((1, 16, 1, 1), (4, 24, 2, 2), (4, 32, 2, 2),
                                          (4, 64, 2, 1)), start=1):
        for block in range(1, n + 1):
            name = f"stage{stage}_block{block}"
            strides = s if block == 1 else 1
            y = x
            if t != 1:
                y = layers.ReLU(6.0, name=f"{name}_expand_relu")(
                    _conv_bn(y, width * t, f"{name}_expand", kernel_size=1))
            y = layers.DepthwiseConv2D(3, strides=strides, padding="same", use_bias=False,
                                       name=f"{name}_dw_conv")(y)
            y = layers.BatchNormalization(name=f"{name}_dw_bn")(y)
            y = layers.ReLU(6.0, name=f"{name}_dw_relu")(y)
            y = _conv_bn(y, c, f"{name}_project", kernel_size=1)
            x = layers.Add(name=f"{name}_add")([x, y]) if strides == 1 and width == c else y
            width = c
    x = layers.ReLU(6.0, name="head_relu")(_conv_bn(x, 128, "head", kernel_size=1))
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    return keras.Model(inputs, layers.Dense(classes, name="logits")(x), name="mobilenetv2")


MODELS = {"vgg_small": vgg_small, "resnet20": resnet20, "mobilenetv2": mobilenetv2}
DEFAULT_EPOCHS = {"vgg_small": 3, "resnet20": 3, "mobilenetv2": 3}
LOADERS = {"fashion_mnist": load_fashion_mnist, "digits": load_digits,
           "cifar10": load_cifar10, "cifar100": load_cifar100}
DATASETS = tuple(LOADERS)
# digits: 1,437 images, 12 steps an epoch, and BN statistics need a few hundred;
# CIFAR: the usual short schedule of these small networks.
EPOCHS = {"digits": 30, "cifar10": 30, "cifar100": 30}


def default_epochs(name, dataset="fashion_mnist"):
    """Training epochs of a benchmark model on a data set."""
    return DEFAULT_EPOCHS[name] if dataset == "fashion_mnist" else EPOCHS[dataset]


def load_data(dataset="fashion_mnist"):
    """``((x_train, y_train), (x_test, y_test))`` of a benchmark data set.

    ``"fashion_mnist"`` (60,000 / 10,000 images, 28×28×1) from the Debian
    package and ``"digits"`` (scikit-learn's 1,437 / 360 images, 8×8×1) are
    offline. ``"cifar10"`` and ``"cifar100"`` (50,000 / 10,000 images,
    32×32×3) come through ``keras.datasets``: from ``~/.keras/datasets`` when
    they are there, else downloaded.
    """
    if dataset not in DATASETS:
        raise ValueError(f"Expected a dataset in {DATASETS}. Received: dataset={dataset!r}")
    return LOADERS[dataset]()


def train_or_load(name, epochs=None, cache_dir=CACHE_DIR, batch_size=128, seed=0, verbose=1,
                  dataset="fashion_mnist"):
    """Returns a benchmark model trained on Fashion-MNIST or digits, trained only if not cached.

    Training uses Adam with a cosine-decayed learning rate (1e-3 → 0) and feeds
    ``fit`` through :func:`keras_biprune.datasets.as_dataset`. The trained
    model is saved as ``<cache_dir>/<name>.keras`` next to ``<name>.json``, the
    record returned as ``info``.

    Args:
        name: a key of ``MODELS`` (``"vgg_small"``, ``"resnet20"``, ``"mobilenetv2"``).
        epochs: training epochs. ``None`` takes any cached model, else trains
            `default_epochs`; a number retrains when the cached model
            had a different number.
        cache_dir: directory of the cached models.
        batch_size: training batch size.
        seed: seed of the weights and of the shuffle (``keras.utils.set_random_seed``).
        verbose: ``fit``'s verbosity.
        dataset: a key of ``LOADERS`` (see `load_data`); a model of any
            but ``"fashion_mnist"`` is cached as ``<name>_<dataset>``.

    Returns:
        ``(model, info)``: the compiled model and a dict with ``name``,
        ``epochs``, ``batch_size``, ``seed``, ``params``, ``test_accuracy``,
        ``train_seconds`` and ``cached`` (whether it came from the cache).

    Example:

    ```python
    from benchmarks.models import train_or_load
    model, info = train_or_load("resnet20")
    print(info["test_accuracy"])
    ```
    """
    if name not in MODELS:
        raise ValueError(f"Expected one of {sorted(MODELS)}. Received: name={name!r}")
    stem = name if dataset == "fashion_mnist" else f"{name}_{dataset}"
    model_path = os.path.join(cache_dir, f"{stem}.keras")
    info_path = os.path.join(cache_dir, f"{stem}.json")
    if os.path.exists(model_path) and os.path.exists(info_path):
        with open(info_path) as f:
            info = json.load(f)
        if epochs is None or epochs == info["epochs"]:
            return keras.saving.load_model(model_path), {**info, "cached": True}
    epochs = default_epochs(name, dataset) if epochs is None else epochs

    (x_train, y_train), (x_test, y_test) = load_data(dataset)
    keras.utils.set_random_seed(seed)
    model = MODELS[name](x_train.shape[1:], int(y_train.max()) + 1)
    steps = epochs * -(-len(x_train) // batch_size)
    model.compile(keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(1e-3, steps)),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    start = time.perf_counter()
    model.fit(as_dataset(x_train, y_train, batch_size, shuffle=True, seed=seed),
              epochs=epochs, shuffle=False, verbose=verbose)
    train_seconds = time.perf_counter() - start
    _, accuracy = model.evaluate(as_dataset(x_test, y_test, 500), verbose=0)

    info = {"name": name, "dataset": dataset, "epochs": epochs, "batch_size": batch_size, "seed": seed,
            "params": model.count_params(), "test_accuracy": round(float(accuracy), 4),
            "train_seconds": round(train_seconds, 1)}
    os.makedirs(cache_dir, exist_ok=True)
    model.save(model_path)
    with open(info_path, "w") as f:
        json.dump(info, f, indent=2)
    return model, {**info, "cached": False}


def main(argv=None):
    parser = argparse.ArgumentParser(description="Train (or load) the benchmark models.")
    parser.add_argument("--train", nargs="+", choices=sorted(MODELS), default=sorted(MODELS),
                        metavar="NAME", help=f"models to train or load: {sorted(MODELS)}")
    parser.add_argument("--epochs", type=int, default=None,
                        help="training epochs (default: the cached model, else "
                             f"{DEFAULT_EPOCHS})")
    parser.add_argument("--cache-dir", default=CACHE_DIR)
    parser.add_argument("--dataset", choices=DATASETS, default="fashion_mnist")
    parser.add_argument("--verbose", type=int, default=2, help="fit verbosity (0, 1 or 2)")
    args = parser.parse_args(argv)

    for name in args.train:
        model, info = train_or_load(name, args.epochs, args.cache_dir, verbose=args.verbose,
                                    dataset=args.dataset)
        graph = kb.trace(model)
        slim = kb.apply_plan(model, kb.PruningPlan.random(graph, 0.5, seed=0))
        source = "cached" if info["cached"] else "trained"
        print(f"{name:<10} {source}: {info['epochs']} epochs in {info['train_seconds']:.0f} s, "
              f"test accuracy {info['test_accuracy']:.4f}, {info['params']} params; "
              f"{len(graph.prunable_groups)}/{len(graph.groups)} groups prunable, "
              f"random 50 % plan -> {slim.count_params()} params")


if __name__ == "__main__":
    main()
