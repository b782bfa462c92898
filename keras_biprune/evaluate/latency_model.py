"""A latency model of a runtime on this machine: a model's latency under any plan, predicted.

The model is cut into *blocks*: an operation followed by the chain of
per-channel operations that only it feeds (conv → batch norm → ReLU, add →
ReLU), which is what a runtime fuses into one kernel. Each block is rebuilt
alone at a grid of channel widths (the widths a search can choose, in
``round_to`` steps, at most ``max_widths`` of them per axis) and timed once;
between measured widths the latency is interpolated (bilinearly for a block
whose input and output widths are free). A block's widths are timed together
with an empty model, call by call in turn, so the per-call overhead taken
out of them and their differences are measured under the same conditions
(five builds of the demo's tables predicted one plan at 0.633-0.679 of the
latency; timed one by one, at 0.604-0.687). A width that is not a multiple of
``lanes`` costs what the next multiple costs: TensorFlow's and XNNPACK's
float kernels work on a vector of channels at a time and pad the rest. The
vector is the machine's: on an AVX-512 machine TensorFlow's conv at 20, 24
or 28 channels was as slow as at 32 and at 8 or 12 as fast as at 16 (16
lanes); on an AVX2 one a conv at 17 channels was about as slow as at 20
(4 lanes: padding to 8 mispredicted ResNet-20's 12-wide layers there).
``lanes="auto"`` measures it once per machine, runtime and batch size
(`measure_lanes`, on one conv shape), and the tables are measured at widths
in steps of ``max(round_to, lanes)``; the default stays 4 (see `build`).
A layer that reads a subset of its input channels (the lower level's
masks, ``plan.inputs``) is priced as reading all of them, plus the gather
that picks the subset (`keras_biprune.layers.ChannelSelect`, timed per
block at half its input's channels and priced in proportion to the
channels it keeps). The gather cost TensorFlow more than the narrower
kernel saved (the demo's model at batch 64: 0.87 of the unpruned latency
with its plan's input masks, 0.70 without them; on digits 0.72 with one
gather, 0.67 without), and timed alone it accounts for only about a
quarter of that: `keras_biprune.BiLevelPruner` keeps every input channel
under a latency target.

Blocks timed alone do not add up to the whole model: a whole call adds the
dispatch of its operations, and each block alone spends what the whole model
does not (its own call, its input and output written to memory rather than
passed on: a share that grew as the widths shrank). So the sum of a plan's
blocks is mapped to milliseconds through whole models: ones pruned to about
3/4, 1/2, 1/4 and 1/8 of every group's width (`CALIBRATION`), each timed in
turn with the unpruned one, as the pruner's check and the benchmarks time a
pruned model (timed four in turn, ResNet-20's 3/4 model measured 0.80 of
the unpruned one in TFLite; in pairs, 0.74-0.75). The 1/8 model keeps the
floors of latency targets within measured points (without it,
MobileNetV2-small's narrowest plans in TensorFlow were predicted at 0.54
and measured at 0.47-0.50); between them the map is linear, below the narrowest
it runs to the line's intercept at zero (never below zero), and it never
decreases.
TFLite is timed on one interpreter thread unless ``threads`` says otherwise:
on a 2-core machine the interpreter on both cores ran in two states, and a
pruned model's share of the time moved with them (see
`keras_biprune.evaluate.runtimes.TFLITE_THREADS`).
Tables are cached on disk, keyed by the model's signature and input shapes,
the runtime, its threads, the batch size and the machine.
"""

import hashlib
import json
import logging
import os
import pathlib
import platform
import time

import keras
import numpy as np

from keras_biprune import _keras_internals as internals
from keras_biprune._progress import Progress
from keras_biprune.errors import SearchError
from keras_biprune.evaluate.runtimes import check_runtime, check_threads, forward_call, paired
from keras_biprune.graph import trace
from keras_biprune.handlers import lookup
from keras_biprune.layers import ChannelSelect
from keras_biprune.plan import PruningPlan, node_io, takes_input_mask
from keras_biprune.plan.steps import group_step
from keras_biprune.surgery import apply_plan

