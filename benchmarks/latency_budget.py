"""Does the latency model predict the measured speed-up? Predicted against measured latency ratios.

For each model, runtime and batch size the latency tables are built (or
loaded from the cache; the build time is printed and kept), then plans are
made at several latency targets: the L1-ranked plan repaired to the target
(`keras_biprune.search.Budget` with ``measure="latency"``) and ``--random``
random genomes repaired the same way. Each plan is rebuilt by
`keras_biprune.apply_plan` and timed against the unpruned model call by call
in turn (`keras_biprune.evaluate.runtimes.paired`). A row holds the
predicted and measured ratios; the goal is a measured ratio within 10 % of
the predicted one. No training: latency does not depend on the weights'
values. Rows are appended to ``--out``.json as they are measured, and a rerun
skips the rows already there (resumable). ``--resnet50`` also builds the
tables of ``keras.applications.ResNet50`` at 224x224 and records the time.

    python -m benchmarks.latency_budget [--models vgg_small resnet20 mobilenetv2]
        [--runtimes tflite tf] [--batches 64 1] [--targets 0.8 0.6 0.4] [--random 2]
    python -m benchmarks.latency_budget --quick          # a small check of the script
    python -m benchmarks.latency_budget --report         # the summary of --out.json
"""

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

from benchmarks._options import add_size_options, resolve_sizes

NAME = "latency_budget"
FULL = {"random": 2, "max_widths": 4, "rounds": 5, "runs": 10}
QUICK = {"random": 0, "max_widths": 2, "rounds": 2, "runs": 5}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["vgg_small", "resnet20", "mobilenetv2"])
    parser.add_argument("--runtimes", nargs="+", default=["tflite", "tf"])
    parser.add_argument("--batches", type=int, nargs="+", default=[64, 1])
    parser.add_argument("--targets", type=float, nargs="+", default=[0.8, 0.6, 0.4])
    parser.add_argument("--round-to", type=int, default=8)
    parser.add_argument("--time-budget", type=float, default=None,
                        help="seconds per latency table (see LatencyModel.build)")
    parser.add_argument("--cache-dir", default=None, help="latency table cache")
    parser.add_argument("--lanes", default="4",
                        help="LatencyModel.build's lanes: an int or auto (default 4)")
    parser.add_argument("--threads", type=int, default=None,
                        help="TFLite interpreter threads (default: LatencyModel.build's, 1)")
    parser.add_argument("--resnet50", action="store_true",
                        help="also build the tables of ResNet50 at 224x224 (time only)")
    parser.add_argument("--report", action="store_true", help="only print the summary of --out")
    add_size_options(parser, FULL, QUICK, NAME)
    args = resolve_sizes(parser.parse_args(argv), FULL, QUICK, NAME)
    if args.quick:
        args.models, args.batches, args.targets = args.models[:1], args.batches[-1:], [0.6]
    path = f"{args.out}.json"
    state = {"rows": [], "tables": []}
    if os.path.exists(path):
        with open(path) as f:
            state = json.load(f)
    if args.report:
        summary(state["rows"])
        return
    state["command"] = " ".join(["python -m benchmarks.latency_budget",
                                 *(sys.argv[1:] if argv is None else argv)])
    state["commit"] = subprocess.run(["git", "describe", "--always", "--dirty"], check=False,
                                     capture_output=True, text=True).stdout.strip()
    for name in args.models:
        for runtime in args.runtimes:
            for batch in args.batches:
                _measure(name, runtime, batch, args, state, path)
    if args.resnet50:
        for runtime in args.runtimes:
            _table_time("resnet50", runtime, 1, args, state, path)
    summary(state["rows"])


def _model(name):
    import keras

    from benchmarks.models import MODELS

    if name == "resnet50":
        return keras.applications.ResNet50(weights=None, input_shape=(224, 224, 3))
    return MODELS[name]()


def _table(model, runtime, batch, args):
    from keras_biprune.evaluate import LatencyModel

    return LatencyModel.build(model, runtime, batch, round_to=args.round_to,
                              max_widths=args.max_widths, time_budget=args.time_budget,
                              lanes=int(args.lanes) if args.lanes.isdigit() else args.lanes,
                              cache_dir=args.cache_dir, verbose=2,
                              threads=args.threads if runtime == "tflite" else None)


