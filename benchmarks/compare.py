"""Our searches against the classic criteria and Torch-Pruning, at the same FLOPs, same fine-tune.

For every model, FLOPs budget and seed, each method makes a plan that keeps
at most the budget's share of the MACs, with every group's width a multiple
of ``--round-to``. The plan is rebuilt (`keras_biprune.apply_plan`), scored on
the test set, fine-tuned with one recipe for all (Adam, learning rate
cosine-decayed from 5e-4 to 0, batch 128, ``--finetune-epochs``, no
distillation) and scored again; its CPU latency is timed against the
unpruned model's in alternating rounds (TensorFlow and TFLite, batch 1 and
64). Searches score plans on the last 5,000 *training* images (held out of
fine-tuning); the test set is never searched on.

``--recovery full`` gives every method the recovery `keras_biprune.BiLevelPruner`
runs instead (batch-norm re-estimation, the model's own optimizer with its
learning rate cosine-decayed to 0, distillation from the unpruned model,
``--finetune-epochs`` epochs, no early stopping: the test set is not looked
at), and ``pruner`` races its finalists first as ``fit`` does (its search
seconds include the race); its rows go to ``compare_recovery.json`` by default.

``--measure latency`` makes the budgets shares of the latency on
``--runtime`` at ``--latency-batch`` (predicted by a
`keras_biprune.evaluate.LatencyModel` built once per model on this machine)
instead of the FLOPs: the criteria's plans are repaired to it, ``pruner`` and
``bilevel-layer`` search under it, ``nsga2`` takes the best front plan whose
predicted latency fits, and ``pruner-flops`` is `BiLevelPruner`'s FLOPs
search at the FLOPs an L1 plan at that latency keeps: quality at equal
latency. Rows go to ``latency_quality.json`` by default, and
``<out>_widths.png`` shows the widths ``pruner`` and ``pruner-flops`` chose.

Methods — ours: ``pruner`` (`BiLevelPruner`'s own search with its defaults,
the plan ``fit`` would recover), ``pruner-layer`` (the same with
``channel_granularity="layer"``: its lower level cuts input channels), ``bilevel-layer``, ``bilevel-filter`` (sparse FLOPs),
``nsga2`` (one search per model and seed; each budget takes the best front
plan under it), ``blend`` (calibrated blend of L1/L2/FPGM/BN-scale, uniform
ratio); ``bilevel-layer+kd`` fine-tunes the bilevel-layer plan with
distillation. Baselines: ``l1``, ``l2``, ``fpgm``, ``apoz``, ``taylor``,
``random`` (uniform ratio), ``l1-global``, ``bn-slimming`` (one global
threshold on L1 norms / BN scales); ``torch-pruning-l1`` and
``torch-pruning-taylor``: the channels Torch-Pruning keeps on a PyTorch twin
that carries this model's weights (`benchmarks.torch_twins`, a process of its
own), as a plan of this model, fine-tuned and timed like every other row.

Rows are appended to ``<out>.json`` as they finish; a rerun skips rows that
are there, so a long run can be stopped and resumed. ``--report`` only
prints the tables and redraws the plots from that file.

    python -m benchmarks.compare --quick                 # digits, one budget, one seed: minutes
    python -m benchmarks.compare --models vgg_small --budgets 0.3 0.5 0.7 --seeds 0 1 2
"""

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

from benchmarks._options import add_size_options, resolve_sizes
from benchmarks._timing import against, timers

OURS = ("pruner", "pruner-flops", "pruner-layer", "bilevel-layer", "bilevel-filter", "nsga2",
        "blend")
UNIFORM = ("l1", "l2", "fpgm", "apoz", "taylor", "random")
GLOBAL = {"l1-global": "l1", "bn-slimming": "bn_scale"}
TORCH = ("torch-pruning-l1", "torch-pruning-taylor")
METHODS = (*OURS, "bilevel-layer+kd", *UNIFORM, *GLOBAL, *TORCH)
FULL = {"islands": 2, "population": 8, "generations": 8, "nsga2_population": 24,
        "nsga2_generations": 10, "eval_size": 1024, "finetune_epochs": 1, "latency_rounds": 5,
        "latency_runs": 20}
