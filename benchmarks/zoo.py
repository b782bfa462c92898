"""How much of each real-world model prunes: the table of issue 18.

For every model of ``tests/keras_io_zoo.py`` (building code after keras-io
examples): the share of its parameters in prunable channel groups (the share
a plan keeping one channel per prunable group removes), the largest relative
difference of a keep-all rebuild against the original model and of pruned
models (random plans at 0.3 and 0.5) against their masked models, what stays
frozen and why, and the trace and rebuild times. Run from the repository root:

```
TF_CPP_MIN_LOG_LEVEL=2 python benchmarks/zoo.py [--models NAME ...]
```
"""

import argparse
import collections
import os
import sys
import time

import keras
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "tests"))

from keras_io_zoo import KERAS_IO_ZOO, sample_input
from zoo import randomize_weights

import keras_biprune as kb


def _outputs(model, x):
    return [np.asarray(t) for t in keras.tree.flatten(model(x, training=False))]


def _relative_difference(a_model, b_model, x):
    worst = 0.0
    for a, b in zip(_outputs(a_model, x), _outputs(b_model, x)):
        worst = max(worst, float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-12)))
    return worst


def _frozen(graph):
    """The reasons groups stay frozen, without the layer paths, most frequent first."""
    reasons = collections.Counter(
        part.split(": ", 1)[-1]
        for g in graph.groups if not g.prunable
        for part in dict.fromkeys(g.reason.split("; ")))
    return "; ".join(f"{n}× {r[:60]}" for r, n in reasons.most_common(3))


def _error(error):
    return f"FAILS: {type(error).__name__}: {str(error).splitlines()[0][:90]}"


def row(name):
    model = randomize_weights(KERAS_IO_ZOO[name]())
    x = sample_input(model)
    params = model.count_params()
    result = {"model": name, "params": params}
    start = time.perf_counter()
    try:
        graph = kb.trace(model)
    except Exception as error:  # noqa: BLE001 - the table reports every failure
        return {**result, "frozen": _error(error)}
    result["trace_s"] = time.perf_counter() - start
    least = kb.PruningPlan({g.id: [0] for g in graph.prunable_groups}, signature=graph.signature)
    result["share"] = 1 - kb.count_params(graph, least) / params
    result["frozen"] = _frozen(graph)
    try:
        start = time.perf_counter()
        same = kb.apply_plan(model, kb.PruningPlan.keep_all(graph))
        result["rebuild_s"] = time.perf_counter() - start
        result["keep_all"] = _relative_difference(same, model, x)
        result["pruned"] = max(
            _relative_difference(kb.apply_plan(model, plan), kb.masked_model(model, plan), x)
            for plan in (kb.PruningPlan.random(graph, ratio=r, seed=0) for r in (0.3, 0.5)))
    except Exception as error:  # noqa: BLE001 - the table reports every failure
        result["frozen"] = _error(error)
    return result


def _cell(value, fmt):
    return "—" if value is None else format(value, fmt)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="*", default=sorted(KERAS_IO_ZOO))
    args = parser.parse_args(argv)
    print("| model | params | prunable share | keep-all vs original | slim vs masked "
          "| trace s | rebuild s | frozen (groups × reason) |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for name in args.models:
        r = row(name)
        print(f"| {name} | {r['params']:,} | {_cell(r.get('share'), '.0%')} "
              f"| {_cell(r.get('keep_all'), '.1e')} | {_cell(r.get('pruned'), '.1e')} "
              f"| {_cell(r.get('trace_s'), '.2f')} | {_cell(r.get('rebuild_s'), '.2f')} "
              f"| {r['frozen'] or 'nothing'} |", flush=True)


if __name__ == "__main__":
    main()
