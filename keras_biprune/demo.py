"""End-to-end demo: train a small CNN offline, trace it, prune it, fine-tune it.

Run with ``python -m keras_biprune.demo`` (or ``make demo``). It trains a
residual CNN on scikit-learn's digits, shows the channel groups, removes half
of every prunable group's channels by layer surgery, checks the slim model
against the masked reference, fine-tunes it and saves it as ``.keras``.
"""

import argparse
import os
import time

import keras
import numpy as np

import keras_biprune as kb
from keras_biprune.datasets import load_digits


def build_model():
    inputs = keras.Input((8, 8, 1), name="image")
    x = keras.layers.Conv2D(32, 3, padding="same", name="stem")(inputs)
    x = keras.layers.ReLU()(keras.layers.BatchNormalization()(x))
    y = keras.layers.Conv2D(32, 3, padding="same", name="block_conv1")(x)
    y = keras.layers.ReLU()(keras.layers.BatchNormalization()(y))
    y = keras.layers.Conv2D(32, 3, padding="same", name="block_conv2")(y)
    x = keras.layers.ReLU()(keras.layers.BatchNormalization()(y) + x)
    x = keras.layers.Conv2D(64, 3, strides=2, padding="same", name="down")(x)
    x = keras.layers.ReLU()(keras.layers.BatchNormalization()(x))
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(10, name="logits")(x), name="digits_cnn")


def compile_model(model):
    model.compile(
        keras.optimizers.Adam(3e-3),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--finetune-epochs", type=int, default=5)
    parser.add_argument("--ratio", type=float, default=0.5)
    parser.add_argument("--out", default="demo_output")
    args = parser.parse_args(argv)

    keras.utils.set_random_seed(0)
    (x_train, y_train), (x_test, y_test) = load_digits()
    model = compile_model(build_model())
    print(f"Training {model.name} on {len(x_train)} digits for {args.epochs} epochs ...")
    model.fit(x_train, y_train, epochs=args.epochs, batch_size=32, verbose=0)
    base_acc = model.evaluate(x_test, y_test, verbose=0)[1]

    start = time.perf_counter()
    graph = kb.trace(model)
    plan = kb.PruningPlan.random(graph, ratio=args.ratio, seed=0)
    slim = kb.apply_plan(model, plan)
    surgery_s = time.perf_counter() - start
    print(graph.summary())

    reference = kb.masked_model(model, plan)
    gap = float(np.max(np.abs(np.asarray(slim(x_test)) - np.asarray(reference(x_test)))))
    compile_model(slim)
    pruned_acc = slim.evaluate(x_test, y_test, verbose=0)[1]
    slim.fit(x_train, y_train, epochs=args.finetune_epochs, batch_size=32, verbose=0)
    tuned_acc = slim.evaluate(x_test, y_test, verbose=0)[1]

    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "slim.keras")
    slim.save(path)
    with open(os.path.join(args.out, "plan.json"), "w") as f:
        f.write(plan.to_json())

    print(f"\nparams            {model.count_params():>8} -> {slim.count_params()}")
    print(f"test accuracy     {base_acc:.4f} (original)")
    print(f"                  {pruned_acc:.4f} (random {args.ratio:.0%} channels removed)")
    print(f"                  {tuned_acc:.4f} (after {args.finetune_epochs} fine-tune epochs)")
    print(f"slim vs masked reference: max |diff| = {gap:.2e}")
    print(f"trace + surgery: {surgery_s:.2f} s; saved {path} and plan.json")
    print("(Random channels: the evolutionary searches that choose them are coming.)")


if __name__ == "__main__":
    main()
