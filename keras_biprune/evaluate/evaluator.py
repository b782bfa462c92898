"""Scores many pruning plans fast: one masked copy of the model, a population per pass."""

import logging

import keras
import numpy as np

from keras_biprune import _backend
from keras_biprune._data import batches
from keras_biprune.errors import EvaluationError, InvalidPlanError
from keras_biprune.evaluate._masked import batch_norm, mask_channels, per_candidate_kernels, tile
from keras_biprune.evaluate.metric import guess_greater_is_better, resolve_metric
from keras_biprune.evaluate.racing import Racing, settle
from keras_biprune.graph import trace
from keras_biprune.graph.program import GraphProgram
from keras_biprune.handlers import reads_channels
from keras_biprune.plan import PruningPlan, checked_plan

logger = logging.getLogger(__name__)

class Evaluator:
    """Scores pruning plans of one model on a fixed evaluation subset.

    The model is run op by op as one *masked* program whose channel masks are
    inputs: a population of candidates goes through one compiled forward pass
    (the batch tiled once per candidate, each copy with its own masks), so no
    candidate builds a model or retraces a function. A candidate's pruned
    channels are zeroed where a conv or dense layer reads them, which is
    exactly what `apply_plan` removes: without adaptive batch norm the score
    of a plan equals ``apply_plan(model, plan)`` evaluated with
    ``model.evaluate`` on the same samples. Lower-level masks (``plan.inputs``
    and ``plan.kernels``) are applied in the same pass.

    With ``adaptive_bn`` (EagleEye), every candidate's batch-norm statistics
    are first re-estimated on a calibration subset, all candidates in one
    pass; pruning shifts the statistics of the layers after a pruned one, and
    the recalibrated score predicts accuracy after fine-tuning far better.
    The statistics are the exact moments over the calibration subset, which
    goes through the model in one batch per candidate.

    The evaluation and calibration subsets are drawn once, reproducibly from
    ``random_state``, and kept: every plan is scored on the same samples.

    On a CPU the batched pass saves little: the CPU is compute-bound, and P
    candidates in one pass cost about as much as P single passes. There,
    with the TensorFlow backend, the ``"sliced"`` engine runs each candidate
    with its sliced weights through one relaxed-shape function, so a
    candidate costs its own (smaller) number of operations; its scores are
    the same. ``engine="auto"`` picks it when no GPU is visible and the
    model's layers are all ones it supports, else the batched pass.

    By default every candidate is scored on the whole evaluation subset.
    With ``racing`` (a `keras_biprune.evaluate.Racing`, both engines), each
    ``evaluate`` call is a race: all its candidates are scored on the first
    ``first`` evaluation images, then repeatedly only the best ``keep`` share
    of those still racing (at least one; ties broken by order in the call)
    is scored on more images, ``growth`` times as many as they have seen,
    until the survivors have seen the whole subset. A candidate's
    calibration and sliced weights are computed once and kept across stages.
    With adaptive batch norm, the race starts with a free screen (unless
    ``Racing(screen=False)``): the calibration pass normalizes the
    calibration samples with the statistics it estimates, so it also gives
    each candidate's score on them, and only the best ``keep`` share go on
    to the evaluation images. The scores returned:

    - a candidate that finishes the race has its exact score (the score
      without racing);
    - a candidate eliminated early has its score on the images it saw (the
      calibration samples, when the screen eliminated it), clipped to just
      below the lowest score of every candidate that raced longer: no
      candidate ever outscores one that outlasted it, so the best candidate
      of a call is always a finisher;
    - a candidate whose score so far is the worst (outputs or metric not
      finite) leaves the race at once with the worst score, as without
      racing.

    Raced scores depend on the other candidates of the call (a search that
    caches scores keeps them as they were). A single candidate (as for
    ``baseline``) skips to the whole subset: its score is exact.

    Args:
        model: a functional or Sequential Keras model with one output. Not
            modified.
        data: what ``fit`` takes as ``validation_data``: ``(x, y)`` arrays,
            a ``tf.data.Dataset`` or ``keras.utils.PyDataset`` of ``(x, y)``
            batches.
        metric: a Keras metric name (``"accuracy"``, ``"mse"``, …), a
            ``keras.metrics.Metric`` or a callable ``(y_true, y_pred)``
            returning a value (or per-sample values, averaged).
        batch_size: samples per candidate in one forward pass.
        eval_size: samples in the evaluation subset (fewer if the data has
            fewer).
        calibration_size: samples in the calibration subset, drawn from the
            samples not used for evaluation when there are enough.
        adaptive_bn: re-estimate batch-norm statistics per candidate.
        max_parallel: candidates per forward pass (default: as many as fit
            in 2048 samples per pass).
        greater_is_better: whether a higher metric is better; by default
            guessed from the metric's name (losses and errors are lower is
            better). NaN scores become the worst score, ``-inf`` or ``inf``.
        random_state: seed of the subsets' draw.
        engine: ``"auto"``, ``"batched"`` (the masked population pass) or
            ``"sliced"`` (each candidate at its own size; TensorFlow only).
        racing: ``None`` or ``False`` (exact scores, the default), a
            `keras_biprune.evaluate.Racing`, a tuple ``(first, keep)`` or
            ``(first, keep, growth)``, a dict of those, or ``True`` for
            ``Racing()``.
        verbose: 0 silent, 1 a progress bar per `evaluate` call.

    Attributes:
        graph: the model's `ChannelGraph`.
        n_evaluations: plans scored so far.
        n_images_scored: evaluation images run through candidates so far
            (calibration not counted; without racing, plans × ``eval_size``).
        last_race: the last ``evaluate`` call: ``candidates``, ``finished``
            (indices of the plans that saw every image), ``screen`` (None,
            or ``{"images": calibration samples, "candidates": screened,
            "kept": indices of the plans that went on}``), ``stages`` (a
            list of ``{"images": seen, "candidates": racing}``),
            ``images_scored`` and ``images_exact`` (what it would cost
            without racing).
        racing: the `Racing` settings, or None.
        engine: the engine in use, ``"batched"`` or ``"sliced"``.
        x_eval, y_eval: the evaluation subset (lists of arrays, one per
            model input; and the targets).
        x_calibration, y_calibration: the calibration subset.

    Example:

    ```python
    import keras_biprune as kb
    evaluator = kb.Evaluator(model, (x_val, y_val), metric="accuracy")
    graph = evaluator.graph
    plans = [kb.PruningPlan.random(graph, ratio=0.5, seed=s) for s in range(16)]
    scores = evaluator.evaluate(plans)          # one accuracy per plan
    print(evaluator.baseline, scores.max())
    ```
    """

    def __init__(self, model, data, *, metric="accuracy", batch_size=128, eval_size=1024,
                 calibration_size=256, adaptive_bn=True, max_parallel=None,
                 greater_is_better=None, random_state=0, engine="auto", racing=None,
                 verbose=0):
        self.graph = trace(model)
        if len(model.outputs) != 1:
            raise EvaluationError(
                f"The evaluator scores models with one output. Received: model {model.name!r} "
                f"with {len(model.outputs)} outputs. Wrap it as keras.Model(model.inputs, "
                "model.outputs[i]) for the output to score."
            )
        for name, value in (("batch_size", batch_size), ("eval_size", eval_size),
                            ("calibration_size", calibration_size),
                            ("max_parallel", 1 if max_parallel is None else max_parallel)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise EvaluationError(
                    f"{name} must be a positive int. Received: {name}={value!r}."
                )
        self.model = model
        self.batch_size = batch_size
        self.adaptive_bn = bool(adaptive_bn)
        self.max_parallel = max_parallel or max(1, 2048 // batch_size)
        self.verbose = verbose
        self.racing = Racing.coerce(racing)
        self.n_evaluations = 0
        self.n_images_scored = 0
        self.last_race = None
        self._draw(data, eval_size, calibration_size, random_state)
        self._metric, name = resolve_metric(metric, self.y_eval, model.outputs[0].shape)
        self.greater_is_better = (
            guess_greater_is_better(name) if greater_is_better is None
            else bool(greater_is_better)
        )
        self._program = GraphProgram(model)
        self._prepare_steps()
        self._functions = {}
        self._baseline = None
        self._sliced = self._choose_engine(engine)
        self.engine = "batched" if self._sliced is None else "sliced"

    def _choose_engine(self, engine):
        if engine not in ("auto", "batched", "sliced"):
            raise EvaluationError(
                f"engine must be 'auto', 'batched' or 'sliced'. Received: engine={engine!r}."
            )
        if engine == "batched":
            return None
        reason = "the sliced engine needs the TensorFlow backend"
        if keras.backend.backend() == "tensorflow":
            from keras_biprune.evaluate import _sliced_tf

            reason = _sliced_tf.unsupported_reason(self._program)
            if reason is None:
                return _sliced_tf.SlicedProgram(self.graph, self._program, self.adaptive_bn)
        if engine == "sliced":
            raise EvaluationError(
                f"The sliced engine cannot run model {self.model.name!r}: {reason}. "
                "Received: engine='sliced'. Use engine='batched' (or 'auto')."
            )
        logger.info("Evaluator uses the batched engine: %s.", reason)
        return None

    def _draw(self, data, eval_size, calibration_size, seed):
        need = eval_size + calibration_size
        if isinstance(data, (tuple, list)) and len(data) in (2, 3) and hasattr(data[0], "shape"):
            x, y = data[0], data[1]
            n = len(x)
            if n and len(y) == n:
                pick = np.random.default_rng(seed).permutation(n)[:need]
                data = (x[np.sort(pick)], y[np.sort(pick)])
        xs, ys = [], []
        for batch_x, batch_y in batches(data, self.model, "evaluator", None, 1024,
                                        need_y=True):
            xs.append(batch_x)
            ys.append(batch_y)
            if sum(len(b[0]) for b in xs) >= need:
                break
        x = [np.concatenate([b[i] for b in xs]) for i in range(len(xs[0]))]
        y = np.concatenate([np.asarray(b) for b in ys])
        n = len(y)
        order = np.random.default_rng(seed).permutation(n)
        n_eval = min(eval_size, n)
        rest = order[n_eval:]
        calibration = rest[:calibration_size] if len(rest) else order[:calibration_size]
        if not len(rest) and self.adaptive_bn:
            logger.warning("The evaluator calibrates batch norm on its evaluation samples: "
                           "the data has only %d samples.", n)
        self.x_eval = [a[order[:n_eval]] for a in x]
        self.y_eval = y[order[:n_eval]]
        self.x_calibration = [a[calibration] for a in x]
        self.y_calibration = y[calibration]
        self._eval_batches = [
            [_pad(a[i:i + self.batch_size], self.batch_size) for a in self.x_eval]
            for i in range(0, n_eval, self.batch_size)
        ]

    def _prepare_steps(self):
        """Which steps read masked channels, and which are batch norms."""
        self._consumers = {}
        self._kernel_paths = set()
        self._bn_steps = {}
        for step in self._program.steps:
            if self.adaptive_bn and isinstance(step.op, keras.layers.BatchNormalization):
                self._bn_steps[id(step)] = len(self._bn_steps)
                continue
            record = self.graph.record(step.path)
            if reads_channels(record):
                self._consumers[step.path] = record.inputs[0]
        self._consumer_paths = sorted(self._consumers)

    @property
    def baseline(self):
        """The unpruned model's score (a plan that keeps everything)."""
        if self._baseline is None:
            self._baseline = float(self.evaluate([PruningPlan.keep_all(self.graph)])[0])
        return self._baseline

    def evaluate_one(self, plan):
        """The score of one plan (see `evaluate`)."""
        return float(self.evaluate([plan])[0])

    def evaluate(self, plans):
        """Scores a population of plans.

        Args:
            plans: a non-empty sequence of `PruningPlan` made for this model.

        Returns:
            A float array, one score per plan, in order. A plan whose model
            outputs NaN or inf gets the worst score (``-inf`` when greater
            is better, else ``inf``). With ``racing``, the scores of the
            plans eliminated early follow the rule in the class doc.
        """
        plans = [checked_plan(self.graph, plan) for plan in _as_plans(plans)]
        if self._sliced is not None:
            self._sliced.read_weights()
        scores = self._race(plans)
        self.n_evaluations += len(plans)
        return scores

    def _progress(self, steps):
        if not self.verbose:
            return None
        return keras.utils.Progbar(steps, verbose=self.verbose, unit_name="candidate")

    def _race(self, plans):
        """Scores plans stage by stage (without racing: one stage of every image)."""
        n_eval, count = len(self.y_eval), len(plans)
        stages = ([len(self._eval_batches)] if self.racing is None
                  else self.racing.stages(n_eval, self.batch_size))
        kernel_paths = tuple(sorted({p for plan in plans for p in plan.kernels}))
        group_size = 1 if self._sliced is not None else self.max_parallel
        sign = 1.0 if self.greater_is_better else -1.0
        oriented = np.full(count, -np.inf)
        stopped = np.zeros(count, dtype=int)
        states, outputs = [None] * count, [[] for _ in plans]
        alive, done, index, executed, record = list(range(count)), 0, 0, 0, []
        progress = self._progress(count)
        screen = None
        if (self.racing is not None and self.racing.screen and count > 1
                and self._bn_steps):
            # The calibration pass scores every candidate on the calibration
            # samples: the best `keep` share go on to the evaluation images.
            for start in range(0, count, group_size):
                group = alive[start:start + group_size]
                for i, calibrated in self._prepare_missing(group, plans, states, kernel_paths):
                    oriented[i] = sign * self._score(calibrated, self.y_calibration)
            survivors = self._survivors(alive, oriented)
            screen = {"images": len(self.y_calibration), "candidates": count,
                      "kept": survivors}
            alive, executed = self._eliminate(alive, survivors, states, outputs, progress), 1
            index = len(stages) - 1 if len(alive) == 1 else 0
        while alive:
            end = stages[index]
            last = end == stages[-1]
            seen = min(end * self.batch_size, n_eval)
            record.append({"images": seen, "candidates": len(alive)})
            for start in range(0, len(alive), group_size):
                group = alive[start:start + group_size]
                self._prepare_missing(group, plans, states, kernel_paths)
                predictions = self._predict([states[i] for i in group], kernel_paths,
                                            self._eval_batches[done:end])
                for i, batch_outputs in zip(group, predictions):
                    outputs[i].extend(batch_outputs)
                    predicted = np.concatenate(outputs[i])[:seen]
                    oriented[i] = sign * self._score(predicted, self.y_eval[:seen])
                    stopped[i] = executed
                    if last:
                        states[i] = outputs[i] = None
            if last:
                if progress is not None:
                    progress.add(len(alive))
                break
            survivors = self._survivors(alive, oriented)
            alive = self._eliminate(alive, survivors, states, outputs, progress)
            done, executed = end, executed + 1
            index = len(stages) - 1 if len(alive) == 1 else index + 1
        self._record(count, screen, record, alive)
        return sign * settle(oriented, stopped, executed, np.isfinite(oriented))

    def _prepare_missing(self, group, plans, states, kernel_paths):
        """Prepares the candidates of ``group`` without a state yet, into ``states``.

        Returns ``(index, outputs on the calibration samples)`` for each.
        """
        todo = [i for i in group if states[i] is None]
        if not todo:
            return []
        prepared = self._prepare([plans[i] for i in todo], kernel_paths)
        for i, (state, _) in zip(todo, prepared):
            states[i] = state
        return [(i, calibrated) for i, (_, calibrated) in zip(todo, prepared)]

    def _survivors(self, alive, oriented):
        """The best ``keep`` share of the finite candidates in ``alive`` (ties by order)."""
        ranked = sorted((i for i in alive if np.isfinite(oriented[i])),
                        key=lambda i: (-oriented[i], i))
        return sorted(ranked[: self.racing.survivors(len(ranked))])

    @staticmethod
    def _eliminate(alive, survivors, states, outputs, progress):
        """Frees the state of the candidates leaving the race; returns the survivors."""
        for i in set(alive) - set(survivors):
            states[i] = outputs[i] = None
        if progress is not None:
            progress.add(len(alive) - len(survivors))
        return survivors

    def _record(self, count, screen, stages, finished):
        """Sets ``last_race`` and adds its image passes to ``n_images_scored``."""
        scored, previous = 0, 0
        for stage in stages:
            scored += stage["candidates"] * (stage["images"] - previous)
            previous = stage["images"]
        self.n_images_scored += scored
        self.last_race = {"candidates": count, "finished": list(finished), "screen": screen,
                          "stages": stages, "images_scored": scored,
                          "images_exact": count * len(self.y_eval)}

    def _prepare(self, plans, kernel_paths):
        """Each plan's state for `_predict` and its outputs on the calibration samples.

        The state holds the plan's sliced weights or masks, and its calibrated
        batch-norm statistics. The calibration pass normalizes with the
        statistics it estimates, so its outputs are the calibrated plan's
        predictions; they are None when nothing is calibrated.
        """
        if self._sliced is not None:
            return [self._sliced.prepare(plan, self.x_calibration) for plan in plans]
        masks, kernel_masks = self._encode(plans, kernel_paths)
        calibrated, stats = self._calibrate(masks, kernel_masks, kernel_paths)
        stats = [[keras.ops.convert_to_numpy(t) for t in pair] for pair in stats]
        if calibrated is not None:
            calibrated = keras.ops.convert_to_numpy(calibrated)
            calibrated = calibrated.reshape((self.max_parallel, -1) + calibrated.shape[1:])
        return [(([m[p] for m in masks], [k[p] for k in kernel_masks],
                  [(mean[p], variance[p]) for mean, variance in stats]),
                 None if calibrated is None else calibrated[p])
                for p in range(len(plans))]

    def _predict(self, states, kernel_paths, batches):
        """Per state, the outputs of each batch in ``batches`` (NumPy arrays)."""
        if self._sliced is not None:
            return [self._sliced.predict(state, batches) for state in states]
        padded = list(states) + [states[-1]] * (self.max_parallel - len(states))
        stack = lambda rows: [np.stack(column) for column in zip(*rows)]
        masks = stack(s[0] for s in padded)
        kernel_masks = stack(s[1] for s in padded)
        stats = [tuple(np.stack(values) for values in zip(*pairs))
                 for pairs in zip(*(s[2] for s in padded))]
        run = self._function("predict", kernel_paths)
        outputs = [[] for _ in states]
        for xs in batches:
            y, _ = run(xs, masks, kernel_masks, stats)
            y = keras.ops.convert_to_numpy(y)
            y = y.reshape((self.max_parallel, self.batch_size) + y.shape[1:])
            for p, out in enumerate(outputs):
                out.append(y[p])
        return outputs

    def _encode(self, chunk, kernel_paths):
        """Per-consumer input masks ``(P, C)`` and kernel masks, padded to max_parallel."""
        padded = list(chunk) + [chunk[-1]] * (self.max_parallel - len(chunk))
        masks = {path: [] for path in self._consumer_paths}
        kernel_masks = {path: [] for path in kernel_paths}
        for plan in padded:
            atom_keep = self.graph.atom_keep(plan.keep)
            for path, channels in self._consumers.items():
                mask = atom_keep[channels.labels]
                if path in plan.inputs:
                    mask = mask & np.isin(np.arange(len(mask)), plan.inputs[path])
                masks[path].append(mask)
            for path in kernel_paths:
                shape = tuple(self.graph.record(path).op.kernel.shape[-2:])
                kernel_masks[path].append(plan.kernels.get(path, np.ones(shape, bool)))
        as_array = lambda lists: [np.asarray(lists[p], "float32") for p in lists]
        return as_array(masks), as_array(kernel_masks)

    def _function(self, kind, kernel_paths):
        key = (kind, kernel_paths)
        if key not in self._functions:
            calibrate = kind == "calibrate"

            def run(xs, masks, kernel_masks, stats):
                return self._forward(xs, masks, kernel_masks, stats, kernel_paths, calibrate)

            self._functions[key] = _backend.compile_function(run)
        return self._functions[key]

    def _calibrate(self, masks, kernel_masks, kernel_paths):
        """The calibration pass: its outputs (None without batch norm) and statistics."""
        if not self._bn_steps:
            return None, []
        run = self._function("calibrate", kernel_paths)
        return run(self.x_calibration, masks, kernel_masks, [])

    def _score(self, predictions, y):
        worst = -np.inf if self.greater_is_better else np.inf
        if not np.isfinite(predictions).all():
            return worst
        value = self._metric(y, predictions)
        return value if np.isfinite(value) else worst

    def _forward(self, xs, masks, kernel_masks, stats, kernel_paths, calibrate):
        """One pass of the whole population: the batch tiled once per candidate."""
        population = self.max_parallel
        masks = dict(zip(self._consumer_paths, masks))
        kernel_masks = dict(zip(kernel_paths, kernel_masks))
        collected = []

        def call(step, args, kwargs):
            bn = self._bn_steps.get(id(step))
            if bn is not None:
                x, mean_var = batch_norm(step.op, args[0], population,
                                          None if calibrate else stats[bn])
                collected.append(mean_var)
                return x
            mask = masks.get(step.path)
            if mask is not None:
                args = (mask_channels(args[0], mask, self._consumers[step.path].axis,
                                       population), *args[1:])
            if step.path in kernel_masks:
                return per_candidate_kernels(step, args, kwargs, kernel_masks[step.path],
                                              population)
            return step.op(*args, **kwargs)

        tiled = [tile(x, population) for x in xs]
        outputs, _ = self._program.run(tiled, call=call)
        return outputs[0], collected


def _pad(array, size):
    if len(array) == size:
        return array
    padding = np.zeros((size - len(array),) + array.shape[1:], array.dtype)
    return np.concatenate([array, padding])


def _as_plans(plans):
    if isinstance(plans, PruningPlan) or not hasattr(plans, "__len__"):
        raise EvaluationError(
            "evaluate takes a sequence of PruningPlan. Received: "
            f"{type(plans).__name__}. Use evaluate([plan]) or evaluate_one(plan)."
        )
    plans = list(plans)
    if not plans:
        raise EvaluationError(
            "evaluate needs at least one plan. Received: an empty population (P = 0)."
        )
    for i, plan in enumerate(plans):
        if not isinstance(plan, PruningPlan):
            raise InvalidPlanError(
                f"evaluate takes PruningPlan objects. Received: plans[{i}] of type "
                f"{type(plan).__name__}. Build plans with kb.PruningPlan(...)."
            )
    return plans
