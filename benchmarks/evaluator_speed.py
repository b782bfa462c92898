"""Candidates per second of three ways to score pruning plans, and their peak memory.

(a) naive: ``apply_plan`` then ``model.evaluate`` per candidate; with adaptive
    batch norm, the rebuilt model's BN statistics are first re-estimated on
    the evaluator's calibration images (`kb.training.recalibrate_batch_norm`,
    one batch: the exact moments the evaluator computes), so that row does
    the same work as the evaluator's adaptive-BN rows, the naive way;
(b) per candidate: the evaluator's masked program, one candidate per compiled
    call (mask assignment + one compiled predict);
(c) population: the evaluator's masked program, ``P`` candidates per compiled
    call (``engine="batched"``);
(d) sliced: the evaluator's CPU engine, each candidate with its sliced weights
    through one relaxed-shape function (``engine="sliced"``);
(e) racing: (d) with ``racing=(FIRST, KEEP)``: every candidate scored on the
    first FIRST images, then only the best KEEP share on twice as many, until
    the survivors have seen all of them. With adaptive batch norm the race
    starts with the free screen on the calibration images (the best KEEP
    share of the candidates go on). Its row also gives the fidelity of the
    raced scores against the exact ones of the same plans: the Spearman
    correlation and whether the top-1 and top-3 plans are the same.

Each method runs in its own process so its peak resident memory is its own.

    python -m benchmarks.evaluator_speed [--models vgg_small resnet20] [--population 32]
        [--racing 128 0.5]
"""

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np

EVAL_IMAGES = 1024
CALIBRATION_IMAGES = 256
BATCH = 128
RATIO = 0.5


def _setup(name, population):
    import keras_biprune as kb
    from benchmarks.models import train_or_load
    from keras_biprune.datasets import load_fashion_mnist

    model, _ = train_or_load(name, verbose=0)
    _, (x_test, y_test) = load_fashion_mnist()
    # Evaluation and calibration images are disjoint, as in a search.
    x, y = x_test[:EVAL_IMAGES + CALIBRATION_IMAGES], y_test[:EVAL_IMAGES + CALIBRATION_IMAGES]
    graph = kb.trace(model)
    plans = [kb.PruningPlan.random(graph, RATIO, seed=s) for s in range(population)]
    return model, x, y, plans


def _naive(model, x, y, plans, calibration):
    import keras_biprune as kb

    scores = []
    for plan in plans:
        slim = kb.apply_plan(model, plan)
        if calibration is not None:
            kb.training.recalibrate_batch_norm(slim, calibration, max_batches=1,
                                               batch_size=len(calibration))
        slim.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        scores.append(slim.evaluate(x, y, batch_size=BATCH, verbose=0, return_dict=True)
                      ["accuracy"])
    return scores


def _evaluator(model, x, y, plans, parallel, adaptive_bn, engine, racing=None):
    import keras_biprune as kb

    evaluator = kb.Evaluator(model, (x, y), eval_size=EVAL_IMAGES,
                             calibration_size=CALIBRATION_IMAGES,
                             batch_size=BATCH, max_parallel=parallel, adaptive_bn=adaptive_bn,
                             engine=engine, racing=racing)
    # Compile outside the timing, as a search does once (the sliced engine
    # traces its functions at their first call, for every width at once).
    evaluator.evaluate(plans[-3:])
    return evaluator, lambda: evaluator.evaluate(plans)


def _fidelity(raced, exact):
    """Spearman correlation of raced and exact scores; top-1 the same; top-3 overlap."""
    from scipy.stats import spearmanr

    top = lambda scores, k: set(np.argsort(-np.asarray(scores), kind="stable")[:k].tolist())
    return {"spearman": float(spearmanr(raced, exact)[0]),
            "top1_same": top(raced, 1) == top(exact, 1),
            "top3_overlap": len(top(raced, 3) & top(exact, 3))}


