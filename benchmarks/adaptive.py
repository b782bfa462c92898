"""Adaptive pruning-and-growing against training the unpruned net and the bi-level search.

On VGG-small and Fashion-MNIST (``--quick``: scikit-learn digits, tiny
settings, written to the temp directory), three runs from the same seed:

(a) the unpruned net trained ``--epochs`` E epochs;
(b) ``kb.AdaptivePruner`` from scratch for the same E epochs (one run:
    widths change at epoch boundaries);
(c) ``kb.BiLevelPruner(method="bilevel")`` on the trained net (a) at the
    FLOPs share the adaptive run arrived at, then ``--finetune-epochs``
    epochs of fine-tuning; its wall time counts (a)'s training too.

The trained net (a) is cached in ``benchmarks/_cache`` with its training
time; a rerun with the same settings reuses both.

Prints, for each, final test accuracy, MACs (``kb.cost``) and wall time;
writes ``<out>.json`` and ``<out>_widths.png`` (the adaptive widths over time).

    python -m benchmarks.adaptive [--quick] [--epochs 6] [--train-images 30000]
"""

import argparse
import json
import os
import subprocess
import sys
import time

from benchmarks._options import add_size_options, resolve_sizes

FULL = {"epochs": 6, "finetune_epochs": 2, "train_images": 30000, "batch_size": 128,
        "update_every": 50, "islands": 2, "population": 6, "generations": 4,
        "eval_size": 1024, "calibration_size": 256}
QUICK = {"epochs": 3, "finetune_epochs": 1, "train_images": 1400, "batch_size": 64,
         "update_every": 5, "islands": 1, "population": 4, "generations": 2,
         "eval_size": 128, "calibration_size": 64}


def _parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--grow-threshold", type=float,
                        help="AdaptivePruner's grow_threshold (default: the library's)")
    parser.add_argument("--prune-threshold", type=float,
                        help="AdaptivePruner's prune_threshold (default: the library's)")
    add_size_options(parser, FULL, QUICK, "adaptive")
    return resolve_sizes(parser.parse_args(argv), FULL, QUICK, "adaptive")