logger = logging.getLogger(__name__)

_VERSION = 8
_FALLBACK_WIDTHS = 2     # widths per axis once time_budget is spent
CALIBRATION = (1.0, 0.75, 0.5, 0.25, 0.125)
"""Shares of every group's width of the whole models the block sums are mapped through."""


class LatencyModel:
    """Predicted latency of a model under any `PruningPlan`, from measured block tables.

    Build one with `LatencyModel.build` (measures, or loads the disk cache);
    the constructor takes tables already measured.

    Args:
        model: the Keras model.
        runtime: ``"tf"`` or ``"tflite"``.
        batch_size: samples per call the tables were measured at.
        tables: ``{block name: {"in": widths, "out": widths, "ms": latencies}}``
            for every block of `blocks` (``"in"``/``"out"`` may be empty; ``"ms"``
            has one row per input width and one column per output width, with
            the overhead already taken out).
        calibration: ``[[blocks' sum, whole model's ms], ...]``: whole models
            timed (see above); a plan's blocks' sum is mapped through them
            (one point ``[s, ms]``: in proportion up to ``s``).
        lanes: channels the runtime's kernels compute at once (see above).
        seconds: how long measuring the tables took.
        graph: ``kb.trace(model)``, when the caller has it.
        threads: the TFLite interpreter's threads the tables were timed on
            (None for ``"tf"``).

    Attributes:
        blocks: the model's blocks, in execution order (see `blocks`).

    Example:

    ```python
    import keras_biprune as kb
    latency = kb.evaluate.LatencyModel.build(model, runtime="tflite", batch_size=1)
    plan = kb.PruningPlan.random(kb.trace(model), ratio=0.5, seed=0)
    print(latency.predict(plan), latency.ratio(plan))     # ms, share of the unpruned
    ```
    """

    def __init__(self, model, runtime, batch_size, tables, calibration, lanes=4, seconds=0.0,
                 graph=None, threads=None):
        self.model = model
        self.graph = trace(model) if graph is None else graph
        self.runtime = runtime
        self.batch_size = batch_size
        self.tables = tables
        self.calibration = [[float(a), float(b)] for a, b in calibration]
        self._sums, self._ms = _knots(self.calibration)
        self.lanes = lanes
        self.threads = threads
        self.seconds = float(seconds)
        self.blocks = blocks(model, self.graph)
        missing = sorted({b.name for b in self.blocks} - set(tables))
        if missing:
            raise SearchError(
                f"The latency tables do not cover every block of {self.graph.model_name!r}. "
                f"Received: no table for {missing[:3]}. Build them with LatencyModel.build."
            )
        self._full = self.predict()

    @classmethod
    def build(cls, model, runtime="tflite", batch_size=1, round_to=8, max_widths=4, lanes=4,
              time_budget=None, cache_dir=None, timer=None, graph=None, verbose=1,
              threads=None):
        """Measures (or loads from the cache) the latency tables of ``model``.

        Args:
            model: a functional or Sequential Keras model with fixed input
                shapes (besides the batch).
            runtime: ``"tflite"`` (float TFLite interpreter, every core) or
                ``"tf"`` (a compiled TensorFlow call).
            batch_size: samples per call.
            round_to: the width step of the search (see
                `keras_biprune.search.UpperEncoding`); widths are measured
                in its steps.
            max_widths: most widths measured per axis of a block (a block
                with free input and output widths is timed at up to
                ``max_widths ** 2`` points; so is a block whose input and
                output are the same channels and which mixes them, e.g. a
                conv between two residual adds, at as many widths).
            lanes: channels the runtime's float kernels compute at once: a
                width costs what the next multiple of ``lanes`` costs (1:
                every width as interpolated). ``"auto"``: measured on this
                machine (`measure_lanes`, cached). Widths are measured in
                steps of ``max(round_to, lanes)``. The default, 4, is
                ``"auto"``'s floor: on an AVX-512 machine ``"auto"`` (16 for
                TensorFlow) predicted the demo's model within 5 % but
                ResNet-20 on 28x28 images 39 % too fast (its 16-wide first
                stage runs faster narrower; one conv's lanes do not hold for
                every shape).
            time_budget: seconds; once spent, the blocks left are measured
                at their smallest and largest widths only. None: no limit.
            cache_dir: where tables are cached (default: the directory the
                environment variable ``KERAS_BIPRUNE_LATENCY_CACHE`` names,
                else ``~/.cache/keras_biprune/latency``).
            timer: ``timer(sub_model) -> milliseconds`` instead of timing on
                the runtime (e.g. a deterministic cost in tests); it prices
                every width itself, so ``lanes="auto"`` is 1 with it.
            graph: ``kb.trace(model)``, when the caller has it.
            verbose: 0 silent, 1 a progress line over the blocks.
            threads: the TFLite interpreter's threads (None: 1, see
                `keras_biprune.evaluate.runtimes.TFLITE_THREADS`; ``"tf"``
                takes None). Time on the threads the model will run on; on
                a 2-core machine both cores made TFLite's timings bimodal.

        Returns:
            A `LatencyModel`.

        Raises:
            SearchError: an unknown runtime or a bad argument.
            MissingDependencyError: the runtime is not installed here.

        Example:

        ```python
        latency = kb.evaluate.LatencyModel.build(model, runtime="tf", batch_size=64,
                                                  time_budget=120)
        print(f"built in {latency.seconds:.0f} s; unpruned: {latency.predict():.3f} ms")
        ```
        """
        if timer is None:
            check_runtime(runtime)
        threads = check_threads(runtime, threads)
        for name, value in (("batch_size", batch_size), ("round_to", round_to),
                            ("max_widths", max_widths), ("lanes", lanes)):
            if name == "lanes" and value == "auto":
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < (
                    2 if name == "max_widths" else 1):
                also = ' or "auto"' if name == "lanes" else ""
                raise SearchError(f"{name} must be an int >= {2 if name == 'max_widths' else 1}"
                                  f"{also}. Received: {name}={value!r}.")
        if lanes == "auto":
            lanes = (1 if timer is not None else
                     measure_lanes(runtime, batch_size, cache_dir, threads=threads))
        grid = max(round_to, lanes)
        graph = trace(model) if graph is None else graph
        key = {"version": _VERSION, "signature": graph.signature, "runtime": runtime,
               "batch_size": batch_size, "machine": machine(), "round_to": grid,
               "max_widths": max_widths, "timer": "runtime" if timer is None else "custom",
               "threads": threads,
               "inputs": [list(t.shape[1:]) for t in model.inputs]}
        path = _cache_path(cache_dir, key)
        plans = [_uniform_plan(graph, share, grid) for share in CALIBRATION]

        def calibrated(tables, whole_ms, seconds):      # sums at these lanes, measured times
            sums = cls(model, runtime, batch_size, tables, [[1.0, 1.0]], lanes, graph=graph)
            return cls(model, runtime, batch_size, tables,
                       [[sums._sum(plan), ms] for plan, ms in zip(plans, whole_ms)], lanes,
                       seconds, graph, threads)

        stored = _read_cache(path, key)
        if stored is not None:                   # the same signature: the same blocks, in
            names = [b.name for b in blocks(model, graph)]        # order, maybe other names
            if len(names) == len(stored["tables"]):
                return calibrated(dict(zip(names, stored["tables"].values())),
                                  stored["whole_ms"], stored["seconds"])
        if timer is None:
            def in_turn(models, rounds=3):          # call by call in turn
                return paired([forward_call(m, runtime, batch_size, threads=threads)
                               for m in models], rounds=rounds)
        else:
            def in_turn(models, rounds=3):
                return [timer(m) for m in models]
        started = time.perf_counter()
        measured, tables = {}, {}
        parts = blocks(model, graph)
        progress = Progress(len(parts), verbose, ("timings",), unit="block")
        for i, block in enumerate(parts):
            spent = time_budget is not None and time.perf_counter() - started > time_budget
            tables[block.name] = _table(graph, block, grid,
                                        _FALLBACK_WIDTHS if spent else max_widths,
                                        measured, in_turn)
            progress.update(i + 1, {"timings": len(measured)})
        pairs = [in_turn([model, apply_plan(model, plan)], rounds=5) for plan in plans[1:]]
        full_ms = float(np.median([unpruned for unpruned, _ in pairs]))
        whole_ms = [full_ms, *(full_ms * pruned / unpruned for unpruned, pruned in pairs)]
        latency = calibrated(tables, whole_ms, time.perf_counter() - started)
        _write_cache(path, {"key": key, "tables": tables, "whole_ms": whole_ms,
                            "seconds": latency.seconds})
        logger.info("Latency tables of %r on %s built in %.0f s (%d timings), cached in %s",
                    graph.model_name, runtime, latency.seconds, len(measured), path)
        return latency

    def predict(self, plan=None):
        """Predicted milliseconds of one call of the model pruned by ``plan`` (None: unpruned)."""
        return float(np.interp(self._sum(plan), self._sums, self._ms))

    def _sum(self, plan):
        """The plan's blocks' latencies from the tables, summed."""
        plan = PruningPlan.keep_all(self.graph) if plan is None else plan
        atom_keep = self.graph.atom_keep(plan.keep)
        total = 0.0
        for block in self.blocks:
            table = self.tables[block.name]
            ms = np.asarray(table["ms"], dtype="float64")
            if table["in"]:
                width = self._padded(_width(block.inputs, atom_keep), table["in"])
                ms = np.array([np.interp(width, table["in"], ms[:, j])
                               for j in range(ms.shape[1])])
            else:
                ms = ms[0]
            if table["out"]:
                ms = np.interp(self._padded(_width(block.outputs, atom_keep), table["out"]),
                               table["out"], ms)
            total += float(np.asarray(ms).reshape(-1)[0])
            if block.first in plan.inputs and "gather" in table:
                total += table["gather"][1] * len(plan.inputs[block.first]) / table["gather"][0]
        return total

    def _padded(self, width, widths):
        """The width the runtime computes for ``width`` channels: the next multiple of
        ``lanes``, at most the widest of ``widths`` (a table's)."""
        return min(widths[-1], _next_multiple(width, self.lanes))

    def ratio(self, plan):
        """The predicted latency of ``plan`` as a share of the unpruned model's."""
        return self.predict(plan) / self._full