QUICK = {"islands": 1, "population": 4, "generations": 2, "nsga2_population": 8,
         "nsga2_generations": 2, "eval_size": 256, "finetune_epochs": 5, "latency_rounds": 2,
         "latency_runs": 5}
NAMES = {"vgg_small": "VGG-small", "resnet20": "ResNet-20", "mobilenetv2": "MobileNetV2-small"}
# The figure's key methods: ours, then the strongest baselines (label, colour, marker, line).
KEY = {"pruner": ("BiLevelPruner", "navy", "*", "-"),
       "pruner-flops": ("BiLevelPruner, FLOPs budget", "tab:pink", "P", "-"),
       "bilevel-layer": ("bi-level (layer)", "tab:blue", "o", "-"),
       "bilevel-filter": ("bi-level (filter)", "tab:purple", "D", "-"),
       "nsga2": ("NSGA-II", "tab:cyan", "v", "-"),
       "blend": ("blend", "tab:red", "o", "-"),
       "taylor": ("Taylor", "tab:olive", "s", "--"),
       "bn-slimming": ("BN-slimming", "tab:brown", "s", "--"),
       "torch-pruning-l1": ("Torch-Pruning L1", "tab:green", "^", ":"),
       "torch-pruning-taylor": ("Torch-Pruning Taylor", "tab:orange", "^", ":")}
SEARCH_IMAGES = {"fashion_mnist": 5000, "digits": 300, "cifar10": 5000, "cifar100": 5000}


def _parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=sorted(SEARCH_IMAGES),
                        help="fashion_mnist (default) and digits are here; cifar10 and "
                             "cifar100 load through keras.datasets when present")
    parser.add_argument("--models", nargs="+", default=None,
                        help="vgg_small, resnet20, mobilenetv2 (default: all three)")
    parser.add_argument("--budgets", type=float, nargs="+", default=None,
                        help="kept share of the MACs (default 0.7 0.5 0.3)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None)
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=None)
    parser.add_argument("--round-to", type=int, default=8, help="width step of every method")
    parser.add_argument("--finetune-images", type=int, default=None,
                        help="fine-tune on the first N training images (default: all but the "
                             "search images)")
    parser.add_argument("--test-images", type=int, default=None)
    parser.add_argument("--recovery", choices=("short", "full"), default="short",
                        help="short: Adam 5e-4, no distillation (the first protocol); full: "
                             "BiLevelPruner's recovery for every method")
    parser.add_argument("--measure", choices=("flops", "latency"), default="flops",
                        help="what the budgets are a share of")
    parser.add_argument("--runtime", choices=("tf", "tflite"), default="tf",
                        help="the runtime of --measure latency")
    parser.add_argument("--latency-batch", type=int, default=64,
                        help="the batch size of --measure latency")
    parser.add_argument("--report", action="store_true", help="only print tables and plot")
    add_size_options(parser, FULL, QUICK, "compare")
    args = parser.parse_args(argv)
    name = ("latency_quality" if args.measure == "latency" else
            "compare" if args.recovery == "short" else "compare_recovery")
    args = resolve_sizes(args, FULL, QUICK, name)
    quick = args.quick      # digits, vgg_small, budget 0.5, seed 0
    defaults = {"dataset": "digits" if quick else "fashion_mnist",
                "models": ["vgg_small"] if quick else ["vgg_small", "resnet20", "mobilenetv2"],
                "budgets": [0.5] if quick else [0.7, 0.5, 0.3], "seeds": [0],
                "methods": list(METHODS)}
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


def _key(row):
    return (row["model"], row["dataset"], row["budget"], row["seed"], row["method"])