def main(argv=None):
    args = _parse(argv)
    command = " ".join(["python -m benchmarks.adaptive", *(sys.argv[1:] if argv is None else argv)])
    commit = subprocess.run(["git", "describe", "--always", "--dirty"], check=False,
                            capture_output=True, text=True).stdout.strip()

    import keras

    import keras_biprune as kb
    from benchmarks.models import CACHE_DIR, vgg_small
    from keras_biprune.datasets import as_dataset, load_digits, load_fashion_mnist

    (x_train, y_train), (x_test, y_test) = load_digits() if args.quick else load_fashion_mnist()
    x_train, y_train = x_train[:args.train_images], y_train[:args.train_images]
    test = as_dataset(x_test, y_test, batch_size=500)
    steps = args.epochs * -(-len(x_train) // args.batch_size)

    def fresh_model():
        keras.utils.set_random_seed(args.seed)
        model = vgg_small(x_train.shape[1:], 10)
        model.compile(keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(1e-3, steps)),
                      keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=["accuracy"])
        return model

    def accuracy(model):      # every model here is compiled with the accuracy metric
        return float(model.evaluate(test, verbose=0, return_dict=True)["accuracy"])

    rows = {}
    name = (f"adaptive_unpruned_{'digits' if args.quick else 'fmnist'}_{len(x_train)}_"
            f"{args.epochs}ep_{args.batch_size}_{args.seed}")
    cached = os.path.join(CACHE_DIR, name + ".keras")
    from_cache = os.path.exists(cached)
    if from_cache:      # (a) trained by an earlier run with the same settings
        unpruned = keras.saving.load_model(cached)
        with open(os.path.join(CACHE_DIR, name + ".json")) as f:
            train_seconds = json.load(f)["seconds"]
    else:
        tick = time.perf_counter()
        unpruned = fresh_model()
        unpruned.fit(as_dataset(x_train, y_train, args.batch_size, shuffle=True, seed=args.seed),
                     epochs=args.epochs, shuffle=False, verbose=2)
        train_seconds = time.perf_counter() - tick
        os.makedirs(CACHE_DIR, exist_ok=True)
        unpruned.save(cached)
        with open(os.path.join(CACHE_DIR, name + ".json"), "w") as f:
            json.dump({"seconds": train_seconds}, f)
    full = kb.cost(unpruned)
    rows["unpruned"] = {"test_accuracy": accuracy(unpruned), "macs": full.macs,
                        "params": full.params, "seconds": train_seconds, "epochs": args.epochs,
                        "cached": from_cache}
    print(f"unpruned: {rows['unpruned']}", flush=True)

    tick = time.perf_counter()
    rules = {name: value for name, value in (("grow_threshold", args.grow_threshold),
                                             ("prune_threshold", args.prune_threshold))
             if value is not None}
    adaptive = kb.AdaptivePruner(fresh_model(), from_scratch=True,
                                 update_every=args.update_every, random_state=args.seed, **rules)
    history = adaptive.fit(x_train, y_train, epochs=args.epochs, batch_size=args.batch_size,
                           verbose=2)
    seconds = time.perf_counter() - tick
    slim = kb.cost(adaptive.pruned_model_)
    flops = slim.macs / full.macs
    rows["adaptive"] = {"test_accuracy": accuracy(adaptive.pruned_model_), "macs": slim.macs,
                        "params": slim.params, "flops_kept": flops, "seconds": seconds,
                        "epochs": len(history.history["loss"]), "widths": adaptive.widths_}
    adaptive.summary()
    print(f"adaptive: {rows['adaptive']}", flush=True)

    tick = time.perf_counter()
    target = min(flops, 1.0)
    bilevel = kb.BiLevelPruner(
        unpruned, method="bilevel", target_flops=target, max_accuracy_drop=None,
        eval_size=args.eval_size, calibration_size=args.calibration_size,
        search_kwargs={"islands": args.islands, "population_size": args.population,
                       "generations": args.generations, "lower_population_size": 4,
                       "lower_generations": 1},
        compile_kwargs={"optimizer": keras.optimizers.Adam(1e-4),
                        "loss": keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                        "metrics": ["accuracy"]},
        random_state=args.seed, verbose=1)
    bilevel.fit(x_train, y_train, epochs=args.finetune_epochs, batch_size=args.batch_size,
                verbose=2)
    search_seconds = time.perf_counter() - tick
    pruned = kb.cost(bilevel.pruned_model_)
    rows["bilevel"] = {"test_accuracy": accuracy(bilevel.pruned_model_), "macs": pruned.macs,
                       "params": pruned.params, "flops_kept": pruned.macs / full.macs,
                       "target_flops": target, "seconds": train_seconds + search_seconds,
                       "search_and_finetune_seconds": search_seconds,
                       "epochs": args.epochs + args.finetune_epochs,
                       "widths": {g: w[1] for g, w in bilevel.report_["widths"].items()}}
    print(f"bilevel: {rows['bilevel']}", flush=True)

    data = "scikit-learn digits" if args.quick else "Fashion-MNIST"
    print(f"\nVGG-small on {data}: {len(x_train)} training images, {len(x_test)} test images, "
          f"{args.epochs} epochs")
    print(f"{'run':<34}{'test acc':>9}{'MACs':>13}{'FLOPs kept':>11}{'wall s':>8}")
    names = {"unpruned": f"(a) unpruned, {args.epochs} epochs",
             "adaptive": f"adaptive from scratch, {args.epochs} ep",
             "bilevel": f"(b) bi-level + {args.finetune_epochs} ep fine-tune"}
    for key, row in rows.items():
        print(f"{names[key]:<34}{row['test_accuracy']:>9.4f}{row['macs']:>13,}"
              f"{row['macs'] / full.macs:>11.3f}{row['seconds']:>8.0f}")

    result = {"command": command, "commit": commit, "settings": vars(args), "data": data,
              "rows": rows, "width_history": adaptive.width_history_,
              "adaptive_history": history.history,
              "adaptive_rules": {k: v for k, v in adaptive.get_params().items() if k != "model"}}
    with open(args.out + ".json", "w") as f:
        json.dump(result, f, indent=1, default=float)
    adaptive.plot_widths().savefig(args.out + "_widths.png", dpi=100)


if __name__ == "__main__":
    main()