class Block:
    """Operations a runtime runs as one: a first node and the per-channel chain it alone feeds.

    Attributes:
        name: ``"<index>:<first layer path>"``.
        nodes: the Keras nodes, in order.
        records: their call records.
        first: path of the first node's operation.
        inputs: `Channels` of the first node's first input (None: untracked).
        outputs: `Channels` of the last node's output (None: untracked).
    """

    def __init__(self, index, nodes, records):
        self.nodes, self.records = nodes, records
        self.first = records[0].path
        self.name = f"{index}:{self.first}"
        self.inputs = records[0].inputs[0] if records[0].inputs else None
        self.outputs = records[-1].outputs[0] if records[-1].outputs else None


def blocks(model, graph):
    """The `Block`s of a model (``graph``: its trace), in execution order, nested models
    flattened."""
    records = {id(r.op): r for r in graph.records}
    chains = []

    def walk(model):
        _, outputs, nodes = internals.graph_of(model)
        consumers = {}
        for node in nodes:
            for t in internals.node_input_tensors(node):
                consumers[id(t)] = consumers.get(id(t), 0) + 1
        for t in outputs:
            consumers[id(t)] = consumers.get(id(t), 0) + 1
        previous = None
        for node in nodes:
            if internals.is_graph_model(node.operation):
                walk(node.operation)
                previous = None
                continue
            record = records[id(node.operation)]
            tensors = internals.node_input_tensors(node)
            if (previous is not None and len(tensors) == 1 and len(node.outputs) == 1
                    and id(tensors[0]) == id(previous.outputs[0])
                    and consumers.get(id(tensors[0])) == 1 and _per_channel(record)):
                chains[-1].append((node, record))
            else:
                chains.append([(node, record)])
            previous = node

    walk(model)
    return [Block(i, [n for n, _ in chain], [r for _, r in chain])
            for i, chain in enumerate(chains)]


