"""The ``keras-biprune`` command: prune a saved model, show a report, run the demo.

Examples::

    keras-biprune prune model.keras --data fashion_mnist --target-flops 0.5 --epochs 3 --out pruned
    keras-biprune report pruned
    keras-biprune demo --out demo_output

Everything a command can check without Keras is checked first (values,
paths, the model file's format, the data archive's arrays): ``--help`` and
a wrong argument answer at once, without importing TensorFlow. A wrong
argument, or an error of the library (`keras_biprune.errors`), prints one
``error: ...`` line and exits with status 2; ``--debug`` shows the
traceback (and TensorFlow's own start-up logs) instead.
"""

import argparse
import json
import logging
import os
import sys
import zipfile

from keras_biprune import _defaults
from keras_biprune.errors import BiPruneError

DATA = ("fashion_mnist", "digits", "cifar10", "cifar100")
NPZ_ARRAYS = ("x_train", "y_train", "x_test", "y_test")
BATCH_SIZE = 128                    # the command's own: BiLevelPruner.fit passes it to model.fit
DISTILL = {"auto": "auto", "on": True, "off": False}

logger = logging.getLogger("keras_biprune.cli")     # not __name__: "__main__" under -m


class UsageError(Exception):
    """A wrong argument, found before any work started."""


# ------------------------------------------------------------------ checks
def _number(kind, low=None, high=None, low_open=False, none=False):
    """An argparse ``type`` that parses ``kind`` and checks its range in one message."""
    bounds = f"{'(' if low_open else '['}{low}, {high}]" if high is not None else (
        f"> {low}" if low_open else f">= {low}")

    def parse(text):
        if none and text.lower() == "none":
            return None
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected {'an integer' if kind is int else 'a number'} "
                f"{bounds}{' or none' if none else ''}; received {text!r}") from None
        if (low is not None and (value < low or (low_open and value == low))) or (
                high is not None and value > high):
            raise argparse.ArgumentTypeError(f"expected a value {bounds}; received {text!r}")
        return value

    parse.__name__ = kind.__name__
    return parse


def check_model_path(path):
    """Raises `UsageError` unless ``path`` is a ``.keras`` archive (or a legacy ``.h5`` file)."""
    if not os.path.exists(path):
        raise UsageError(f"no such file: {path}")
    if os.path.isdir(path):
        raise UsageError(f"{path} is a directory, not a Keras model file: give the .keras file "
                         "saved with model.save('model.keras')")
    suffix = os.path.splitext(path)[1].lower()
    if suffix == ".keras":
        try:
            with zipfile.ZipFile(path) as archive:
                names = set(archive.namelist())
        except (zipfile.BadZipFile, OSError):
            names = None
        if names is None or "config.json" not in names:
            raise UsageError(f"{path} is not a Keras model: a .keras file is a zip archive with "
                             "config.json, as model.save('model.keras') writes it")
    elif suffix in (".h5", ".hdf5"):
        with open(path, "rb") as f:
            if f.read(8) != b"\x89HDF\r\n\x1a\n":
                raise UsageError(f"{path} is not a Keras model: it is not an HDF5 file")
    else:
        raise UsageError(f"{path} is not a Keras model file: keras-biprune reads models saved "
                         "as .keras (model.save('model.keras')) or legacy .h5")


def check_data_spec(spec):
    """Raises `UsageError` unless ``spec`` names a dataset or an npz archive with the 4 arrays."""
    if spec in DATA:
        return
    if not spec.startswith("npz:"):
        raise UsageError(f"--data must be one of {', '.join(DATA)} or npz:PATH; "
                         f"received {spec!r}")
    path = spec[4:]
    if not os.path.isfile(path):
        raise UsageError(f"--data {spec}: no such file: {path}" if not os.path.exists(path)
                         else f"--data {spec}: {path} is a directory, not an .npz archive")
    try:
        with zipfile.ZipFile(path) as archive:
            names = {os.path.splitext(n)[0] for n in archive.namelist()}
    except (zipfile.BadZipFile, OSError):
        raise UsageError(f"--data {spec}: {path} is not an .npz archive (np.savez writes one)") \
            from None
    missing = [a for a in NPZ_ARRAYS if a not in names]
    if missing:
        raise UsageError(f"--data {spec}: the archive lacks arrays {missing}; it has "
                         f"{sorted(names)}. Save it with np.savez(path, x_train=..., "
                         "y_train=..., x_test=..., y_test=...)")