class Bench:
    """One model on one data set: the trained model, the splits and the measurements."""

    def __init__(self, name, args):
        import keras

        import keras_biprune as kb
        from benchmarks.models import load_data, train_or_load

        self.name, self.args = name, args
        self.model, self.info = train_or_load(name, dataset=args.dataset, verbose=0)
        (x, y), (x_test, y_test) = load_data(args.dataset)
        n = SEARCH_IMAGES[args.dataset]
        self.x_ft, self.y_ft = x[:-n][:args.finetune_images], y[:-n][:args.finetune_images]
        self.search = (x[-n:], y[-n:])
        self.test = (x_test[:args.test_images], y_test[:args.test_images])
        self.graph = kb.trace(self.model)
        self.full = kb.cost(self.graph)
        self.base_accuracy = self.accuracy(self.model)
        self.loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        self.timers = {batch: timers(self.model, batch) for batch in (1, 64)}
        self.latency = (kb.evaluate.LatencyModel.build(
            self.model, args.runtime, args.latency_batch, round_to=args.round_to,
            graph=self.graph, verbose=0) if args.measure == "latency" else None)
        self._nsga2, self._plans, self._torch, self._races = {}, {}, {}, {}

    def budget(self, target):
        """The `keras_biprune.search.Budget` of ``target`` in ``--measure``."""
        from keras_biprune.search import Budget

        return Budget(self.graph, target, self.args.measure, latency_model=self.latency)

    def cost(self, plan):
        """The plan's kept share in ``--measure``: what the budgets bound."""
        import keras_biprune as kb

        if self.latency is not None:
            return self.latency.ratio(plan)
        return kb.cost(self.graph, plan).ratio_to(self.full).macs

    def accuracy(self, model):
        from keras_biprune.datasets import as_dataset

        x, y = self.test
        logits = model.predict(as_dataset(x, batch_size=500), verbose=0)
        return float(np.mean(np.argmax(logits, -1) == y))

    def evaluator(self, seed):
        import keras_biprune as kb

        return kb.Evaluator(self.model, self.search, metric="accuracy",
                            eval_size=self.args.eval_size, calibration_size=256,
                            adaptive_bn=True, random_state=seed)

    def plan(self, method, budget, seed):
        """``(plan, seconds)``: the method's plan under ``budget`` and the time it took."""
        import keras_biprune as kb
        from keras_biprune.search import BiLevelSearch, UpperEncoding, calibrate_blend

        args, graph, model = self.args, self.graph, self.model
        if method in TORCH:
            return self._torch_plan(method, budget, seed)
        start = time.perf_counter()
        if method in UNIFORM or method == "blend":
            if method == "blend":
                criterion = calibrate_blend(self.evaluator(seed), model, keep=budget ** 0.5,
                                            population_size=args.population,
                                            generations=args.generations, random_state=seed)
            elif method == "random":
                criterion = kb.criteria.Random(seed=seed)
            else:
                criterion = method
            data = self.search if kb.criteria.get(criterion).requires_data else None
            scores = kb.criteria.scores(graph, model, criterion, data)
            encoding = UpperEncoding(graph, scores, "mask", args.round_to)
            plan = encoding.decode(encoding.full(), self.budget(budget))
        elif method in GLOBAL:
            plan = global_plan(graph, kb.criteria.scores(graph, model, GLOBAL[method]),
                               self.budget(budget), args.round_to)
        elif method.startswith("pruner"):
            small = {"islands": args.islands, "population_size": args.population,
                     "generations": args.generations}
            targets = {"target_flops": budget}
            if method == "pruner-flops":        # the FLOPs an L1 plan at the latency keeps
                plan, _ = self.plan("l1", budget, seed)
                targets = {"target_flops": kb.cost(graph, plan).ratio_to(self.full).macs}
            elif self.latency is not None:
                targets = {"target_flops": None, "target_latency": budget,
                           "runtime": self.latency}
            pruner = kb.BiLevelPruner(
                model, random_state=seed, verbose=0, search_kwargs=small if args.quick else None,
                channel_granularity="layer" if method == "pruner-layer" else None, **targets)
            plan = pruner.search(*self.search).plan_
            if args.recovery == "full":                  # fit's choice
                plan = pruner.race(self.x_ft, self.y_ft, search_data=self.search,
                                   epochs=args.finetune_epochs, batch_size=128)
                self._races[method, budget, seed] = pruner.report_["race"]
        elif method.startswith("bilevel"):
            granularity = "filter" if method == "bilevel-filter" else "layer"
            plan = BiLevelSearch(
                self.evaluator(seed), target=budget, measure=args.measure,
                latency_model=self.latency, max_accuracy_drop=None,
                channel_granularity=granularity, islands=args.islands,
                population_size=args.population, generations=args.generations,
                round_to=args.round_to, random_state=seed, verbose=0).run().best.plan
        else:
            front, seconds = self._front(seed)
            costs = [self.cost(s.plan) for s in front]
            under = [s for s, c in zip(front, costs) if c <= budget + 1e-9]
            if not under:
                raise RuntimeError(f"The NSGA-II front has no plan under {budget}: "
                                   f"costs {min(costs):.3f}-{max(costs):.3f}")
            return max(under, key=lambda s: s.score).plan, seconds
        return plan, time.perf_counter() - start

    def _front(self, seed):
        """The NSGA-II front of a seed (searched once, for every budget, on ``--measure``) and
        its wall time."""
        from keras_biprune.search import NSGA2Search

        if seed not in self._nsga2:
            start = time.perf_counter()
            front = NSGA2Search(self.evaluator(seed), max_accuracy_drop=0.9,
                                measure=self.args.measure, latency_model=self.latency,
                                population_size=self.args.nsga2_population,
                                generations=self.args.nsga2_generations,
                                round_to=self.args.round_to, random_state=seed,
                                verbose=0).run().front
            self._nsga2[seed] = front, time.perf_counter() - start
        return self._nsga2[seed]

    def _torch_plan(self, method, budget, seed):
        """Torch-Pruning's plan and search time (its twin is pruned once per seed for every budget)."""
        if (method, budget, seed) not in self._torch:
            for r in _torch_plans(self.name, self.model, self.test[0][:64], self.args, seed):
                plan = plan_from_kept(self.graph, r["kept"])
                self._torch[f"torch-pruning-{r['importance']}", r["budget"], seed] = (
                    plan, r["search_seconds"])
        return self._torch[method, budget, seed]

    def row(self, method, budget, seed):
        import keras

        import keras_biprune as kb
        from keras_biprune.pruner import _kernel_nonzero, _layer_at

        key = (method.removesuffix("+kd"), budget, seed)
        if key not in self._plans:
            self._plans[key] = self.plan(*key)
        plan, search_seconds = self._plans[key]
        slim = kb.apply_plan(self.model, plan)
        before = self.accuracy(slim)
        recalibrated = kb.apply_plan(self.model, plan)
        kb.training.recalibrate_batch_norm(recalibrated, self.x_ft)
        before_bn = self.accuracy(recalibrated)
        steps = self.args.finetune_epochs * -(-len(self.x_ft) // 128)
        if self.args.recovery == "full":            # BiLevelPruner's recovery, for every method
            recipe = {"compile_kwargs": None, "schedule": "cosine", "teacher": self.model}
            kb.training.recalibrate_batch_norm(slim, self.x_ft)
        else:
            recipe = {"compile_kwargs": {
                "optimizer": keras.optimizers.Adam(
                    keras.optimizers.schedules.CosineDecay(5e-4, steps)),
                "loss": self.loss, "metrics": ["accuracy"]},
                "teacher": self.model if method.endswith("+kd") else None}
        masks = {path: _kernel_nonzero(_layer_at(slim, path)) for path in plan.kernels}
        start = time.perf_counter()
        kb.training.finetune(slim, self.model, self.x_ft, self.y_ft,
                             epochs=self.args.finetune_epochs, batch_size=128, verbose=0,
                             kernel_masks=masks, shuffle_seed=seed, **recipe)
        finetune_seconds = time.perf_counter() - start
        kb.training.recalibrate_batch_norm(slim, self.x_ft)
        ratio = kb.cost(self.graph, plan).ratio_to(self.full)
        widths = {g: len(k) for g, k in plan.keep.items()}
        return {"model": self.name, "dataset": self.args.dataset, "budget": budget, "seed": seed,
                "method": method, "measure": self.args.measure,
                "predicted_latency": None if self.latency is None else self.cost(plan),
                "unpruned_accuracy": self.base_accuracy,
                "accuracy_before": before, "accuracy_before_bn": before_bn,
                "accuracy_after": self.accuracy(slim),
                "flops": ratio.macs, "sparse_flops": ratio.sparse_macs, "params": ratio.params,
                "search_seconds": search_seconds, "finetune_seconds": finetune_seconds,
                "latency_ms": against(self.timers, slim, self.args.latency_rounds,
                                      self.args.latency_runs), "widths": widths,
                "round_to": self.args.round_to, "recovery": self.args.recovery,
                "race": self._races.get(key), "plan": plan.get_config()}

def global_plan(graph, scores, budget, round_to):
    """One threshold over every prunable channel's raw score, lowered until ``budget`` fits.

    Keeps the channels scoring at or above the threshold (at least one per
    group), each group's count rounded to ``round_to`` by rank.
    """
    from keras_biprune.search import UpperEncoding

    encoding = UpperEncoding(graph, scores, "mask", round_to)
    values = np.sort(np.concatenate([np.asarray(scores[g.id], float)
                                     for g in graph.prunable_groups]))

    def plan_at(factor):
        threshold = values[min(len(values) - 1, int((1 - factor) * len(values)))]
        genome = np.concatenate([(np.asarray(scores[g.id]) >= threshold).astype(np.int64)
                                 for g in graph.prunable_groups])
        return encoding.decode(genome)

    return budget.fit(plan_at)


def plan_from_kept(graph, kept):
    """The plan keeping, in every group, the channels ``kept`` names for its members.

    ``kept`` maps a layer to the indices of the output channels it keeps (as
    `benchmarks.torch_twins.kept_channels` returns); every member of a group
    that it names must agree. Groups it does not name are kept whole.
    """
    import keras_biprune as kb

    keep = {}
    for group in graph.prunable_groups:
        choices = {tuple(np.unique(m.index_map[kept[m.layer]]).tolist())
                   for m in group.members if m.role == "output 0" and m.layer in kept}
        if len(choices) > 1:
            raise RuntimeError(f"Torch-Pruning kept different channels in the members of group "
                               f"{group.id!r}: {sorted(choices)}")
        if choices:
            keep[group.id] = list(choices.pop())
    return kb.PruningPlan(keep)


def _torch_plans(name, model, x, args, seed):
    """Runs `benchmarks.torch_twins` on ``model``'s weights (checked on images ``x``): its
    plans of every budget."""
    from keras_biprune.datasets import as_dataset

    with tempfile.TemporaryDirectory() as tmp:
        weights, out = os.path.join(tmp, "keras.npz"), os.path.join(tmp, "plans.json")
        arrays = {f"{layer.name}:{i}": w for layer in model.layers
                  for i, w in enumerate(layer.get_weights())}
        np.savez(weights, images=x, logits=model.predict(as_dataset(x, batch_size=64), verbose=0),
                 **arrays)
        command = [sys.executable, "-m", "benchmarks.torch_twins", "--model", name,
                   "--weights", weights, "--dataset", args.dataset, "--budgets",
                   *map(str, args.budgets), "--seed", str(seed), "--round-to",
                   str(args.round_to), "--search-images", str(SEARCH_IMAGES[args.dataset]),
                   "--out", out]
        subprocess.run(command, check=True)
        with open(out) as f:
            return json.load(f)


def _save(result, path):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(result, f, indent=1)
    os.replace(tmp, path)


def main(argv=None):
    args = _parse(argv)
    path = args.out + ".json"
    result = {"rows": []}
    if os.path.exists(path):
        with open(path) as f:
            result = json.load(f)
    if not args.report:
        run(args, result, path)
    report(result["rows"])
    plot(result["rows"], args.out)
    if args.measure == "latency":
        plot_widths(result["rows"], args.out)


def run(args, result, path):
    command = " ".join(["python -m benchmarks.compare", *sys.argv[1:]])
    commit = subprocess.run(["git", "describe", "--always", "--dirty"], check=False,
                            capture_output=True, text=True).stdout.strip()
    result.setdefault("commands", []).append({"command": command, "commit": commit,
                                              "settings": vars(args)})
    done = {_key(r) for r in result["rows"]}
    torch_available = _torch_available() if set(TORCH) & set(args.methods) else False
    for name in args.models:
        bench = None
        for seed in args.seeds:
            for budget in args.budgets:
                for method in args.methods:
                    key = (name, args.dataset, budget, seed, method)
                    if key in done or (method in TORCH and not torch_available):
                        continue
                    bench = bench or Bench(name, args)
                    r = bench.row(method, budget, seed)
                    result["rows"].append(r)
                    done.add(key)
                    _save(result, path)
                    print(f"{name} {budget:.2f} seed {seed} {method:<17} FLOPs {_flops(r):.3f} "
                          f"acc {r['accuracy_before']:.4f} -> {r['accuracy_after']:.4f} "
                          f"search {r['search_seconds']:.0f} s", flush=True)


def _torch_available():
    if not (importlib.util.find_spec("torch") and importlib.util.find_spec("torch_pruning")):
        print("torch / torch-pruning not installed: pip install -e '.[bench]'; "
              "Torch-Pruning rows skipped", flush=True)
        return False
    return True


def _flops(row):
    """The kept share of MACs the budget bounds: sparse ones for kernel-masked plans."""
    return row["sparse_flops"] if row["method"] == "bilevel-filter" else row["flops"]


def _groups(rows):
    table = {}
    for r in rows:
        table.setdefault((r["model"], r["dataset"], r["budget"], r["method"]), []).append(r)
    return table


def _mean_std(values):
    values = np.asarray(values, float)
    return (f"{values.mean():.4f}" if len(values) == 1
            else f"{values.mean():.4f}\u00a0±\u00a0{values.std(ddof=1):.4f}")  # one line in a cell


def _models(table):
    """(model, dataset) pairs in the page's order: VGG-small, ResNet-20, MobileNetV2-small."""
    order = {name: i for i, name in enumerate(NAMES)}
    return sorted({(k[0], k[1]) for k in table}, key=lambda m: (order.get(m[0], len(order)), m))


def report(rows):
    """Markdown tables per model, each narrow enough for a documentation page.

    Accuracy (budget, method, FLOPs, params, accuracy before and after
    fine-tuning, mean ± std over seeds), then the same rows' seeds, latency
    ratios and search seconds.
    """
    table = _groups(rows)
    for model, dataset in _models(table):
        keys = sorted(k for k in table if k[:2] == (model, dataset))
        print(f"\n### {NAMES.get(model, model)} ({dataset})\n")
        print("Accuracy (test images; FLOPs and params: kept share of the unpruned model):\n")
        print("| budget | method | FLOPs | params | acc. before FT (BN re-est.) | acc. after FT |")
        print("|---|---|---|---|---|---|")
        for key in keys:
            group = table[key]
            flops = f"{np.mean([_flops(r) for r in group]):.3f}"
            if key[3] == "bilevel-filter":      # sparse MACs meet the budget; dense run
                flops += f" ({np.mean([r['flops'] for r in group]):.3f} dense)"
            print(f"| {key[2]:.2f} | {key[3]} | {flops} "
                  f"| {np.mean([r['params'] for r in group]):.3f} "
                  f"| {_mean_std([r['accuracy_before_bn'] for r in group])} "
                  f"| {_mean_std([r['accuracy_after'] for r in group])} |")
        unpruned = next(r["unpruned_accuracy"] for r in rows
                        if (r["model"], r["dataset"]) == (model, dataset))
        print(f"\nunpruned test accuracy: {unpruned:.4f}")
        print("\nSeeds, speed (latency: pruned / unpruned, mean over seeds) and search time:\n")
        print("| budget | method | seeds | TF b1 / b64 | TFLite b1 / b64 | search s |")
        print("|---|---|---|---|---|---|")
        for key in keys:
            group = table[key]
            lat = {name: np.mean([r["latency_ms"][name][1] / r["latency_ms"][name][0]
                                  for r in group]) for name in group[0]["latency_ms"]}
            print(f"| {key[2]:.2f} | {key[3]} | {len(group)} "
                  f"| {lat['tf_b1']:.2f} / {lat['tf_b64']:.2f} "
                  f"| {lat['tflite_b1']:.2f} / {lat['tflite_b64']:.2f} "
                  f"| {np.mean([r['search_seconds'] for r in group]):.0f} |")


def _dense_flops(row):
    """Dense MACs kept: what a dense kernel computes, for every method alike."""
    return row["flops"]


def plot(rows, out):
    """``<out>_accuracy.png`` and ``<out>_latency.png``, readable at a page's width.

    Accuracy: test accuracy after fine-tuning against the *dense* FLOPs kept,
    one panel per model, mean over seeds with ± std bars; our four methods
    and the strongest baselines (`KEY`) in their own colours and markers,
    every other method as one faint grey line, the unpruned accuracy dashed.
    ``bilevel-filter`` sits at its dense MACs (its budget counts sparse
    ones). Latency: latency ratio against FLOPs ratio over every row (but
    ``bilevel-filter``), TF and TFLite, batch 1 and 64.
    """
    if not rows:
        return
    import matplotlib
    from matplotlib.figure import Figure

    table = _groups(rows)
    models = _models(table)
    style = {"font.size": 12, "axes.titlesize": 13, "legend.fontsize": 12}
    with matplotlib.rc_context(style):
        fig = Figure(figsize=(2.8 * len(models) + 0.5, 5.2), layout="constrained")
        axes = fig.subplots(1, len(models), squeeze=False)[0]
        faint = None
        for ax, (model, dataset) in zip(axes, models):
            for method in sorted({k[3] for k in table if k[:2] == (model, dataset)}):
                points = sorted(
                    (np.mean([_dense_flops(r) for r in g]),
                     np.mean([r["accuracy_after"] for r in g]),
                     np.std([r["accuracy_after"] for r in g], ddof=1) if len(g) > 1 else 0.0)
                    for k, g in table.items() if k[:2] == (model, dataset) and k[3] == method)
                x, y, e = map(np.array, zip(*points))
                if method in KEY:
                    label, color, marker, line = KEY[method]
                    ax.errorbar(x, y, yerr=e, label=label, color=color, marker=marker,
                                linestyle=line, linewidth=1.6, markersize=6, capsize=2, zorder=3)
                else:
                    faint = ax.plot(x, y, color="0.75", linewidth=0.9, marker=".",
                                    markersize=4, zorder=1, label="other criteria")[0]
            unpruned = next(r["unpruned_accuracy"] for r in rows
                            if (r["model"], r["dataset"]) == (model, dataset))
            ax.axhline(unpruned, color="black", linestyle="--", linewidth=0.9)
            ax.text(0.03, unpruned, f"unpruned {unpruned:.3f}", transform=ax.get_yaxis_transform(),
                    va="top", fontsize=10)
            ax.set(title=NAMES.get(model, model), xlabel="FLOPs kept (dense MACs)")
            ax.grid(alpha=0.3)
        axes[0].set_ylabel(f"test accuracy after fine-tuning ({rows[0]['dataset']})")
        handles, labels = [], []
        for ax in axes:
            for handle, label in zip(*ax.get_legend_handles_labels()):
                if label not in labels and label != "other criteria":
                    handles.append(handle)
                    labels.append(label)
        order = [label for label, *_ in KEY.values()]
        pairs = sorted(zip(labels, handles), key=lambda p: order.index(p[0]))
        labels, handles = [p[0] for p in pairs], [p[1] for p in pairs]
        if faint is not None:
            handles.append(faint)
            labels.append("other methods")
        fig.legend(handles, labels, loc="outside lower center", ncol=3, frameon=False,
                   columnspacing=1.2, handlelength=2.4)
        fig.savefig(out + "_accuracy.png", dpi=110)

        fig = Figure(figsize=(8.6, 4.0), layout="constrained")
        for ax, batch in zip(fig.subplots(1, 2, sharey=True), (1, 64)):
            for engine, marker, color in (("tf", "o", "tab:blue"), ("tflite", "^", "tab:orange")):
                name = f"{engine}_b{batch}"
                pts = [(r["flops"], r["latency_ms"][name][1] / r["latency_ms"][name][0])
                       for r in rows
                       if name in r["latency_ms"] and r["method"] != "bilevel-filter"]
                if pts:
                    ax.scatter(*zip(*pts), marker=marker, color=color, s=18, alpha=0.6,
                               label="TensorFlow" if engine == "tf" else "TFLite")
            grid = np.linspace(0, 1, 11)
            ax.plot(grid, grid, "k--", linewidth=0.9, label="latency = FLOPs")
            ax.plot(grid, 1.2 * grid, "k:", linewidth=0.9, label="goal: 1.2 × FLOPs")
            ax.set(title=f"batch {batch}", xlabel="FLOPs kept (pruned / unpruned)",
                   xlim=(0, 1.05), ylim=(0, 1.5))
            ax.grid(alpha=0.3)
        fig.axes[0].set_ylabel("latency (pruned / unpruned)")
        fig.axes[1].legend(loc="upper left")
        fig.savefig(out + "_latency.png", dpi=110)


def plot_widths(rows, out):
    """``<out>_widths.png``: per model and budget, the width of every channel group that
    ``pruner`` (latency budget) and ``pruner-flops`` (FLOPs budget) kept, as a share of the
    original width (seed 0)."""
    import matplotlib
    from matplotlib.figure import Figure

    pairs = sorted({(r["model"], r["budget"]) for r in rows if r["method"] == "pruner"
                    and r["seed"] == 0})
    if not pairs:
        return
    with matplotlib.rc_context({"font.size": 11}):
        fig = Figure(figsize=(9.0, 2.8 * len(pairs)), layout="constrained")
        for ax, (model, budget) in zip(fig.subplots(len(pairs), 1, squeeze=False)[:, 0], pairs):
            kept = {r["method"]: r for r in rows if (r["model"], r["budget"], r["seed"])
                    == (model, budget, 0) and r["method"] in ("pruner", "pruner-flops")}
            full = _full_widths(model)
            groups = list(full)
            x = np.arange(len(groups))
            for shift, method in ((-0.2, "pruner"), (0.2, "pruner-flops")):
                if method in kept:
                    r = kept[method]
                    share = [r["widths"].get(g, full[g]) / full[g] for g in groups]
                    label, color, *_ = KEY[method]
                    measured = r["latency_ms"]["tf_b64"]
                    ax.bar(x + shift, share, 0.4, color=color,
                           label=f"{label}: FLOPs {r['flops']:.2f}, TF b64 latency "
                                 f"{measured[1] / measured[0]:.2f}")
            ax.set_xticks(x, groups, rotation=60, ha="right", fontsize=8)
            ax.set(ylabel="width kept", ylim=(0, 1.5), yticks=[0, 0.25, 0.5, 0.75, 1],
                   title=f"{NAMES.get(model, model)}, latency budget {budget:.2f}")
            ax.legend(loc="upper right", fontsize=9)
        fig.savefig(out + "_widths.png", dpi=110)


def _full_widths(model):
    """``{group id: width}`` of a benchmark model (`benchmarks.models.MODELS`), unpruned."""
    import keras_biprune as kb
    from benchmarks.models import MODELS

    return {g.id: g.size for g in kb.trace(MODELS[model]()).prunable_groups}


if __name__ == "__main__":
    main()
