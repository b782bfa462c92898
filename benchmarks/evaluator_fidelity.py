"""Does the evaluator's score predict accuracy after fine-tuning?

Scores random plans of a trained CNN on Fashion-MNIST with the evaluator
(with and without adaptive batch norm), fine-tunes each pruned model briefly,
and prints the Spearman rank correlation of each score with the accuracy
after fine-tuning, measured on test images the evaluator never saw.

    python -m benchmarks.evaluator_fidelity [--model vgg_small] [--plans 20]
"""

import argparse
import json
import time

import numpy as np

EVAL_IMAGES = 1024
CALIBRATION_IMAGES = 256
HELD_OUT = slice(5000, 7000)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="vgg_small")
    parser.add_argument("--plans", type=int, default=20)
    parser.add_argument("--finetune-images", type=int, default=8192)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--out", default="docs/benchmarks/evaluator_fidelity")
    args = parser.parse_args(argv)

    import keras
    from scipy.stats import spearmanr

    import keras_biprune as kb
    from benchmarks.models import train_or_load
    from keras_biprune.datasets import as_dataset, load_fashion_mnist

    model, info = train_or_load(args.model, verbose=0)
    (x_train, y_train), (x_test, y_test) = load_fashion_mnist()
    evaluation = (x_test[:EVAL_IMAGES + CALIBRATION_IMAGES], y_test[:EVAL_IMAGES + CALIBRATION_IMAGES])
    settings = {"eval_size": EVAL_IMAGES, "calibration_size": CALIBRATION_IMAGES, "batch_size": 128,
                    "max_parallel": 8}
    with_bn = kb.Evaluator(model, evaluation, adaptive_bn=True, **settings)
    without_bn = kb.Evaluator(model, evaluation, adaptive_bn=False, **settings)
    graph = with_bn.graph
    ratios = np.linspace(0.3, 0.7, args.plans)
    plans = [kb.PruningPlan.random(graph, float(r), seed=i) for i, r in enumerate(ratios)]
    start = time.perf_counter()
    score_bn = with_bn.evaluate(plans)
    score_plain = without_bn.evaluate(plans)
    scoring_seconds = time.perf_counter() - start

    rng = np.random.default_rng(0)
    pick = rng.choice(len(x_train), args.finetune_images, replace=False)
    train = as_dataset(x_train[pick], y_train[pick], batch_size=128, shuffle=True, seed=0)
    tuned = []
    for i, plan in enumerate(plans):
        slim = kb.apply_plan(model, plan)
        slim.compile(keras.optimizers.Adam(1e-4), "sparse_categorical_crossentropy",
                     metrics=["accuracy"])
        slim.fit(train, epochs=args.epochs, verbose=0, shuffle=False)
        _recalibrate_batch_norm(slim, x_train[pick[:2048]])
        accuracy = slim.evaluate(x_test[HELD_OUT], y_test[HELD_OUT], batch_size=256,
                                 verbose=0, return_dict=True)["accuracy"]
        tuned.append(accuracy)
        print(f"plan {i:2d} ratio {ratios[i]:.2f}: score adaptive-BN {score_bn[i]:.4f}  "
              f"plain {score_plain[i]:.4f}  fine-tuned {accuracy:.4f}", flush=True)

    rho_bn = spearmanr(score_bn, tuned).statistic
    rho_plain = spearmanr(score_plain, tuned).statistic
    print(f"{args.model} (test accuracy {info['test_accuracy']:.4f}), {args.plans} plans, "
          f"fine-tune {args.epochs} epoch(s) on {args.finetune_images} images")
    print(f"Spearman(adaptive-BN score, fine-tuned accuracy) = {rho_bn:.3f}")
    print(f"Spearman(plain score, fine-tuned accuracy)       = {rho_plain:.3f}")
    print(f"scoring {2 * args.plans} candidates took {scoring_seconds:.1f} s")

    result = {"model": args.model, "plans": args.plans, "ratios": ratios.tolist(),
              "score_adaptive_bn": score_bn.tolist(), "score_plain": score_plain.tolist(),
              "finetuned_accuracy": tuned, "spearman_adaptive_bn": rho_bn,
              "spearman_plain": rho_plain}
    with open(args.out + ".json", "w") as f:
        json.dump(result, f, indent=1)
    _plot(result, args.out + ".png")


def _recalibrate_batch_norm(model, x):
    """Sets every BatchNormalization's moving statistics to those of ``x``."""
    import keras

    layers = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    momenta = [layer.momentum for layer in layers]
    for layer in layers:
        layer.momentum = 0.0
    model(x, training=True)
    for layer, momentum in zip(layers, momenta):
        layer.momentum = momentum


def _plot(result, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(9, 4), sharey=True)
    for axis, key, title in ((axes[0], "score_plain", "plain"),
                             (axes[1], "score_adaptive_bn", "adaptive BN")):
        axis.scatter(result[key], result["finetuned_accuracy"])
        rho = result["spearman_plain" if key == "score_plain" else "spearman_adaptive_bn"]
        axis.set_title(f"{title}: Spearman {rho:.2f}")
        axis.set_xlabel("evaluator accuracy before fine-tuning")
    axes[0].set_ylabel("accuracy after fine-tuning")
    figure.tight_layout()
    figure.savefig(path, dpi=100)


if __name__ == "__main__":
    main()