def check_out(path, overwrite):
    """Raises `UsageError` unless the export can write ``path`` (checked before any work)."""
    if os.path.isfile(path) or (os.path.exists(path) and not os.path.isdir(path)):
        raise UsageError(f"--out {path} is a file; the export writes a directory: give a new "
                         "or empty directory")
    if os.path.isdir(path):
        if os.listdir(path) and not overwrite:
            raise UsageError(f"--out {path} is not empty; pass --overwrite or another --out")
        if not os.access(path, os.W_OK | os.X_OK):
            raise UsageError(f"--out {path}: the directory is not writable")
        return
    parent = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise UsageError(f"--out {path}: {parent} is a file, so the directory cannot be made")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"--out {path}: cannot create it, {parent} is not writable")


# ------------------------------------------------------------------ phases and logs
def _configure_logging(verbose):
    """The library's INFO lines (phases, progress fallback) on stderr when ``verbose``."""
    package = logging.getLogger("keras_biprune")
    if not any(getattr(h, "_keras_biprune_cli", False) for h in package.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler._keras_biprune_cli = True
        package.addHandler(handler)
        package.propagate = False
    package.setLevel(logging.INFO if verbose else logging.WARNING)


def import_tensorflow(debug=False):
    """Imports TensorFlow with its start-up lines silenced (all of them unless ``debug``).

    TensorFlow writes them to the process's stderr from C++ (some regardless
    of ``TF_CPP_MIN_LOG_LEVEL``), once at import and again when it probes
    for GPUs (``failed call to cuInit`` where there is none). The command is
    the process's entry point, so it may set the environment: it sets
    ``TF_CPP_MIN_LOG_LEVEL=2`` unless the user set it, and mutes the
    descriptor while TensorFlow starts; if the import fails, its output is
    shown.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if debug:
        import tensorflow as tf

        return tf
    from keras_biprune._stdio import captured_stderr

    ok = False
    try:
        with captured_stderr() as captured:
            import tensorflow as tf

            tf.config.list_physical_devices()
        ok = True
    finally:
        if not ok and captured and captured[0]:
            sys.stderr.write(captured[0])
    return tf


# ------------------------------------------------------------------ commands
def load_data(spec):
    """``((x_train, y_train), (x_test, y_test))`` for a ``--data`` value.

    ``npz:PATH`` reads a NumPy archive with arrays ``x_train``, ``y_train``,
    ``x_test`` and ``y_test``.
    """
    check_data_spec(spec)
    if spec.startswith("npz:"):
        import numpy as np

        with np.load(spec[4:]) as archive:
            return ((archive["x_train"], archive["y_train"]),
                    (archive["x_test"], archive["y_test"]))
    from keras_biprune import datasets

    loaders = {"fashion_mnist": datasets.load_fashion_mnist, "digits": datasets.load_digits,
               "cifar10": datasets.load_cifar10, "cifar100": datasets.load_cifar100}
    return loaders[spec]()


def load_model(path):
    """The Keras model saved at ``path``; `UsageError` when it cannot be read as one."""
    check_model_path(path)
    import keras

    try:
        return keras.saving.load_model(path)
    except Exception as error:          # Keras raises ValueError, OSError, TypeError...
        reason = " ".join(str(error).split())[:300]
        raise UsageError(f"{path} could not be loaded as a Keras model: {reason}") from error


def check_prune(args):
    """Every check of ``prune`` that needs neither Keras nor the data loaded."""
    check_out(args.out, args.overwrite)
    check_model_path(args.model)
    check_data_spec(args.data)


def prune(args):
    from keras_biprune._progress import Phases

    phases = Phases(args.verbose)
    phases.start("starting TensorFlow")
    import_tensorflow(args.debug)
    import keras_biprune as kb

    phases.start("loading data", args.data)
    (x_train, y_train), (x_test, y_test) = load_data(args.data)
    phases.start("loading the model", args.model)
    model = load_model(args.model)
    search = {"generations": args.generations, "population_size": args.population,
              "max_evaluations": args.max_evaluations}
    search = {k: v for k, v in search.items() if v is not None}
    pruner = kb.BiLevelPruner(
        model, method=args.method, target_flops=args.target_flops,
        target_latency=args.target_latency, runtime=args.runtime,
        latency_batch_size=args.latency_batch_size, max_accuracy_drop=args.max_accuracy_drop,
        channel_granularity=None if args.granularity == "none" else args.granularity,
        round_to=args.round_to, criteria=args.criteria, search_kwargs=search or None,
        finalists=args.finalists, steps=args.steps, random_state=args.seed,
        verbose=args.verbose)
    phases.start("pruning", show=False)             # the pruner prints its own phases
    epochs = {} if args.epochs is None else {"epochs": args.epochs}
    pruner.fit(x_train, y_train, validation_data=(x_test, y_test), batch_size=args.batch_size,
               distill=DISTILL[args.distill], **epochs)
    print(pruner.summary(print_fn=lambda _: None), flush=True)
    phases.start("export", args.out)
    pruner.export(args.out, representative_data=x_train[:256], overwrite=args.overwrite)
    phases.done()
    print(f"Exported to {args.out}", flush=True)


def report(args):
    from keras_biprune.report import format_report

    if not os.path.isdir(args.directory):
        raise UsageError(f"no such directory: {args.directory}" if not os.path.exists(
            args.directory) else f"{args.directory} is a file; give the --out directory of "
            "`keras-biprune prune` or `demo`")
    path = os.path.join(args.directory, "report.json")
    if not os.path.exists(path):
        raise UsageError(f"no report.json in {args.directory}; give the --out directory of "
                         "`keras-biprune prune` or `demo`")
    try:
        with open(path) as f:
            content = json.load(f)
    except (OSError, ValueError) as error:
        raise UsageError(f"{path} is not a readable JSON report: {error}") from None
    print(format_report(content))


def check_demo(args):
    """The demo's checks before any work: ``--out`` must be a directory it can write."""
    check_out(args.out, overwrite=True)


def demo(args):
    import_tensorflow(args.debug)
    from keras_biprune import demo as demo_module

    demo_module.run(out=args.out, data=args.data, preset=args.preset,
                    target_flops=args.target_flops, target_latency=args.target_latency,
                    seed=args.seed)


# ------------------------------------------------------------------ the parser
class _Parser(argparse.ArgumentParser):
    """Argument errors on one line: ``keras-biprune prune: error: ... (see --help)``."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _default(value):
    return f"(default: {value})"


def build_parser():
    """The argument parser of ``keras-biprune`` (imports nothing heavy)."""
    pruner, search = _defaults.PRUNER, _defaults.SEARCH
    parser = _Parser(prog="keras-biprune",
                     description="Structural pruning of Keras models by evolutionary search.",
                     epilog="Run `keras-biprune COMMAND --help` for a command's options.")
    parser.add_argument("--debug", action="store_true",
                        help="show tracebacks and TensorFlow's own logs instead of one "
                             "error line")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                     parser_class=_Parser)

    p = commands.add_parser(
        "prune", help="prune a saved .keras model, fine-tune it and export it",
        description="Search a slimmer version of a trained, compiled Keras model, fine-tune "
                    "it on the training data and export it (.keras, SavedModel, TFLite, plan, "
                    "report, figures). Defaults are BiLevelPruner's.",
        epilog="example: keras-biprune prune model.keras --data fashion_mnist "
               "--target-flops 0.5 --epochs 3 --out pruned")
    p.add_argument("model", help="a trained, compiled model saved as .keras "
                                 "(model.save('model.keras'))")
    p.add_argument("--data", required=True, metavar="NAME|npz:PATH",
                   help=f"training and test data: one of {', '.join(DATA)}, or npz:PATH, an "
                        f"archive with arrays {', '.join(NPZ_ARRAYS)} (np.savez)")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="export directory, new or empty (or pass --overwrite)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the files of an earlier export in --out")
    p.add_argument("--target-flops", type=_number(float, 0, 1, low_open=True, none=True),
                   default=pruner["target_flops"], metavar="R",
                   help="share of the FLOPs to keep, in (0, 1], or none (with "
                        "--target-latency: the latency budget alone) "
                        + _default(pruner["target_flops"]))
    p.add_argument("--target-latency", type=_number(float, 0, 1, low_open=True, none=True),
                   default=pruner["target_latency"], metavar="R",
                   help="share of the latency to keep on --runtime at --latency-batch-size, "
                        "predicted by latency tables measured on this machine (cached) "
                        + _default(pruner["target_latency"]))
    p.add_argument("--runtime", choices=_defaults.RUNTIMES, default=pruner["runtime"],
                   help="what --target-latency is measured on " + _default(pruner["runtime"]))
    p.add_argument("--latency-batch-size", type=_number(int, 1),
                   default=pruner["latency_batch_size"], metavar="N",
                   help="samples per call of --target-latency "
                        + _default(pruner["latency_batch_size"]))
    p.add_argument("--method", choices=_defaults.METHODS, default=pruner["method"],
                   help="bi-level co-evolution, or the one-shot NSGA-II search "
                        + _default(pruner["method"]))
    p.add_argument("--max-accuracy-drop", type=_number(float, 0, none=True),
                   default=pruner["max_accuracy_drop"], metavar="D",
                   help="the most accuracy the search may lose, in metric units, or none for "
                        "the best accuracy within the FLOPs budget "
                        + _default(pruner["max_accuracy_drop"]))
    granularity = pruner["channel_granularity"] or "none"
    p.add_argument("--granularity", choices=("none", *_defaults.GRANULARITIES),
                   default=granularity,
                   help="what the bi-level search's lower level removes: none (no lower "
                        "level), layer (input channels per layer, read through a gather; "
                        "slower on CPUs) or filter (per-filter kernel zeros) "
                        + _default(granularity))
    p.add_argument("--round-to", type=_number(int, 1), default=pruner["round_to"], metavar="N",
                   help="kept widths are multiples of N (8 vectorizes on CPUs; 1: any width) "
                        + _default(pruner["round_to"]))
    p.add_argument("--criteria", type=str.lower, choices=_defaults.CRITERIA,
                   default=pruner["criteria"], metavar="NAME",
                   help=f"criterion ranking the channels: {', '.join(_defaults.CRITERIA)} "
                        + _default(pruner["criteria"]))
    p.add_argument("--generations", type=_number(int, 1), default=None, metavar="N",
                   help="search generations (default: the search's, "
                        f"{search['bilevel']['generations']} for bilevel, "
                        f"{search['nsga2']['generations']} for nsga2)")
    p.add_argument("--population", type=_number(int, 2), default=None, metavar="N",
                   help="population size, at least 2 (default: the search's, "
                        f"{search['bilevel']['population_size']} for bilevel, "
                        f"{search['nsga2']['population_size']} for nsga2)")
    p.add_argument("--max-evaluations", type=_number(int, 1), default=None, metavar="N",
                   help="stop the search after this many plans scored (default: no limit)")
    p.add_argument("--epochs", type=_number(int, 1), default=None, metavar="N",
                   help="fine-tuning epochs, stopped early when the test accuracy stalls "
                        "(default: about 2,000 optimizer steps, 2 to 30 epochs)")
    p.add_argument("--batch-size", type=_number(int, 1), default=BATCH_SIZE, metavar="N",
                   help=f"fine-tuning batch size {_default(BATCH_SIZE)}")
    p.add_argument("--distill", choices=tuple(DISTILL), default="auto",
                   help="distill from the unpruned model while fine-tuning; auto: when its "
                        "loss is a categorical cross-entropy (default: auto)")
    p.add_argument("--finalists", type=_number(int, 1, none=True), default=pruner["finalists"],
                   metavar="N", help="the search's best N plans race on short recoveries "
                                     "(bilevel; 1: no race; none: "
                                     f"{_defaults.FINALISTS}, or 1 with --steps > 1) "
                                     + _default(pruner["finalists"]))
    p.add_argument("--steps", type=_number(int, 1), default=pruner["steps"], metavar="K",
                   help="reach the target in K stages, each searched on the model the one "
                        "before left and briefly recovered (bilevel; 1: one-shot) "
                        + _default(pruner["steps"]))
    p.add_argument("--seed", type=_number(int, 0), default=pruner["random_state"], metavar="N",
                   help="random seed of the split, the search and the shuffles "
                        + _default(pruner["random_state"]))
    p.add_argument("--verbose", type=int, choices=(0, 1, 2), default=pruner["verbose"],
                   help="0 silent, 1 progress and phase lines, 2 one line per epoch "
                        + _default(pruner["verbose"]))
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                   help="show tracebacks and TensorFlow's logs")
    p.set_defaults(run=prune, check=check_prune)

    r = commands.add_parser("report", help="print the report of an export directory",
                            description="Print the before/after table of an export: sizes, "
                                        "FLOPs against the target, accuracy change, widths.")
    r.add_argument("directory", help="the --out directory of `prune` or `demo`")
    r.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                   help="show tracebacks")
    r.set_defaults(run=report, check=None)

    d = commands.add_parser(
        "demo", help="train, prune and export a small CNN on offline data",
        description="Train a small residual CNN on offline data (Fashion-MNIST when its "
                    "files are installed, else scikit-learn's digits), prune it to a share of "
                    "its FLOPs, fine-tune it, print the before/after table with CPU latency and "
                    "export it.")
    d.add_argument("--out", default="demo_output", metavar="DIR",
                   help="export directory; an earlier demo's files are replaced "
                        + _default("demo_output"))
    d.add_argument("--data", choices=_defaults.DEMO_DATA, default="auto",
                   help="auto: Fashion-MNIST when it is installed (no download), else digits "
                        + _default("auto"))
    d.add_argument("--preset", choices=tuple(_defaults.DEMO_PRESETS), default="default",
                   help="quick (a smoke run), default (minutes on 2 CPU cores), strong "
                        + _default("default"))
    d.add_argument("--target-flops", type=_number(float, 0, 1, low_open=True),
                   default=pruner["target_flops"], metavar="R",
                   help="share of the FLOPs to keep, in (0, 1] " + _default(pruner["target_flops"]))
    d.add_argument("--target-latency", type=_number(float, 0, 1, low_open=True, none=True),
                   default=_defaults.DEMO_TARGET_LATENCY, metavar="R",
                   help="share of the TensorFlow latency at batch 64 to keep, or none for the "
                        "FLOPs budget alone " + _default(_defaults.DEMO_TARGET_LATENCY))
    d.add_argument("--seed", type=_number(int, 0), default=0, metavar="N",
                   help="random seed " + _default(0))
    d.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                   help="show tracebacks and TensorFlow's logs")
    d.set_defaults(run=demo, check=check_demo, verbose=1)
    return parser


def main(argv=None):
    """Runs the command; returns the exit status (0, or 2 after an error line)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = args.debug
    try:
        if args.check is not None:
            args.check(args)
        _configure_logging(getattr(args, "verbose", 1))
        args.run(args)
        return 0
    except (BiPruneError, UsageError) as error:
        if debug:
            raise
        prog = f"keras-biprune {args.command}"
        text = " ".join(str(error).split()) or type(error).__name__
        print(f"{prog}: error: {text}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if debug:
            raise
        print("keras-biprune: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
