"""Which predicts accuracy after recovery better: the search's score, or a short recovery?

Searches a trained benchmark model at half its FLOPs, takes the search's
best distinct plans (``SearchResult.ranked``) and for each measures (a) its
score before recovery (the evaluator's, on the search data), (b) its score
on the search data after a short recovery (``--short-steps`` optimizer steps,
distilled, as `BiLevelPruner(finalists=...)` races them) and (c) its test
accuracy after the full recovery (`BiLevelPruner`'s default recipe for
``--full-epochs`` epochs). Prints the Spearman rank correlation of (a) and of
(b) with (c). Rows are appended to ``--out`` as they finish; a rerun skips
the plans already measured. The ranked plans are kept beside ``--out``
(``<out>_plans_<model>_<dataset>.json``), so a rerun does not search again.

    python -m benchmarks.recovery_choice --model vgg_small --dataset digits --plans 16
"""

import argparse
import json
import math
import os
import time

import numpy as np


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="vgg_small")
    parser.add_argument("--dataset", default="digits", choices=("digits", "fashion_mnist"))
    parser.add_argument("--plans", type=int, default=16)
    parser.add_argument("--train-images", type=int, default=12000,
                        help="training images used for recovery (all of digits)")
    parser.add_argument("--short-steps", type=int, default=100)
    parser.add_argument("--full-epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="docs/benchmarks/recovery_choice.json")
    parser.add_argument("--report", action="store_true", help="only print the correlations")
    args = parser.parse_args(argv)
    rows = _load(args.out)
    if args.report:
        return report(rows)

    import keras

    import keras_biprune as kb
    from benchmarks.models import load_data, train_or_load

    model, info = train_or_load(args.model, dataset=args.dataset, verbose=0)
    (x_train, y_train), (x_test, y_test) = load_data(args.dataset)
    take = np.random.default_rng(args.seed).permutation(len(x_train))[:args.train_images]
    x_train, y_train = x_train[take], y_train[take]
    pruner = kb.BiLevelPruner(model, target_flops=0.5, random_state=args.seed, verbose=0,
                              search_kwargs={"generations": 4, "population_size": 8,
                                             "islands": 2})
    x_fit, y_fit, search_data = pruner._split(x_train, y_train, None)
    plans_path = f"{os.path.splitext(args.out)[0]}_plans_{args.model}_{args.dataset}.json"
    ranked = _ranked(pruner, search_data, plans_path, args.plans)
    per_epoch = math.ceil(len(x_fit) / args.batch_size)

    def recovered(plan, epochs, steps_per_epoch=None):
        slim = kb.apply_plan(model, plan)
        kb.training.recalibrate_batch_norm(slim, x_fit)
        kb.training.finetune(slim, model, x_fit, y_fit, teacher=model, schedule="cosine",
                             epochs=epochs, steps_per_epoch=steps_per_epoch,
                             batch_size=args.batch_size, shuffle_seed=args.seed, verbose=0)
        kb.training.recalibrate_batch_norm(slim, x_fit)
        return slim

    def accuracy(slim, x, y):
        return float(slim.evaluate(x, y, verbose=0, return_dict=True)["accuracy"])

    done = {(r["model"], r["dataset"], r["rank"]) for r in rows}
    for rank, solution in enumerate(ranked):
        if (args.model, args.dataset, rank) in done:
            continue
        started = time.perf_counter()
        short = recovered(solution["plan"], math.ceil(args.short_steps / per_epoch),
                          min(args.short_steps, per_epoch))
        full = recovered(solution["plan"], args.full_epochs)
        rows.append({"model": args.model, "dataset": args.dataset, "rank": rank,
                     "unpruned_accuracy": info["test_accuracy"], "cost": solution["cost"],
                     "score_before": solution["score"],
                     "score_short": accuracy(short, *search_data),
                     "accuracy_full": accuracy(full, x_test, y_test),
                     "short_steps": args.short_steps, "full_epochs": args.full_epochs,
                     "train_images": len(x_fit), "seconds": time.perf_counter() - started,
                     "keras": keras.__version__})
        print(json.dumps(rows[-1]))
        _save(rows, args.out)
    return report(rows)


def _ranked(pruner, search_data, path, plans):
    """``[{"plan", "cost", "score"}]``: the search's best distinct plans, searched once and
    kept in ``path``."""
    from keras_biprune import PruningPlan

    if not os.path.exists(path):
        started = time.perf_counter()
        pruner.search(*search_data)
        print(f"searched in {time.perf_counter() - started:.0f} s", flush=True)
        _save([{"plan": s.plan.to_json(), "cost": s.cost, "score": s.score}
               for s in pruner.search_result_.ranked], path)
    ranked = _load(path)[:plans]
    print(f"{len(ranked)} ranked plans from {path}", flush=True)
    return [{**r, "plan": PruningPlan.from_json(r["plan"])} for r in ranked]


def report(rows):
    """Prints and returns the two Spearman correlations per model and data set."""
    from scipy.stats import spearmanr

    out = {}
    for key in sorted({(r["model"], r["dataset"]) for r in rows}):
        group = [r for r in rows if (r["model"], r["dataset"]) == key]
        full = [r["accuracy_full"] for r in group]
        out[key] = {"plans": len(group),
                    "before": float(spearmanr([r["score_before"] for r in group], full)[0]),
                    "short": float(spearmanr([r["score_short"] for r in group], full)[0]),
                    "accuracy_full": (min(full), max(full))}
        print(f"{key[0]} ({key[1]}, {len(group)} plans): Spearman with accuracy after the full "
              f"recovery: score before {out[key]['before']:+.3f}, after a short recovery "
              f"{out[key]['short']:+.3f}; full-recovery accuracy {min(full):.4f}-{max(full):.4f}")
    return out


def _load(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return json.load(f)


def _save(rows, path):
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as f:
        json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