def run_one(name, method, population, adaptive_bn, racing=(128, 0.5)):
    """Times one method in this process; returns a dict of figures."""
    model, x, y, plans = _setup(name, population)
    if method == "naive":
        # The evaluator's evaluation and calibration images, drawn outside the timing.
        evaluator, _ = _evaluator(model, x, y, plans[:1], 1, adaptive_bn, "sliced")
        calibration = evaluator.x_calibration[0] if adaptive_bn else None
        start = time.perf_counter()
        scores = _naive(model, evaluator.x_eval[0], evaluator.y_eval, plans, calibration)
    else:
        parallel = population if method == "population" else 1
        engine = "sliced" if method in ("sliced", "racing") else "batched"
        evaluator, score_all = _evaluator(model, x, y, plans, parallel, adaptive_bn, engine,
                                          tuple(racing) if method == "racing" else None)
        start = time.perf_counter()
        scores = score_all()
    seconds = time.perf_counter() - start
    row = {
        "model": name,
        "method": method,
        "adaptive_bn": adaptive_bn,
        "population": population,
        "seconds": seconds,
        "candidates_per_s": population / seconds,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "mean_score": float(np.mean(scores)),
    }
    if method == "racing":
        race = evaluator.last_race
        row.update(racing=list(racing), images_scored=race["images_scored"],
                   images_exact=race["images_exact"], finished=len(race["finished"]),
                   screen_kept=None if race["screen"] is None else len(race["screen"]["kept"]))
        _, exact = _evaluator(model, x, y, plans, 1, adaptive_bn, "sliced")
        row.update(_fidelity(scores, exact()))
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["vgg_small", "resnet20"])
    parser.add_argument("--population", type=int, default=32)
    parser.add_argument("--racing", nargs=2, type=float, default=[128, 0.5],
                        metavar=("FIRST", "KEEP"), help="the racing variant's settings")
    parser.add_argument("--one", nargs=3, metavar=("MODEL", "METHOD", "ADAPTIVE_BN"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--out", default="docs/benchmarks/evaluator_speed.json")
    args = parser.parse_args(argv)
    if args.one:
        name, method, adaptive = args.one
        racing = (int(args.racing[0]), args.racing[1])
        print(json.dumps(run_one(name, method, args.population, adaptive == "1", racing)))
        return
    rows = []
    for name in args.models:
        for method, adaptive in (("naive", "0"), ("per_candidate", "0"), ("population", "0"),
                                 ("sliced", "0"), ("racing", "0"), ("naive", "1"),
                                 ("per_candidate", "1"), ("population", "1"), ("sliced", "1"),
                                 ("racing", "1")):
            output = subprocess.run(
                [sys.executable, "-m", "benchmarks.evaluator_speed", "--population",
                 str(args.population), "--racing", *map(str, args.racing),
                 "--one", name, method, adaptive],
                check=True, capture_output=True, text=True,
            ).stdout
            row = json.loads(output.strip().splitlines()[-1])
            rows.append(row)
            print(f"{name:10s} {method:14s} adaptive_bn={adaptive}  "
                  f"{row['candidates_per_s']:7.2f} candidates/s  "
                  f"peak RSS {row['peak_rss_mib']:7.0f} MiB  mean score {row['mean_score']:.4f}"
                  + (f"  images {row['images_scored']}/{row['images_exact']}, "
                     f"Spearman vs exact {row['spearman']:.3f}, top-1 same "
                     f"{row['top1_same']}, top-3 overlap {row['top3_overlap']}/3"
                     if method == "racing" else ""), flush=True)
    for name in args.models:
        rate = {(r["method"], r["adaptive_bn"]): r["candidates_per_s"]
                for r in rows if r["model"] == name}
        for best in ("population", "sliced", "racing"):
            print(f"{name}: {best} / naive = {rate[best, False] / rate['naive', False]:.2f}x, "
                  f"{best} / per-candidate = {rate[best, False] / rate['per_candidate', False]:.2f}x"
                  f" (no adaptive BN); with adaptive BN: {best} / naive without BN = "
                  f"{rate[best, True] / rate['naive', False]:.2f}x, / naive with BN = "
                  f"{rate[best, True] / rate['naive', True]:.2f}x, / per-candidate = "
                  f"{rate[best, True] / rate['per_candidate', True]:.2f}x")
    with open(args.out, "w") as f:
        json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
