"""The demo: train a small CNN on offline data, prune it to half its FLOPs, export it.

Run with ``keras-biprune demo`` (or ``make demo``). It trains a small
residual CNN on Fashion-MNIST when its files are on this machine (Debian's
``dataset-fashion-mnist``), else on scikit-learn's digits; prunes it with
the bi-level search to half the FLOPs and at most `TARGET_LATENCY` of its
TensorFlow latency at the demo's batch size (fewer FLOPs alone do not make a
model that much faster: the latency budget picks the widths that do);
fine-tunes it; prints the
before/after table (parameters, MACs, accuracy, measured CPU latency) and
writes the export directory (``.keras``, SavedModel, TFLite float and int8,
plan, report, plots).
"""

import sys
import time

import keras
import numpy as np

import keras_biprune as kb
from keras_biprune import _defaults
from keras_biprune.datasets import DatasetUnavailableError, load_digits, load_fashion_mnist
from keras_biprune.evaluate.runtimes import forward_call, paired

PRESETS = _defaults.DEMO_PRESETS
BATCH_SIZE = 64
FASHION_MNIST_IMAGES = 12000     # of the 60,000, so that the default preset stays in minutes
TARGET_LATENCY = _defaults.DEMO_TARGET_LATENCY     # of the TensorFlow latency at BATCH_SIZE


def build_model(input_shape, classes=10, width=48):
    """A small ResNet: a stem, a residual block, a strided conv to twice the width, a block.

    The stem strides by 2 on images of 16 pixels or more (Fashion-MNIST's 28).

    Wide enough (48 and 96 channels) that half its FLOPs are real work to
    save: at batch 64 its convolutions, not per-op overhead, set its speed.
    (At 32 and 64 channels, TensorFlow on an AVX-512 CPU, which computes 16
    channels at once, ran the best plans at half the FLOPs at 0.69-0.74 of
    the latency; at 48 and 96, 0.60-0.70.)
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


def run(out="demo_output", data="auto", preset="default", target_flops=0.5,
        target_latency=TARGET_LATENCY, seed=0):
    """Trains the demo's model, prunes it to its budgets, prints the tables, exports.

    Args:
        out: export directory (an earlier demo's files are replaced).
        data: ``"auto"``, ``"digits"`` or ``"fashion_mnist"`` (see `load`).
        preset: a key of `PRESETS`: training steps and search settings.
        target_flops: share of the FLOPs to keep.
        target_latency: share of the TensorFlow latency at `BATCH_SIZE` to keep
            (predicted by a `keras_biprune.evaluate.LatencyModel` measured on
            this machine), or None for the FLOPs budget alone.
        seed: seed of the data split, the training, the search.

    Returns:
        The fitted `keras_biprune.BiLevelPruner`.
    """
    steps, search = PRESETS[preset]
    keras.utils.set_random_seed(seed)
    ((x_train, y_train), (x_test, y_test)), description = load(data, seed)
    print(f"Data: {description}; {len(x_train):,} training and {len(x_test):,} test images.")
    epochs = max(1, round(steps * BATCH_SIZE / len(x_train)))
    started = time.perf_counter()
    model = train(x_train, y_train, epochs, seed)
    print(f"Trained {model.name} for {epochs} epochs in {time.perf_counter() - started:.0f} s.")

    # The demo's convs all run at 14x14 or less with 48+ channels, the shape `measure_lanes`
    # times: its lanes hold for them (16 for TensorFlow on AVX-512; the default 4 predicted the
    # demo's plans 0.68 where they measured 0.80).
    runtime = "tf" if target_latency is None else kb.evaluate.LatencyModel.build(
        model, "tf", BATCH_SIZE, lanes="auto")
    pruner = kb.BiLevelPruner(model, target_flops=target_flops, target_latency=target_latency,
                              runtime=runtime, latency_batch_size=BATCH_SIZE,
                              search_kwargs=search, random_state=seed, verbose=1)
    pruner.fit(x_train, y_train, validation_data=(x_test, y_test), batch_size=BATCH_SIZE,
               epochs=epochs, verbose=2)
    print()
    pruner.summary()
    table(model, pruner.pruned_model_)
    paths = pruner.export(out, representative_data=x_train[:256], overwrite=True)
    print(f"\nExported to {out}: " + ", ".join(sorted(k for k in paths if k != "figures"))
          + ", " + ", ".join(f"{k}.png" for k in paths["figures"]))
    return pruner


def train(x, y, epochs, seed=0, verbose=2):
    """The demo's model (`build_model`), compiled and trained on ``(x, y)`` for ``epochs``."""
    model = build_model(x.shape[1:])
    model.compile(keras.optimizers.Adam(1e-3),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.fit(kb.datasets.as_dataset(x, y, BATCH_SIZE, shuffle=True, seed=seed),
              epochs=epochs, shuffle=False, verbose=verbose)
    kb.training.recalibrate_batch_norm(model, x)
    return model


def table(original, pruned):
    """Prints the TensorFlow latency of both models (ms, batch 1 and `BATCH_SIZE`).

    The two models are timed call by call in turn
    (`keras_biprune.evaluate.runtimes.paired`), so their ratio holds on a busy
    machine.
    """
    print(f"\n{'CPU latency (ms)':22}{'original':>14}{'pruned':>14}{'ratio':>8}")
    for batch in (1, BATCH_SIZE):
        before, after = paired([forward_call(m, "tf", batch) for m in (original, pruned)],
                               rounds=5)
        print(f"{'batch ' + str(batch):22}{before:>14.2f}{after:>14.2f}{after / before:>8.2f}")


def main(argv=None):
    """``keras-biprune demo`` with ``argv`` (default: the command line); its exit status."""
    from keras_biprune import cli

    return cli.main(["demo", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
