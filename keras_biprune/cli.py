"""The ``keras-biprune`` command: prune a saved model, show a report, run the demo.

Examples::

    keras-biprune prune model.keras --data fashion_mnist --target-flops 0.5 --epochs 3 --out pruned
    keras-biprune report pruned
    keras-biprune demo --out demo_output
"""

import argparse
import json
import os
import sys

import numpy as np

DATA = ("fashion_mnist", "digits", "cifar10", "cifar100")


def load_data(spec):
    """``((x_train, y_train), (x_test, y_test))`` for a ``--data`` value.

    ``npz:PATH`` reads a NumPy archive with arrays ``x_train``, ``y_train``,
    ``x_test`` and ``y_test``.
    """
    from keras_biprune import datasets

    if spec.startswith("npz:"):
        path = spec[4:]
        with np.load(path) as archive:
            missing = {"x_train", "y_train", "x_test", "y_test"} - set(archive.files)
            if missing:
                raise SystemExit(f"error: {path} lacks arrays {sorted(missing)}; it has "
                                 f"{sorted(archive.files)}. Save it with np.savez(path, "
                                 "x_train=..., y_train=..., x_test=..., y_test=...).")
            return (archive["x_train"], archive["y_train"]), (archive["x_test"], archive["y_test"])
    loaders = {"fashion_mnist": datasets.load_fashion_mnist, "digits": datasets.load_digits,
               "cifar10": datasets.load_cifar10, "cifar100": datasets.load_cifar100}
    if spec not in loaders:
        raise SystemExit(f"error: --data must be one of {DATA} or npz:PATH. Received: {spec!r}.")
    return loaders[spec]()


def prune(args):
    import keras

    import keras_biprune as kb

    if os.path.isdir(args.out) and os.listdir(args.out) and not args.overwrite:
        raise SystemExit(f"error: {args.out} is not empty; pass --overwrite or another --out.")
    model = keras.saving.load_model(args.model)
    (x_train, y_train), (x_test, y_test) = load_data(args.data)
    search = {"generations": args.generations, "population_size": args.population}
    if args.max_evaluations:
        search["max_evaluations"] = args.max_evaluations
    pruner = kb.BiLevelPruner(
        model, method=args.method, target_flops=args.target_flops,
        max_accuracy_drop=args.max_accuracy_drop, channel_granularity=args.granularity,
        round_to=args.round_to,
        criteria=args.criteria, search_kwargs=search, random_state=args.seed,
        verbose=args.verbose)
    pruner.fit(x_train, y_train, validation_data=(x_test, y_test), epochs=args.epochs,
               batch_size=args.batch_size, distill=args.distill)
    pruner.summary()
    pruner.export(args.out, representative_data=x_train[:256], overwrite=args.overwrite)
    print(f"Exported to {args.out}")


def report(args):
    path = os.path.join(args.directory, "report.json")
    if not os.path.exists(path):
        raise SystemExit(f"error: no report.json in {args.directory}; give the --out directory "
                         "of `keras-biprune prune` or `demo`.")
    with open(path) as f:
        r = json.load(f)
    print(f"{'':22}{'original':>14}{'pruned':>14}{'kept':>8}")
    for name, key, pruned in (("parameters", "params", "pruned"), ("MACs", "macs", "pruned"),
                              ("MACs (non-zero)", "macs", "pruned_sparse")):
        before, after = r[key]["original"], r[key][pruned]
        print(f"{name:22}{before:>14,}{after:>14,}{after / before:>8.1%}")
    validation = r.get("validation", {})
    for name, before in validation.get("original", {}).items():
        print(f"{'val ' + name:22}{before:>14.4f}{validation['pruned'][name]:>14.4f}")
    search = r.get("search", {})
    if search:
        print(f"search: {search['method']}, {search['evaluations']} plans scored in "
              f"{search['seconds']:.0f} s")
    print("widths: " + ", ".join(f"{g} {a}->{b}" for g, (a, b) in r["widths"].items()))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="keras-biprune",
                                     description="Structural pruning of Keras models by "
                                                 "evolutionary search.")
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("prune", help="prune a saved .keras model and export it")
    p.add_argument("model", help="a compiled model saved as .keras")
    p.add_argument("--data", required=True, help=f"one of {DATA} or npz:PATH")
    p.add_argument("--target-flops", type=float, default=0.5)
    p.add_argument("--method", choices=("bilevel", "nsga2"), default="bilevel")
    p.add_argument("--max-accuracy-drop", type=float, default=None)
    p.add_argument("--granularity", choices=("layer", "filter"), default="layer")
    p.add_argument("--round-to", type=int, default=8,
                   help="kept widths are multiples of this (8: vectorizes on CPUs; 1: any width)")
    p.add_argument("--criteria", default="l1")
    p.add_argument("--generations", type=int, default=6)
    p.add_argument("--population", type=int, default=8)
    p.add_argument("--max-evaluations", type=int, default=None)
    p.add_argument("--epochs", type=int, default=3, help="fine-tuning epochs")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--distill", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--verbose", type=int, default=1)
    p.add_argument("--out", required=True)
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(run=prune)

    r = commands.add_parser("report", help="print the report of an export directory")
    r.add_argument("directory")
    r.set_defaults(run=report)

    d = commands.add_parser("demo", help="train, prune and export a small CNN on offline data",
                            add_help=False)
    d.set_defaults(run=None)

    args, rest = parser.parse_known_args(argv)
    if args.command == "demo":
        from keras_biprune import demo

        demo.main(rest)
        return 0
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    args.run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
