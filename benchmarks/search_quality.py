"""Does the search beat simple baselines before fine-tuning?

On a trained CNN (Fashion-MNIST), scored by the evaluator (adaptive BN) on
held-out *training* images, checks two claims:

1. at the FLOPs target, the bi-level search's best plan scores higher than
   the best of as many random plans (random channels, repaired to the
   target) and than the L1-uniform plan;
2. the NSGA-II front dominates the L1-uniform plans at several FLOPs budgets:
   for each, some front plan costs at most as much and scores at least as high.

Every reported plan is also rebuilt with ``apply_plan`` and scored on test
images the search never saw, as is and with its BN statistics re-estimated.

    python -m benchmarks.search_quality [--quick] [--target 0.5] [--budgets 0.3 0.5 0.7]
"""

import argparse
import json
import subprocess
import sys
import time

import numpy as np

from benchmarks._options import add_size_options, resolve_sizes

FULL = {"search_images": 5000, "eval_size": 1024, "calibration_size": 256, "islands": 2,
        "population": 8, "generations": 15, "lower_population": 4, "lower_generations": 1,
        "nsga2_population": 32, "nsga2_generations": 15}
QUICK = {"search_images": 1000, "eval_size": 256, "calibration_size": 128, "islands": 1,
         "population": 4, "generations": 2, "lower_population": 2, "lower_generations": 1,
         "nsga2_population": 8, "nsga2_generations": 2}
CHUNK = 50


