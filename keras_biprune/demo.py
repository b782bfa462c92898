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

import keras_biprune as kb
from keras_biprune.datasets import DatasetUnavailableError, load_digits, load_fashion_mnist

PRESETS = {   # data: (train epochs, fine-tune epochs, search settings)
    "quick": (3, 1, {"generations": 2, "population_size": 4, "islands": 2}),
    "default": (4, 2, {"generations": 4, "population_size": 6, "islands": 2}),
    "strong": (15, 8, {"generations": 10, "population_size": 8, "islands": 3}),
}


def build_model(input_shape, classes=10, width=16):
    """A small residual CNN: stem, one residual block, a strided conv, pooling, dense."""
    inputs = keras.Input(input_shape, name="image")
    x = keras.layers.Conv2D(width, 3, padding="same", name="stem")(inputs)
    x = keras.layers.ReLU()(keras.layers.BatchNormalization(name="stem_bn")(x))
    y = keras.layers.Conv2D(width, 3, padding="same", name="block_conv1")(x)
    y = keras.layers.ReLU()(keras.layers.BatchNormalization(name="block_bn1")(y))
    y = keras.layers.Conv2D(width, 3, padding="same", name="block_conv2")(y)
    x = keras.layers.ReLU()(keras.layers.BatchNormalization(name="block_bn2")(y) + x)
    x = keras.layers.Conv2D(2 * width, 3, strides=2, padding="same", name="down")(x)
    x = keras.layers.ReLU()(keras.layers.BatchNormalization(name="down_bn")(x))
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(classes, name="logits")(x)
    return keras.Model(inputs, outputs, name="small_cnn")


def load(data):
    """``((x_train, y_train), (x_test, y_test)), name`` of ``"auto"``, ``"digits"``, ``"fashion_mnist"``."""
    if data in ("auto", "fashion_mnist"):
        try:
            return load_fashion_mnist(), "Fashion-MNIST"
        except DatasetUnavailableError:
            if data == "fashion_mnist":
                raise
    return load_digits(), "scikit-learn digits"


def main(argv=None):
    parser = argparse.ArgumentParser(prog="keras-biprune demo", description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="demo_output", help="export directory")
    parser.add_argument("--data", choices=("auto", "digits", "fashion_mnist"), default="auto")
    parser.add_argument("--preset", choices=tuple(PRESETS), default="default",
                        help="quick (a smoke run), default (< 10 min on 2 CPU cores), strong")
    parser.add_argument("--target-flops", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    epochs, finetune_epochs, search = PRESETS[args.preset]

    keras.utils.set_random_seed(args.seed)
    ((x_train, y_train), (x_test, y_test)), name = load(args.data)
    print(f"Data: {name}, {len(x_train)} training and {len(x_test)} test images.")
    model = build_model(x_train.shape[1:])
    model.compile(keras.optimizers.Adam(1e-3),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    started = time.perf_counter()
    model.fit(kb.datasets.as_dataset(x_train, y_train, 128, shuffle=True, seed=args.seed),
              epochs=epochs, shuffle=False, verbose=2)
    kb.training.recalibrate_batch_norm(model, x_train)
    print(f"Trained {model.name} for {epochs} epochs in {time.perf_counter() - started:.0f} s.")

    pruner = kb.BiLevelPruner(model, target_flops=args.target_flops, max_accuracy_drop=None,
                              search_kwargs=search, random_state=args.seed, verbose=1)
    started = time.perf_counter()
    pruner.fit(x_train, y_train, validation_data=(x_test, y_test), epochs=finetune_epochs,
               batch_size=128)
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