def _table_time(name, runtime, batch, args, state, path):
    """Builds (or loads) one model's tables and records how long building them took."""
    started = time.perf_counter()
    latency = _table(_model(name), runtime, batch, args)
    row = {"model": name, "runtime": runtime, "batch": batch, "threads": latency.threads,
           "max_widths": args.max_widths,
           "lanes": args.lanes, "time_budget": args.time_budget, "seconds": latency.seconds,
           "cached": time.perf_counter() - started < 0.5 * latency.seconds,
           "blocks": len(latency.blocks), "calibration": latency.calibration}
    print(f"{name:<12} {runtime:<6} b{batch:<3} tables built in {latency.seconds:.0f} s "
          f"({len(latency.blocks)} blocks{', from the cache' if row['cached'] else ''})",
          flush=True)
    state["tables"] = [t for t in state["tables"] if (t["model"], t["runtime"], t["batch"])
                       != (name, runtime, batch)] + [row]
    _save(state, path)
    return latency


def _measure(name, runtime, batch, args, state, path):
    """Rows of one model, runtime and batch size: predicted against measured ratios."""
    import keras_biprune as kb
    from keras_biprune.evaluate.runtimes import forward_call, paired
    from keras_biprune.search import Budget, UpperEncoding

    latency = _table_time(name, runtime, batch, args, state, path)
    model, graph = latency.model, latency.graph
    encoding = UpperEncoding(graph, kb.criteria.scores(graph, model, "l1"), "width",
                             round_to=args.round_to)
    full_flops, base = kb.cost(graph).macs, None
    for target in args.targets:
        budget = Budget(graph, target, "latency", latency_model=latency)
        rng = np.random.default_rng(int(target * 1000))
        genomes = {"l1": encoding.full()} | {
            f"random{i}": np.array([rng.choice(space) for space in encoding.gene_space])
            for i in range(args.random)}
        for kind, genome in genomes.items():
            key = (name, runtime, batch, target, kind)
            if any(_key(r) == key for r in state["rows"]):
                continue
            plan = encoding.decode(genome, budget)
            base = base or forward_call(model, runtime, batch, threads=latency.threads)
            ms = paired([base, forward_call(kb.apply_plan(model, plan), runtime, batch,
                                            threads=latency.threads)],
                        args.rounds, args.runs)
            row = {"model": name, "runtime": runtime, "batch": batch, "threads": latency.threads,
                   "target": target,
                   "kind": kind, "predicted": latency.ratio(plan), "measured": ms[1] / ms[0],
                   "predicted_ms": latency.predict(plan), "latency_ms": ms,
                   "flops": kb.cost(graph, plan).macs / full_flops,
                   "widths": {g: len(k) for g, k in plan.keep.items()}}
            state["rows"].append(row)
            _save(state, path)
            print(f"{name:<12} {runtime:<6} b{batch:<3} target {target:.2f} {kind:<8} "
                  f"predicted {row['predicted']:.3f} measured {row['measured']:.3f} "
                  f"(FLOPs {row['flops']:.3f})", flush=True)


def _key(row):
    return row["model"], row["runtime"], row["batch"], row["target"], row["kind"]


def _save(state, path):
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as f:
        json.dump(state, f, indent=1)


def summary(rows):
    """Per model, runtime and batch: how far measured ratios are from predicted ones."""
    groups = sorted({(r["model"], r["runtime"], r["batch"]) for r in rows})
    for model, runtime, batch in groups:
        mine = [r for r in rows if (r["model"], r["runtime"], r["batch"]) == (model, runtime,
                                                                               batch)]
        error = np.array([r["measured"] / r["predicted"] - 1 for r in mine])
        print(f"{model:<12} {runtime:<6} b{batch:<3} {len(mine)} plans: measured / predicted - 1"
              f" median {np.median(error):+.3f}, worst {error[np.argmax(abs(error))]:+.3f}; "
              f"within 10%: {np.mean(abs(error) <= 0.1):.0%}")


if __name__ == "__main__":
    main()
