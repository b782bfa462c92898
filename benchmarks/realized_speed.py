"""Does a FLOPs cut become a latency cut? Latency ratio against FLOPs ratio, by width step.

For each model and FLOPs budget, the L1-uniform plan (every group keeps its
highest-L1 channels, one common ratio) is made with widths in steps of 1 and
in steps of 8 (``round_to``), rebuilt by `keras_biprune.apply_plan`, and timed
against the unpruned model in alternating rounds: TensorFlow (a compiled
forward pass) and TFLite (float, XNNPACK), batch 1 and 64. The goal is a
latency ratio of at most 1.2 × the FLOPs ratio. No training: latency does not
depend on the weights' values.

Where the goal is missed, the summary says why: per model, step and engine it
fits ``latency ratio = fixed + (1 - fixed) × FLOPs ratio`` to the plans and
prints ``fixed``, the share of the unpruned latency that does not shrink with
the MACs (per-call and per-op overhead, memory traffic). No width step can
bring a plan under ``fixed`` however few MACs it keeps. ``--report`` prints
the summary of a saved file without timing anything.

    python -m benchmarks.realized_speed [--models vgg_small resnet20 mobilenetv2]
    python -m benchmarks.realized_speed --report [--out docs/benchmarks/realized_speed.json]
"""

import argparse
import json
import subprocess
import sys

import numpy as np

from benchmarks._timing import against, timers

ENGINES = ("tf_b1", "tf_b64", "tflite_b1", "tflite_b64")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["vgg_small", "resnet20", "mobilenetv2"])
    parser.add_argument("--budgets", type=float, nargs="+", default=[0.7, 0.5, 0.3])
    parser.add_argument("--steps", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--out", default="docs/benchmarks/realized_speed.json")
    parser.add_argument("--report", action="store_true",
                        help="only print the summary of --out")
    args = parser.parse_args(argv)
    if args.report:
        with open(args.out) as f:
            summary(json.load(f)["rows"])
        return

    import keras_biprune as kb
    from benchmarks.models import MODELS
    from keras_biprune.search import Budget, UpperEncoding

    rows = []
    print(f"{'model':<12} {'step':>4} {'budget':>6} {'FLOPs':>6} "
          + " ".join(f"{n:>10}" for n in ENGINES))
    for name in args.models:
        model = MODELS[name]()
        graph = kb.trace(model)
        scores = kb.criteria.scores(graph, model, "l1")
        full = kb.cost(graph)
        base = {batch: timers(model, batch) for batch in (1, 64)}
        for step in args.steps:
            encoding = UpperEncoding(graph, scores, "mask", step)
            for budget in args.budgets:
                plan = encoding.decode(encoding.full(), Budget(graph, budget))
                slim = kb.apply_plan(model, plan)
                latency = against(base, slim, args.rounds, args.runs)
                row = {"model": name, "round_to": step, "budget": budget,
                       "flops": kb.cost(graph, plan).ratio_to(full).macs,
                       "widths": {g: len(k) for g, k in plan.keep.items()},
                       "latency_ms": latency}
                rows.append(row)
                print(f"{name:<12} {step:>4} {budget:>6.2f} {row['flops']:>6.3f} "
                      + " ".join(f"{latency[n][1] / latency[n][0]:>10.3f}" for n in ENGINES),
                      flush=True)
    summary(rows)
    commit = subprocess.run(["git", "describe", "--always", "--dirty"], check=False,
                            capture_output=True, text=True).stdout.strip()
    with open(args.out, "w") as f:
        json.dump({"command": " ".join(["python -m benchmarks.realized_speed",
                                        *(sys.argv[1:] if argv is None else argv)]),
                   "commit": commit, "rows": rows}, f, indent=1)


def _ratio(row, engine):
    full, pruned = row["latency_ms"][engine]
    return pruned / full


def fixed_share(rows, engine):
    """Least-squares ``fixed`` of ``latency ratio = fixed + (1 - fixed) × FLOPs ratio``."""
    flops = np.array([r["flops"] for r in rows])
    excess = np.array([_ratio(r, engine) for r in rows]) - flops
    return float(np.dot(excess, 1 - flops) / np.dot(1 - flops, 1 - flops))


def summary(rows):
    """Per step: latency ratio ÷ FLOPs ratio against the goal; per model: the fixed share."""
    for step in sorted({r["round_to"] for r in rows}):
        mine = [r for r in rows if r["round_to"] == step]
        over = np.array([[_ratio(r, e) / r["flops"] for e in ENGINES] for r in mine])
        print(f"round_to={step}: latency ratio / FLOPs ratio, median {np.median(over):.2f}, "
              f"worst {over.max():.2f}; within 1.2: {np.mean(over <= 1.2):.0%}")
        for name in sorted({r["model"] for r in mine}):
            plans = [r for r in mine if r["model"] == name]
            print(f"  {name:<12} fixed share " + " ".join(
                f"{e} {fixed_share(plans, e):.2f}" for e in ENGINES))


if __name__ == "__main__":
    main()