def machine():
    """This machine, as the latency cache keys it: CPU and its widest vector extension, cores,
    TensorFlow and Keras versions (machines sold under one CPU name differ in their vectors)."""
    cpu, flags = platform.processor(), set()
    try:
        with open("/proc/cpuinfo") as f:
            info = f.read().splitlines()
        cpu = next((line.split(":", 1)[1].strip() for line in info
                    if line.startswith("model name")), cpu)
        flags = set(next((line.split(":", 1)[1].split() for line in info
                          if line.startswith(("flags", "Features"))), []))
    except OSError:
        pass
    widest = next((ext for ext in ("avx512f", "avx2", "asimd") if ext in flags), None)
    cpu += f" {widest}" if widest else ""
    try:
        import tensorflow as tf

        tf_version = tf.__version__
    except ImportError:
        tf_version = "none"
    return (f"{platform.machine()} {cpu} x{os.cpu_count()} tf {tf_version} "
            f"keras {keras.__version__}")


LANE_CANDIDATES = (4, 8, 16, 32)
LANE_TOLERANCE = 0.05


def measure_lanes(runtime, batch_size=1, cache_dir=None, timer=None, threads=None):
    """The channels this machine's runtime computes at once (its kernels' vector), measured.

    A 3x3 conv over 32 channels is timed at 8 to 64 output channels in
    steps of 4 (its image sized so every call does about the same work
    whatever the batch size); ``lanes`` is the largest of
    `LANE_CANDIDATES` whose padding hides no saving: on average a width
    between multiples of ``lanes`` is at most `LANE_TOLERANCE` cheaper than
    the next multiple. (A width dearer than that multiple, as XNNPACK's are
    between multiples of 8 here, is one the padded price rightly steers the
    budget away from.)
    Measured once per machine, runtime and batch size, then read from the
    latency cache (see `LatencyModel.build`).

    Args:
        runtime: ``"tf"`` or ``"tflite"``.
        batch_size: samples per call.
        cache_dir: the latency cache (see `LatencyModel.build`).
        timer: ``timer(model) -> milliseconds`` instead of timing on the
            runtime (not cached).
        threads: the TFLite interpreter's threads (see `LatencyModel.build`).

    Returns:
        The lanes, an int of `LANE_CANDIDATES`.

    Example:

    ```python
    kb.evaluate.latency_model.measure_lanes("tf", batch_size=64)    # 16 on AVX-512
    ```
    """
    threads = check_threads(runtime, threads)
    key = {"version": _VERSION, "signature": "lanes", "runtime": runtime,
           "batch_size": batch_size, "machine": machine(), "threads": threads}
    path = _cache_path(cache_dir, key)
    stored = None if timer is not None else _read_cache(path, key)
    if stored is not None:
        return stored["lanes"]
    side = max(4, round(14 * (64 / batch_size) ** 0.5))
    widths = list(range(8, 65, 4))
    convs = []
    for width in widths:
        x = keras.Input((side, side, 32))
        convs.append(keras.Model(x, keras.layers.Conv2D(width, 3, padding="same")(x)))
    if timer is None:
        check_runtime(runtime)
        ms = paired([forward_call(conv, runtime, batch_size, threads=threads) for conv in convs])
    else:
        ms = [timer(conv) for conv in convs]
    at = dict(zip(widths, ms))

    def error(lanes):
        padded = [(at[w], at[_next_multiple(w, lanes)]) for w in widths
                  if w % lanes and _next_multiple(w, lanes) in at]
        return float(np.mean([max(0.0, 1 - a / b) for a, b in padded]))

    lanes = max((n for n in LANE_CANDIDATES[1:] if error(n) <= LANE_TOLERANCE),
                default=LANE_CANDIDATES[0])
    if timer is None:
        _write_cache(path, {"key": key, "lanes": lanes, "widths": widths, "ms": ms})
    logger.info("%s at batch %d computes %d channels at once on this machine", runtime,
                batch_size, lanes)
    return lanes


