"""Scores many pruning plans fast: one masked copy of the model, a population per pass."""

import logging

import keras
import numpy as np

from keras_biprune._data import samples
from keras_biprune._validate import check_executor, check_int
from keras_biprune.errors import EvaluationError, InvalidPlanError
from keras_biprune.evaluate._masked import MaskedEngine
from keras_biprune.evaluate.metric import guess_greater_is_better, resolve_metric
from keras_biprune.evaluate.racing import Racing, settle
from keras_biprune.graph import trace
from keras_biprune.graph.program import GraphProgram
from keras_biprune.plan import PruningPlan, checked_plan

logger = logging.getLogger(__name__)

class Evaluator:
    """Scores pruning plans of one model on a fixed evaluation subset.

    Two engines score a population without building a model per candidate:

    - ``"batched"``: one *masked* copy of the model runs a population in one
      compiled pass (the batch tiled once per candidate, each copy with its
      own channel and kernel masks). A candidate's pruned channels are zeroed
      where a conv or dense layer reads them, which is exactly what
      `apply_plan` removes: without adaptive batch norm a plan's score equals
      ``apply_plan(model, plan)`` evaluated on the same samples.
    - ``"sliced"`` (TensorFlow): each candidate runs with its sliced weights
      through one relaxed-shape function, so it costs its own (smaller)
      number of operations; same scores. On a CPU, which is compute-bound,
      this is the fast one. ``engine="auto"`` picks it when no GPU is
      visible and every layer's handler supports it
      (`LayerHandler.sliced_kind`), else the batched engine.

    With ``adaptive_bn`` (EagleEye), every candidate's batch-norm statistics
    are first re-estimated on a calibration subset (exact moments over it,
    one batch per candidate), so the score predicts accuracy after
    fine-tuning far better. The evaluation and calibration subsets are drawn
    once, reproducibly from ``random_state``: every plan is scored on the
    same samples. With ``racing`` each ``evaluate`` call is a race; the
    stages and the scores of eliminated candidates are described in
    `keras_biprune.evaluate.Racing`.

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
        executor: where `evaluate` scores plans: None (this process) or an
            executor such as `keras_biprune.distributed.RayExecutor`, which
            sends the model and the drawn subsets to its workers once, here,
            and maps every population over them; scores are the same.
            Racing needs all of a population in one process: with an
            executor, ``racing`` must be None.
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
        engine: the engine in use, ``"batched"`` or ``"sliced"`` (in this
            process: an executor's workers choose their own from ``engine``).
        group_size: candidates the engine runs in one pass (an executor
            sends populations in multiples of it, so each candidate runs in
            the same pass as here).
        executor: the executor, or None.
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
                 executor=None, verbose=0):
        for name, value in (("eval_size", eval_size), ("calibration_size", calibration_size)):
            check_int(name, value, 1, EvaluationError, expected="a positive int")
        self._build(model, {"metric": metric, "batch_size": batch_size,
                            "adaptive_bn": adaptive_bn, "max_parallel": max_parallel,
                            "greater_is_better": greater_is_better, "engine": engine,
                            "racing": racing, "verbose": verbose},
                    lambda: self._draw(data, eval_size, calibration_size, random_state))
        self.executor = check_executor(executor, EvaluationError)
        if executor is not None:
            if self.racing is not None:
                raise EvaluationError(
                    "Racing ranks a whole population in one process, so it cannot run on an "
                    f"executor. Received: racing={racing!r} with executor="
                    f"{type(executor).__name__}. Pass racing=None (exact scores).")
            executor.start(self)

    @classmethod
    def from_executor_state(cls, model, state):
        """The evaluator an executor's worker rebuilds from `executor_state` (no executor).

        Args:
            model: the worker's copy of the evaluator's model.
            state: what `executor_state` returned.

        Example:

        ```python
        state = evaluator.executor_state()
        replica = kb.Evaluator.from_executor_state(model_copy, state)
        replica.evaluate(plans)          # the same scores as evaluator.evaluate(plans)
        ```
        """
        replica = cls.__new__(cls)
        replica._build(model, state["settings"],
                       lambda: replica._set_subsets(*state["subsets"]))
        replica.executor = None
        return replica

    def executor_state(self):
        """What an executor sends its workers: the settings and the drawn subsets (plain data).

        `from_executor_state` rebuilds an evaluator that scores every plan as
        this one does.
        """
        return {"settings": dict(self._settings, racing=None, verbose=0),
                "subsets": (self.x_eval, self.y_eval, self.x_calibration, self.y_calibration)}

    def _build(self, model, settings, draw):
        """Checks the settings, traces the model, draws the subsets (``draw()``), picks an engine."""
        self.graph = trace(model)
        if len(model.outputs) != 1:
            raise EvaluationError(
                f"The evaluator scores models with one output. Received: model {model.name!r} "
                f"with {len(model.outputs)} outputs. Wrap it as keras.Model(model.inputs, "
                "model.outputs[i]) for the output to score."
            )
        batch_size, max_parallel = settings["batch_size"], settings["max_parallel"]
        for name, value in (("batch_size", batch_size),
                            ("max_parallel", 1 if max_parallel is None else max_parallel)):
            check_int(name, value, 1, EvaluationError, expected="a positive int")
        self.model = model
        self.batch_size = batch_size
        self.adaptive_bn = bool(settings["adaptive_bn"])
        self.max_parallel = max_parallel or max(1, 2048 // batch_size)
        self.verbose = settings["verbose"]
        self.racing = Racing.coerce(settings["racing"])
        self.n_evaluations = 0
        self.n_images_scored = 0
        self.last_race = None
        draw()
        self._metric, name = resolve_metric(settings["metric"], self.y_eval,
                                            model.outputs[0].shape)
        greater_is_better = settings["greater_is_better"]
        self.greater_is_better = (
            guess_greater_is_better(name) if greater_is_better is None
            else bool(greater_is_better)
        )
        self._baseline = None
        self._engine = self._choose_engine(settings["engine"], GraphProgram(model))
        self.engine = self._engine.name
        self.group_size = self._engine.group_size
        self._settings = dict(settings, max_parallel=self.max_parallel,
                              greater_is_better=self.greater_is_better)

    def _choose_engine(self, engine, program):
        if engine not in ("auto", "batched", "sliced"):
            raise EvaluationError(
                f"engine must be 'auto', 'batched' or 'sliced'. Received: engine={engine!r}."
            )
        backend = keras.backend.backend()
        reason = f"the sliced engine needs the TensorFlow backend (Keras runs on {backend!r})"
        if engine != "batched" and backend == "tensorflow":
            from keras_biprune.evaluate import _sliced_tf

            reason = _sliced_tf.unsupported_reason(program)
            if reason is None:
                return _sliced_tf.SlicedEngine(self.graph, program, self.adaptive_bn)
        if engine == "sliced":
            raise EvaluationError(
                f"The sliced engine cannot run model {self.model.name!r}: {reason}. "
                "Received: engine='sliced'. Use engine='batched' (or 'auto')."
            )
        if engine == "auto":
            logger.info("Evaluator uses the batched engine: %s.", reason)
        return MaskedEngine(self.graph, program, self.adaptive_bn, self.max_parallel,
                            self.batch_size)

    def _draw(self, data, eval_size, calibration_size, seed):
        x, y = samples(data, self.model, "evaluator", eval_size + calibration_size, 1024,
                       subset=True, seed=seed, need_y=True)
        n = len(y)
        order = np.random.default_rng(seed).permutation(n)
        n_eval = min(eval_size, n)
        rest = order[n_eval:]
        calibration = rest[:calibration_size] if len(rest) else order[:calibration_size]
        if not len(rest) and self.adaptive_bn and any(
                isinstance(r.op, keras.layers.BatchNormalization) for r in self.graph.records):
            logger.warning("The evaluator calibrates batch norm on its evaluation samples: "
                           "the data has only %d samples.", n)
        self._set_subsets([a[order[:n_eval]] for a in x], y[order[:n_eval]],
                          [a[calibration] for a in x], y[calibration])

    def _set_subsets(self, x_eval, y_eval, x_calibration, y_calibration):
        self.x_eval, self.y_eval = x_eval, y_eval
        self.x_calibration, self.y_calibration = x_calibration, y_calibration
        n_eval = len(y_eval)
        self._eval_batches = [
            [_pad(a[i:i + self.batch_size], self.batch_size) for a in self.x_eval]
            for i in range(0, n_eval, self.batch_size)
        ]

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
            plans eliminated early follow `Racing`'s rules.
        """
        plans = [checked_plan(self.graph, plan) for plan in _as_plans(plans)]
        if self.executor is None:
            self._engine.start(plans)
            scores = self._race(plans)
        else:
            scores = np.asarray(self.executor.score(self, plans), dtype="float64")
            self._note_race(len(plans), None, [{"images": len(self.y_eval),
                                                "candidates": len(plans)}],
                            list(range(len(plans))))
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
        group_size = self._engine.group_size
        sign = 1.0 if self.greater_is_better else -1.0
        oriented = np.full(count, -np.inf)
        stopped = np.zeros(count, dtype=int)
        states, outputs = [None] * count, [[] for _ in plans]
        alive, done, index, executed, raced = list(range(count)), 0, 0, 0, []
        progress = self._progress(count)
        screen = None
        if (self.racing is not None and self.racing.screen and count > 1
                and self._engine.calibrates):
            # The calibration pass scores every candidate on the calibration
            # samples: the best `keep` share go on to the evaluation images.
            for start in range(0, count, group_size):
                group = alive[start:start + group_size]
                for i, calibrated in self._prepare_missing(group, plans, states):
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
            raced.append({"images": seen, "candidates": len(alive)})
            for start in range(0, len(alive), group_size):
                group = alive[start:start + group_size]
                self._prepare_missing(group, plans, states)
                predictions = self._engine.predict([states[i] for i in group],
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
        self._note_race(count, screen, raced, alive)
        return sign * settle(oriented, stopped, executed, np.isfinite(oriented))

    def _prepare_missing(self, group, plans, states):
        """Prepares the candidates of ``group`` without a state yet, into ``states``.

        Returns ``(index, outputs on the calibration samples)`` for each.
        """
        todo = [i for i in group if states[i] is None]
        if not todo:
            return []
        prepared = self._engine.prepare([plans[i] for i in todo], self.x_calibration)
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

    def _note_race(self, count, screen, stages, finished):
        """Sets ``last_race`` and adds its image passes to ``n_images_scored``."""
        scored, previous = 0, 0
        for stage in stages:
            scored += stage["candidates"] * (stage["images"] - previous)
            previous = stage["images"]
        self.n_images_scored += scored
        self.last_race = {"candidates": count, "finished": list(finished), "screen": screen,
                          "stages": stages, "images_scored": scored,
                          "images_exact": count * len(self.y_eval)}

    def _score(self, predictions, y):
        worst = -np.inf if self.greater_is_better else np.inf
        if not np.isfinite(predictions).all():
            return worst
        value = self._metric(y, predictions)
        return value if np.isfinite(value) else worst


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