def _parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="vgg_small")
    parser.add_argument("--target", type=float, default=0.5, help="FLOPs share of claim 1")
    parser.add_argument("--budgets", type=float, nargs="+", default=[0.3, 0.5, 0.7],
                        help="FLOPs shares of claim 2")
    parser.add_argument("--tolerance", type=float, default=1e-3,
                        help="slack on a front plan's cost in claim 2")
    parser.add_argument("--random-keep", type=float, nargs=2, default=[0.3, 1.0],
                        help="range of a random genome's keep probability")
    parser.add_argument("--upper-slack", type=float, default=0.25,
                        help="BiLevelSearch's upper_slack: how far over the target the upper level "
                             "may go before the lower level's input cuts")
    parser.add_argument("--nsga2-max-drop", type=float, default=0.8,
                        help="NSGA-II's max_accuracy_drop (loose: the whole front is feasible)")
    parser.add_argument("--test-images", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    add_size_options(parser, FULL, QUICK, "search_quality")
    return resolve_sizes(parser.parse_args(argv), FULL, QUICK, "search_quality")


def main(argv=None):
    args = _parse(argv)
    command = " ".join(["python -m benchmarks.search_quality",
                        *(sys.argv[1:] if argv is None else argv)])
    commit = subprocess.run(["git", "describe", "--always", "--dirty"], check=False,
                            capture_output=True, text=True).stdout.strip()

    import keras

    import keras_biprune as kb
    from benchmarks.evaluator_fidelity import _recalibrate_batch_norm
    from benchmarks.models import train_or_load
    from keras_biprune.datasets import as_dataset, load_fashion_mnist
    from keras_biprune.search import BiLevelSearch, Budget, NSGA2Search, UpperEncoding

    start = time.perf_counter()
    model, info = train_or_load(args.model, verbose=0)
    (x_train, y_train), (x_test, y_test) = load_fashion_mnist()
    search_data = (x_train[-args.search_images:], y_train[-args.search_images:])
    evaluator = kb.Evaluator(model, search_data, metric="accuracy", eval_size=args.eval_size,
                             calibration_size=args.calibration_size, adaptive_bn=True,
                             random_state=args.seed)
    graph = evaluator.graph
    budget = Budget(graph, args.target, "flops")
    test = as_dataset(x_test[:args.test_images], y_test[:args.test_images], batch_size=256)
    seconds = {}

    def test_accuracy(plan):
        """Test accuracy of the rebuilt model: as is, and with BN re-estimated like the evaluator."""
        slim = kb.apply_plan(model, plan)
        slim.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                     metrics=["accuracy"])
        plain = slim.evaluate(test, verbose=0, return_dict=True)["accuracy"]
        _recalibrate_batch_norm(slim, evaluator.x_calibration[0])
        return plain, slim.evaluate(test, verbose=0, return_dict=True)["accuracy"]

    rows = []

    def row(name, plan, score):
        plain, adapted = test_accuracy(plan)
        rows.append({"plan": name, "flops": budget.ratio(plan),
                     "score": float(score), "test": plain, "test_bn": adapted})
        return rows[-1]

    row("unpruned", kb.PruningPlan.keep_all(graph), evaluator.baseline)
    l1 = UpperEncoding(graph, kb.criteria.scores(graph, model, "l1"), "mask")
    levels = sorted(set(args.budgets) | {args.target})
    uniform = [l1.decode(l1.full(), Budget(graph, f, "flops")) for f in levels]
    uniform = {f: row(f"L1-uniform @{f:.2f}", plan, score) for f, plan, score in
               zip(levels, uniform, evaluator.evaluate(uniform))}
    if any(uniform[f]["flops"] > f for f in levels):
        raise RuntimeError(f"An L1-uniform plan exceeds its budget: {uniform}")

    tick = time.perf_counter()
    bilevel = BiLevelSearch(
        evaluator, target=args.target, max_accuracy_drop=None, criterion="l1",
        islands=args.islands, population_size=args.population, generations=args.generations,
        lower_population_size=args.lower_population, lower_generations=args.lower_generations,
        upper_slack=args.upper_slack, random_state=args.seed, verbose=1).run()
    seconds["bilevel"] = time.perf_counter() - tick
    best = row(f"bi-level best @{args.target:.2f}", bilevel.best.plan, bilevel.best.score)

    tick = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    plans = []
    for s in range(bilevel.n_evaluations):
        encoding = UpperEncoding(graph, kb.criteria.scores(graph, model, kb.criteria.Random(seed=s)),
                                 "mask")
        genome = rng.random(encoding.n_genes) < rng.uniform(*args.random_keep)
        plans.append(encoding.decode(genome.astype(np.int64), budget))
    random_scores = []
    for i in range(0, len(plans), CHUNK):
        random_scores.extend(evaluator.evaluate(plans[i:i + CHUNK]))
        print(f"random plans scored: {len(random_scores)}/{len(plans)}", flush=True)
    random_costs = [budget.ratio(p) for p in plans]
    seconds["random"] = time.perf_counter() - tick
    top = int(np.argmax(random_scores))
    lucky = row(f"best of {len(plans)} random @{args.target:.2f}", plans[top], random_scores[top])

    tick = time.perf_counter()
    nsga2 = NSGA2Search(evaluator, max_accuracy_drop=args.nsga2_max_drop, criterion="l1",
                        population_size=args.nsga2_population,
                        generations=args.nsga2_generations, random_state=args.seed,
                        verbose=1).run()
    seconds["nsga2"] = time.perf_counter() - tick
    claims = {"bilevel_beats_baselines": bool(
        best["score"] > max(lucky["score"], uniform[args.target]["score"])), "front_dominates": {}}
    for f in args.budgets:
        within = [s for s in nsga2.front if s.cost <= f + args.tolerance]
        match = row(f"NSGA-II front, cost <= {f:.2f}", within[-1].plan,
                    within[-1].score) if within else None
        claims["front_dominates"][f] = bool(match and match["score"] >= uniform[f]["score"])
    seconds["total"] = time.perf_counter() - start

    print(f"\n{args.model} (test accuracy {info['test_accuracy']:.4f}); score = evaluator accuracy "
          f"(adaptive BN) on {args.eval_size} held-out training images; test = apply_plan on "
          f"{args.test_images} test images, as is / BN re-estimated on the evaluator's "
          f"{args.calibration_size} calibration images")
    print(f"{'plan':<32} {'FLOPs':>6} {'score':>7} {'test':>7} {'test+BN':>8}")
    for r in rows:
        print(f"{r['plan']:<32} {r['flops']:6.3f} {r['score']:7.4f} {r['test']:7.4f} "
              f"{r['test_bn']:8.4f}")
    print(f"random plans: FLOPs median {np.median(random_costs):.3f}, "
          f"{np.mean(np.array(random_costs) >= args.target - 0.02):.0%} within 0.02 of the target")
    print(f"NSGA-II front: {len(nsga2.front)} plans, FLOPs {nsga2.front.costs.min():.3f}"
          f"-{nsga2.front.costs.max():.3f}")
    verdict = {True: "HOLDS", False: "FAILS"}
    print(f"claim 1 (bi-level > best random and L1-uniform @{args.target:.2f}): "
          f"{verdict[claims['bilevel_beats_baselines']]}")
    for f, held in claims["front_dominates"].items():
        print(f"claim 2 (NSGA-II front dominates L1-uniform @{f:.2f}): {verdict[held]}")
    print(f"evaluations: bi-level {bilevel.n_evaluations}, random {len(plans)}, "
          f"NSGA-II {nsga2.n_evaluations}; wall time (s): "
          + ", ".join(f"{k} {v:.0f}" for k, v in seconds.items()))

    result = {"command": command, "commit": commit, "settings": vars(args), "model": info,
              "baseline_score": evaluator.baseline, "rows": rows, "claims": claims,
              "seconds": seconds, "evaluations": {"bilevel": bilevel.n_evaluations,
                                                  "random": len(plans),
                                                  "nsga2": nsga2.n_evaluations},
              "random": {"flops": random_costs, "score": [float(s) for s in random_scores]},
              "front": {"flops": nsga2.front.costs.tolist(), "score": nsga2.front.scores.tolist()},
              "bilevel_best_plan": bilevel.best.plan.get_config(),
              "bilevel_history": bilevel.history, "nsga2_history": nsga2.history}
    with open(args.out + ".json", "w") as f:
        json.dump(result, f, indent=1)
    _plot(result, args.out + ".png")


def _plot(result, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4.5))
    axis.scatter(result["random"]["flops"], result["random"]["score"], s=8, c="0.7",
                 label=f"random plans ({result['evaluations']['random']})")
    axis.step(result["front"]["flops"], result["front"]["score"], where="post", marker=".",
              label=f"NSGA-II front ({len(result['front']['flops'])})")
    uniform = [r for r in result["rows"] if r["plan"].startswith("L1-uniform")]
    axis.scatter([r["flops"] for r in uniform], [r["score"] for r in uniform], marker="s",
                 c="tab:red", zorder=3, label="L1-uniform")
    best = next(r for r in result["rows"] if r["plan"].startswith("bi-level"))
    axis.scatter([best["flops"]], [best["score"]], marker="*", s=200, c="tab:green", zorder=4,
                 label="bi-level best")
    axis.axhline(result["baseline_score"], c="0.4", ls=":", label="unpruned")
    for f in result["settings"]["budgets"]:
        axis.axvline(f, c="0.85", lw=0.8)
    axis.set_xlabel("FLOPs kept (share of the unpruned model)")
    axis.set_ylabel("evaluator accuracy (adaptive BN), before fine-tuning")
    axis.set_title(f"{result['model']['name']}: search quality on Fashion-MNIST")
    axis.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)


if __name__ == "__main__":
    main()
