"""The demo: train a small CNN on offline data, prune it to half its FLOPs, export it.

Run with ``keras-biprune demo`` (or ``make demo``). It trains a small
residual CNN on Fashion-MNIST when its files are on this machine (Debian's
``dataset-fashion-mnist``), else on scikit-learn's digits; prunes it with
the bi-level search to half the FLOPs; fine-tunes it; prints the
before/after table (parameters, MACs, accuracy, measured CPU latency) and
writes the export directory (``.keras``, SavedModel, TFLite float and int8,
plan, report, plots).
"""

import argparse
import time

import keras
import numpy as np

import keras_biprune as kb
from keras_biprune.datasets import DatasetUnavailableError, load_digits, load_fashion_mnist

PRESETS = {   # (training steps, search settings); the pruner's default recovery, as many steps
    "quick": (100, {"generations": 2, "population_size": 4, "islands": 2}),
    "default": (700, {"generations": 4, "population_size": 6, "islands": 2}),
    "strong": (2000, {"generations": 10, "population_size": 8, "islands": 3}),
}
BATCH_SIZE = 64
FASHION_MNIST_IMAGES = 12000     # of the 60,000, so that the default preset stays in minutes


def build_model(input_shape, classes=10, width=32):
    """A small ResNet: a stem, a residual block, a strided conv to twice the width, a block.

    The stem strides by 2 on images of 16 pixels or more (Fashion-MNIST's 28).

    Wide enough (32 and 64 channels) that half its FLOPs are real work to
    save: at batch 64 its convolutions, not per-call overhead, set its speed.
    """
    inputs = keras.Input(input_shape, name="image")
    x = _conv_bn(inputs, width, "stem", strides=2 if min(input_shape[:2]) >= 16 else 1)
    x = _block(x, width, "block1")
    x = _conv_bn(x, 2 * width, "down", strides=2)
    x = _block(x, 2 * width, "block2")
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(classes, name="logits")(x)
    return keras.Model(inputs, outputs, name="small_resnet")


def _conv_bn(x, filters, name, strides=1, relu=True):
    x = keras.layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False,
                            name=name)(x)
    x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
    return keras.layers.ReLU()(x) if relu else x


def _block(x, filters, name):
    y = _conv_bn(x, filters, f"{name}_conv1")
    y = _conv_bn(y, filters, f"{name}_conv2", relu=False)
    return keras.layers.ReLU()(y + x)


def load(data, seed=0):
    """``((x_train, y_train), (x_test, y_test)), description`` of the ``--data`` choice.

    ``"auto"`` takes Fashion-MNIST when its files are on this machine (no
    download is tried) and scikit-learn's digits otherwise; the description
    says which and why. Fashion-MNIST is cut to `FASHION_MNIST_IMAGES`
    training images.
    """
    if data in ("auto", "fashion_mnist"):
        try:
            (x, y), test = load_fashion_mnist(download=data == "fashion_mnist")
        except DatasetUnavailableError:
            if data == "fashion_mnist":
                raise
            return load_digits(seed=seed), (
                "scikit-learn's digits (Fashion-MNIST's files are not on this machine: "
                "`apt-get install dataset-fashion-mnist`, or --data fashion_mnist to download)")
        take = np.random.default_rng(seed).permutation(len(x))[:FASHION_MNIST_IMAGES]
        return ((x[take], y[take]), test), (
            f"Fashion-MNIST ({FASHION_MNIST_IMAGES:,} of its {len(x):,} training images)")
    return load_digits(seed=seed), "scikit-learn's digits (--data digits)"


def main(argv=None):
    parser = argparse.ArgumentParser(prog="keras-biprune demo", description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="demo_output", help="export directory")
    parser.add_argument("--data", choices=("auto", "digits", "fashion_mnist"), default="auto",
                        help="auto: Fashion-MNIST when it is installed, else digits")
    parser.add_argument("--preset", choices=tuple(PRESETS), default="default",
                        help="quick (a smoke run), default (< 5 min on 2 CPU cores), strong")
    parser.add_argument("--target-flops", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    steps, search = PRESETS[args.preset]

    keras.utils.set_random_seed(args.seed)
    ((x_train, y_train), (x_test, y_test)), description = load(args.data, args.seed)
    print(f"Data: {description}; {len(x_train):,} training and {len(x_test):,} test images.")
    model = build_model(x_train.shape[1:])
    model.compile(keras.optimizers.Adam(1e-3),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    epochs = max(1, round(steps * BATCH_SIZE / len(x_train)))
    started = time.perf_counter()
    model.fit(kb.datasets.as_dataset(x_train, y_train, BATCH_SIZE, shuffle=True, seed=args.seed),
              epochs=epochs, shuffle=False, verbose=2)
    kb.training.recalibrate_batch_norm(model, x_train)
    print(f"Trained {model.name} for {epochs} epochs in {time.perf_counter() - started:.0f} s.")

    pruner = kb.BiLevelPruner(model, target_flops=args.target_flops, search_kwargs=search,
                              random_state=args.seed, verbose=1)
    started = time.perf_counter()
    pruner.fit(x_train, y_train, validation_data=(x_test, y_test), batch_size=BATCH_SIZE,
               epochs=epochs, verbose=2)
    print(f"Searched and fine-tuned in {time.perf_counter() - started:.0f} s.\n")
    pruner.summary()
    table(model, pruner.pruned_model_)
    paths = pruner.export(args.out, representative_data=x_train[:256], overwrite=True)
    print(f"\nExported to {args.out}: " + ", ".join(sorted(k for k in paths if k != "figures"))
          + ", " + ", ".join(f"{k}.png" for k in paths["figures"]))
    return pruner


def table(original, pruned):
    """Prints measured CPU latency of both models (ms, batch 1 and 64)."""
    print(f"\n{'CPU latency (ms)':22}{'original':>14}{'pruned':>14}{'ratio':>8}")
    for batch in (1, 64):
        before = kb.evaluate.latency(original, batch_size=batch)
        after = kb.evaluate.latency(pruned, batch_size=batch)
        print(f"{'batch ' + str(batch):22}{before:>14.2f}{after:>14.2f}{after / before:>8.2f}")


if __name__ == "__main__":
    main()