def _per_channel(record):
    """Whether an operation keeps its input's channels one to one (batch norm, activations)."""
    ins, outs = record.inputs, record.outputs
    return (len(ins) == 1 and len(outs) == 1 and ins[0] is not None and outs[0] is not None
            and np.array_equal(ins[0].labels, outs[0].labels))


def _axis_groups(graph, channels):
    if channels is None:
        return []
    indices = np.unique(graph.atom_group[channels.labels])
    return [graph.groups[i] for i in indices if graph.groups[i].prunable]


def _levels(groups, round_to, max_widths):
    """Per level, ``{group id: kept count}``: the largest group's widths in steps, the others
    scaled alike."""
    primary = max(groups, key=lambda g: g.size)
    step = group_step(primary.size, round_to)
    counts = sorted(set(range(step, primary.size + 1, step)) | {primary.size})
    picks = np.unique(np.round(np.linspace(0, len(counts) - 1, max_widths)).astype(int))
    return [{g.id: max(1, round(counts[p] * g.size / primary.size)) for g in groups}
            for p in picks]


def _table(graph, block, round_to, max_widths, measured, time_models):
    """The measured table of one block (see `LatencyModel`).

    The block's sub-models not yet in ``measured`` are timed together with
    the empty model, call by call in turn (``time_models(models)``), so the
    widths of one block and the per-call overhead taken out of them are
    measured under the same conditions.
    """
    in_groups, out_groups = _axis_groups(graph, block.inputs), _axis_groups(graph, block.outputs)
    out_ids = {g.id for g in out_groups}
    widths_out = max_widths
    if any(g.id in out_ids for g in in_groups):         # tied: one free width
        out_groups, in_groups = out_groups or in_groups, []
        if not np.array_equal(block.inputs.labels, block.outputs.labels):
            widths_out = max_widths ** 2                # mixes channels: quadratic in the width
    rows = _levels(in_groups, round_to, max_widths) if in_groups else [{}]
    cols = _levels(out_groups, round_to, widths_out) if out_groups else [{}]
    grid = [[_sub_model(graph, block, _atom_keep(graph, row | col)) for col in cols]
            for row in rows]
    builds = {key: build for line in grid for key, build in line}
    gather = None
    if block.inputs is not None and takes_input_mask(block.records[0]):
        gather = _gather(block)
        builds.setdefault(*gather[1:])
    new = [key for key in builds if key not in measured]
    if new:
        overhead, *ms = time_models([_empty_model(), *(builds[key]() for key in new)])
        measured.update({key: max(0.0, t - overhead) for key, t in zip(new, ms)})

    def widths(levels, channels):
        return [] if levels == [{}] else [_width(channels, _atom_keep(graph, level))
                                          for level in levels]

    table = {"in": widths(rows, block.inputs), "out": widths(cols, block.outputs),
             "ms": [[measured[key] for key, _ in line] for line in grid]}
    if gather is not None:
        table["gather"] = [gather[0], measured[gather[1]]]
    return table


