"""Does a FLOPs cut become a latency cut? Latency ratio against FLOPs ratio, by width step.

For each model and FLOPs budget, the L1-uniform plan (every group keeps its
highest-L1 channels, one common ratio) is made with widths in steps of 1 and
in steps of 8 (``round_to``), rebuilt by `keras_biprune.apply_plan`, and timed
against the unpruned model in alternating rounds: TensorFlow (a compiled
forward pass) and TFLite (float, XNNPACK), batch 1 and 64. The goal is a
latency ratio of at most 1.2 × the FLOPs ratio. No training: latency does not
depend on the weights' values.

    python -m benchmarks.realized_speed [--models vgg_small resnet20 mobilenetv2]
"""

import argparse
import json
import subprocess
import sys

import numpy as np

from benchmarks._timing import against, timers


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["vgg_small", "resnet20", "mobilenetv2"])
    parser.add_argument("--budgets", type=float, nargs="+", default=[0.7, 0.5, 0.3])
    parser.add_argument("--steps", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--out", default="docs/benchmarks/realized_speed.json")
    args = parser.parse_args(argv)

    import keras_biprune as kb
    from benchmarks.models import MODELS
    from keras_biprune.search import Budget, UpperEncoding

    rows = []
    engines = ("tf_b1", "tf_b64", "tflite_b1", "tflite_b64")
    print(f"{'model':<12} {'step':>4} {'budget':>6} {'FLOPs':>6} "
          + " ".join(f"{n:>10}" for n in engines))
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
                      + " ".join(f"{latency[n][1] / latency[n][0]:>10.3f}" for n in engines),
                      flush=True)
    ratios = np.array([[b / a / r["flops"] for a, b in r["latency_ms"].values()] for r in rows])
    for step in args.steps:
        mine = ratios[[r["round_to"] == step for r in rows]]
        print(f"round_to={step}: latency ratio / FLOPs ratio, median {np.median(mine):.2f}, "
              f"worst {mine.max():.2f}; within 1.2: {np.mean(mine <= 1.2):.0%}")
    commit = subprocess.run(["git", "describe", "--always", "--dirty"], check=False,
                            capture_output=True, text=True).stdout.strip()
    with open(args.out, "w") as f:
        json.dump({"command": " ".join(["python -m benchmarks.realized_speed",
                                        *(sys.argv[1:] if argv is None else argv)]),
                   "commit": commit, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