def _gather(block):
    """``(kept, key, build)`` of the gather a lower-level input mask puts before the block
    (a `keras_biprune.layers.ChannelSelect` of half its input's channels)."""
    tensor = internals.node_input_tensors(block.nodes[0])[0]
    shape, axis = list(tensor.shape[1:]), block.inputs.axis
    kept = max(1, shape[axis] // 2)

    def build():
        x = keras.Input(batch_shape=(None, *shape), dtype=tensor.dtype)
        return keras.Model(x, ChannelSelect(range(kept), axis)(x))

    return kept, json.dumps(["gather", shape, axis, kept]), build


def _atom_keep(graph, counts):
    """``graph.atom_keep`` of the first ``counts[group id]`` positions of each group."""
    return graph.atom_keep({k: np.arange(n) for k, n in counts.items()})


def _width(channels, atom_keep):
    """Entries of a channel axis kept."""
    return int(atom_keep[channels.labels].sum())


def _sub_model(graph, block, atom_keep):
    """``(key, build)``: the block alone at the widths of ``atom_keep``, as a key (equal keys,
    equal models up to names and weights) and a function that builds it."""
    plan = PruningPlan.keep_all(graph)
    shapes = []
    for t, channels in zip(internals.node_input_tensors(block.nodes[0]), block.records[0].inputs):
        shape = list(t.shape)
        if channels is not None:
            shape[channels.axis] = _width(channels, atom_keep)
        shapes.append((t, shape[1:]))
    configs = [lookup(node.operation).prune_config(node.operation, node.operation.get_config(),
                                                   node_io(record, atom_keep, plan))
               for node, record in zip(block.nodes, block.records)]
    key = [[shape for _, shape in shapes],
           [[type(n.operation).__name__, {k: v for k, v in c.items() if k != "name"}]
            for n, c in zip(block.nodes, configs)]]

    def build():
        tensor_map = {id(t): keras.Input(batch_shape=(None, *shape), dtype=t.dtype)
                      for t, shape in shapes}
        inputs = list(tensor_map.values())
        for node, config in zip(block.nodes, configs):
            with internals.unsafe_deserialization():
                new = type(node.operation).from_config(config)
            args, kwargs = internals.node_arguments(node, tensor_map)
            for t, out in zip(node.outputs, keras.tree.flatten(new(*args, **kwargs))):
                tensor_map[id(t)] = out
        outputs = [tensor_map[id(t)] for t in block.nodes[-1].outputs]
        return keras.Model(inputs, outputs[0] if len(outputs) == 1 else outputs)

    return json.dumps(key, sort_keys=True, default=str), build


def _uniform_plan(graph, share, round_to):
    """The plan keeping about ``share`` of every prunable group, in its ``round_to`` steps."""
    keep = {}
    for group in graph.prunable_groups:
        step = group_step(group.size, round_to)
        keep[group.id] = np.arange(max(step, step * round(group.size * share / step)))
    return PruningPlan(keep)


def _knots(calibration):
    """``(sums, ms)`` of the map from a plan's blocks' sum to milliseconds (see
    `LatencyModel`): the points sorted by sum, equal sums averaged, made non-decreasing (pooled
    where a narrower model timed slower: noise), with a point at zero sum on the line through
    the two narrowest (at zero ms when that line meets zero first)."""
    points = {}
    for total, ms in calibration:
        points.setdefault(total, []).append(ms)
    sums = sorted(points)
    pools = []                                        # [sum of ms, count], adjacent violators
    for total in sums:                                # pooled: the isotonic fit
        pools.append([sum(points[total]) / len(points[total]), 1])
        while len(pools) > 1 and pools[-2][0] / pools[-2][1] > pools[-1][0] / pools[-1][1]:
            ms, n = pools.pop()
            pools[-1][0] += ms
            pools[-1][1] += n
    ms = [total / n for total, n in pools for _ in range(n)]
    if len(sums) == 1:
        intercept = 0.0
    else:
        slope = (ms[1] - ms[0]) / (sums[1] - sums[0])
        intercept = max(0.0, ms[0] - slope * sums[0])
    return np.array([0.0, *sums]), np.array([min(intercept, ms[0]), *ms])


def _empty_model():
    """The smallest model a runtime can call: its time is the fixed per-call overhead."""
    x = keras.Input((1,))
    return keras.Model(x, keras.layers.ReLU()(x))


def _next_multiple(width, lanes):
    """The smallest multiple of ``lanes`` at least ``width``."""
    return -(-width // lanes) * lanes


def _read_cache(path, key):
    """The record cached at ``path`` when it was stored under ``key``, else None."""
    if not path.exists():
        return None
    stored = json.loads(path.read_text())
    return stored if stored.get("key") == key else None


def _write_cache(path, record):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))


def _cache_path(cache_dir, key):
    if cache_dir is None:
        cache_dir = os.environ.get("KERAS_BIPRUNE_LATENCY_CACHE") or (
            pathlib.Path.home() / ".cache" / "keras_biprune" / "latency")
    directory = pathlib.Path(cache_dir)
    digest = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    return directory / f"{key['signature']}-{key['runtime']}-b{key['batch_size']}-{digest}.json"
