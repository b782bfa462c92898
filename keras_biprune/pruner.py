"""BiLevelPruner: search, prune, fine-tune and export, as one Keras-style estimator."""

import json
import logging
import math
import os
import time

import keras
import numpy as np

from keras_biprune import _defaults
from keras_biprune import criteria as criteria_module
from keras_biprune import search as search_module
from keras_biprune._backend import on_own_devices
from keras_biprune._checks import check_data
from keras_biprune._data import even_split, hold_out
from keras_biprune._estimator import Estimator
from keras_biprune._progress import Phases, fit_verbosity
from keras_biprune._validate import (
    check_choice,
    check_executor,
    check_int,
    check_model,
    check_number,
)
from keras_biprune.errors import BiPruneError, SearchError
from keras_biprune.evaluate import (
    Evaluator,
    LatencyModel,
    check_runtime,
    cost,
    forward_call,
    paired,
)
from keras_biprune.graph import trace
from keras_biprune.plan import compose
from keras_biprune.report import format_report
from keras_biprune.search import ParetoFront, Solution
from keras_biprune.surgery import PruningPlan, apply_plan
from keras_biprune.training import (
    compile_config,
    finetune,
    is_classifier,
    recalibrate_batch_norm,
    recovery_epochs,
    steps_per_epoch,
)

logger = logging.getLogger(__name__)

METHODS = ("bilevel", "nsga2")
_FORMAT = "keras_biprune.BiLevelPruner"


class BiLevelPruner(Estimator):
    """Prunes a trained Keras model by evolutionary search, then fine-tunes it.

    ``fit`` (1) holds out part of the training data for the search (or uses
    ``search_data``; never ``validation_data``), (2) scores plans there with
    a `keras_biprune.Evaluator` (adaptive batch norm by default), (3) runs
    the bi-level co-evolution (``method="bilevel"``, see
    `keras_biprune.search.BiLevelSearch`) or the one-shot NSGA-II search
    (``"nsga2"``, `keras_biprune.search.NSGA2Search`), (4) rebuilds a smaller
    model by layer surgery and (5) fine-tunes it with the original model's
    optimizer, loss and metrics (fresh copies), optionally distilling from
    the unpruned model. With ``"nsga2"``, ``n_select`` solutions of the front
    under the FLOPs budget are fine-tuned once each and the best on the
    validation data is kept; all are in ``candidates_``.

    The budget is hit: the pruned model keeps between ``target_flops - 0.03``
    and ``target_flops`` of the FLOPs (dense multiply-accumulates; see
    `keras_biprune.search.Budget`), and the search looks for the most
    accurate plan there. ``max_accuracy_drop`` is then checked on the
    validation data (else the search data) after recovery: when it does not
    hold, a warning names the drop found and the plan is kept. Without
    ``target_flops`` (None) the bi-level search looks for the smallest plan
    within ``max_accuracy_drop`` instead (the bi-level papers' problem; the
    unpruned model always qualifies).

    Recovery is built in: the slim model's batch-norm statistics are
    re-estimated, then it is fine-tuned with a fresh copy of the original
    optimizer whose learning rate decays along a cosine (``schedule``),
    distilling from the original model when it is a classifier, stopping
    when the validation accuracy has not improved for ``patience`` epochs
    and restoring the best epoch's weights. Without ``epochs``, fine-tuning
    runs about 2,000 optimizer steps (`keras_biprune.training.recovery_epochs`:
    2 to 30 epochs).

    ``__init__`` only stores its arguments (scikit-learn rules); they are
    checked when ``fit`` starts. The model is never modified.

    Args:
        model: a trained functional or Sequential Keras model, compiled (or
            pass ``compile_kwargs``).
        method: ``"bilevel"`` or ``"nsga2"``.
        target_flops: the share of the model's FLOPs to keep, in (0, 1], or
            None (``"bilevel"`` with ``max_accuracy_drop``: the smallest plan
            within it).
        target_latency: the share of the model's latency to keep on
            ``runtime`` at ``latency_batch_size``, in (0, 1], or None. Plans
            are repaired to it as predicted by a
            `keras_biprune.evaluate.LatencyModel` of the runtime on this
            machine (built once, cached on disk); with ``target_flops`` too,
            a plan meets both. Widths then move in steps of the latency
            model's ``lanes`` where they exceed ``round_to`` (a width
            between costs what the next multiple does). After the search
            the pruned model is timed against the original:
            ``report_["latency"]`` holds the predicted and measured ratios.
        runtime: what ``target_latency`` is measured on: ``"tflite"`` (float
            TFLite, XNNPACK, on one thread), ``"tf"`` (a compiled TensorFlow
            call), or a `keras_biprune.evaluate.LatencyModel` already built
            for the model (e.g. ``LatencyModel.build(model, "tflite",
            threads=4)`` for another thread count).
        latency_batch_size: samples per call of the latency target.
        max_accuracy_drop: the accuracy drop allowed after recovery (metric
            units; 0.01 is one point), checked with a warning; or None.
        channel_granularity: what the bi-level search's lower level
            removes: None (default: no lower level, every layer reads all
            the channels its producers keep), ``"layer"`` (input channels
            removed per layer, read through a gather) or ``"filter"``
            (per-filter kernel zeros, kept through fine-tuning; only a
            sparse-aware runtime turns them into speed). The gathers of
            ``"layer"`` cost more time than their narrower kernels save: on
            ResNet-20 at half the FLOPs its plans ran at 0.92-0.97 of the
            TF latency at batch 64, against 0.82 without input masks, and
            after recovery were 0.11 points more accurate, within the
            spread of two seeds (``docs/benchmarks.md``).
        round_to: every pruned group keeps a multiple of this many channels
            (a group with fewer than three such steps counts in halves of
            it; single channels only where steps cannot reach the budget),
            and every layer that reads
            fewer input channels (``channel_granularity="layer"``) reads a
            multiple of it. Widths in multiples of 8
            let CPU kernels (oneDNN, XNNPACK) vectorize, so a FLOPs cut
            becomes a latency cut (see ``docs/benchmarks.md``); 1 searches
            every width.
        criteria: the criterion ranking channels: a name, a criterion, or
            ``"blend"`` (a blend of criteria calibrated on the search data
            by `keras_biprune.search.calibrate_blend`).
        metric: the evaluator's metric.
        search_fraction: the share of array training data held out for the
            search when ``search_data`` is not given.
        eval_size: see `keras_biprune.Evaluator`.
        calibration_size: see `keras_biprune.Evaluator`.
        adaptive_bn: see `keras_biprune.Evaluator`.
        racing: see `keras_biprune.Evaluator`: None scores every candidate
            on every evaluation image; ``True`` or a `keras_biprune.evaluate.Racing`
            spends them only on the candidates still in contention.
        search_kwargs: more arguments for the search class (``generations``,
            ``population_size``, ``max_evaluations``, …).
        n_select: ``"nsga2"`` only: front solutions fine-tuned.
        finalists: ``"bilevel"``: how many plans race on short recoveries
            before the full one: the search's best plans but one, and the
            criterion's uniform plan at the budget, what the criterion alone
            prunes, which the search's plans must beat after a short
            recovery, not only before it (1: the best by its score before
            recovery, no race). Each round gives every finalist
            ``finalist_steps`` more optimizer steps (distilled like the full
            recovery), scores it on the search data and keeps the better
            half, until one is left. None (default): 4 for one-shot
            pruning, 1 with ``steps > 1``. Over 16 plans each of VGG-small
            and ResNet-20 the score after 100 such steps ranked the plans
            by their accuracy after the full recovery as well as or better
            than the score before it (Spearman -0.17 against -0.18, and
            +0.33 against 0.00; ``docs/benchmarks.md``).
        finalist_steps: optimizer steps a finalist gets per round.
        steps: ``"bilevel"``: reach ``target_flops`` in this many stages
            (iterative pruning): stage ``i`` of ``k`` searches the model the
            stage before left, at ``target_flops ** (i / k)`` of the
            original's FLOPs, and (but for the last) prunes its filters and
            recovers for ``stage_steps`` optimizer steps, distilled like the
            full recovery. 1: one-shot.
        stage_steps: optimizer steps of the recovery between stages.
        compile_kwargs: ``model.compile`` arguments for fine-tuning instead of
            the original's.
        temperature: distillation temperature (see
            `keras_biprune.training.finetune`).
        alpha: distillation weight (see `keras_biprune.training.finetune`).
        schedule: the fine-tuning learning rate: ``"cosine"`` (from the
            original optimizer's down to zero) or None (the optimizer's own).
        patience: epochs without a better validation accuracy before
            fine-tuning stops (the best epoch's weights are restored), or None.
        recalibrate_bn: re-estimate batch-norm statistics before and after
            fine-tuning.
        checkpoint_dir: where the search saves its state every generation
            (a rerun resumes).
        executor: where the search's candidates are scored: None (this
            process) or an executor such as
            `keras_biprune.distributed.RayExecutor` (see
            `keras_biprune.Evaluator`; same scores, needs ``racing=None``).
            Not saved by `save`: a loaded pruner scores in this process.
        random_state: seed of the data split, the search and the shuffles.
        verbose: 0 silent; 1 a line per phase and progress (redrawn in place on a
            terminal, plain lines elsewhere); 2 plain lines everywhere.

    Attributes:
        pruned_model_: the fine-tuned slim model.
        plan_: its `PruningPlan` (replay with ``kb.apply_plan(model, plan_)``).
        pareto_front_: the `ParetoFront` of the searched plans.
        search_history_: per generation records of the search.
        history_: the fine-tuning ``History``.
        candidates_: ``"nsga2"``: dicts with plan, model, history, score.
        report_: a dict of the figures ``summary`` prints.
        evaluator_: the `Evaluator` used by the search.
        latency_model_: with ``target_latency``, the
            `keras_biprune.evaluate.LatencyModel` the search was repaired by.

    Example:

    ```python
    import keras_biprune as kb
    pruner = kb.BiLevelPruner(model, target_flops=0.5)
    history = pruner.fit(x_train, y_train, validation_data=(x_val, y_val))
    print(pruner.summary())
    pruner.export("pruned", representative_data=x_train[:200])
    ```
    """

    def __init__(self, model, method="bilevel", target_flops=0.5, target_latency=None,
                 runtime="tflite", latency_batch_size=1, max_accuracy_drop=0.01,
                 channel_granularity=None, round_to=8, criteria="l1", metric="accuracy",
                 search_fraction=0.1, eval_size=1024, calibration_size=256, adaptive_bn=True,
                 racing=None, search_kwargs=None, n_select=3, finalists=None, finalist_steps=100,
                 steps=1, stage_steps=300, compile_kwargs=None, temperature=4.0,
                 alpha=0.5, schedule="cosine", patience=3, recalibrate_bn=True,
                 checkpoint_dir=None, executor=None, random_state=0, verbose=1):
        self.model = model
        self.method = method
        self.target_flops = target_flops
        self.target_latency = target_latency
        self.runtime = runtime
        self.latency_batch_size = latency_batch_size
        self.max_accuracy_drop = max_accuracy_drop
        self.channel_granularity = channel_granularity
        self.round_to = round_to
        self.criteria = criteria
        self.metric = metric
        self.search_fraction = search_fraction
        self.eval_size = eval_size
        self.calibration_size = calibration_size
        self.adaptive_bn = adaptive_bn
        self.racing = racing
        self.search_kwargs = search_kwargs
        self.n_select = n_select
        self.finalists = finalists
        self.finalist_steps = finalist_steps
        self.steps = steps
        self.stage_steps = stage_steps
        self.compile_kwargs = compile_kwargs
        self.temperature = temperature
        self.alpha = alpha
        self.schedule = schedule
        self.patience = patience
        self.recalibrate_bn = recalibrate_bn
        self.checkpoint_dir = checkpoint_dir
        self.executor = executor
        self.random_state = random_state
        self.verbose = verbose

    def _validate(self, timed=False):
        """Checks the arguments, then that the runtime is installed (``timed``: also the
        runtime of a given `LatencyModel`, which fit times the pruned model on)."""
        check_model(self.model, "BiLevelPruner")
        check_choice("method", self.method, METHODS, SearchError)
        check_choice("channel_granularity", self.channel_granularity,
                     (None, *_defaults.GRANULARITIES), SearchError,
                     fix="None keeps every input channel (no lower level).")
        t = self.target_flops
        if self._main_target()[0] is None and (self.method != "bilevel"
                                          or self.max_accuracy_drop is None):
            raise SearchError(
                "Without target_flops the bi-level search looks for the smallest plan within "
                "max_accuracy_drop, so it needs method='bilevel' and a max_accuracy_drop. "
                f"Received: target_flops=None, method={self.method!r}, max_accuracy_drop="
                f"{self.max_accuracy_drop!r}. Give target_flops (e.g. 0.5) or target_latency."
            )
        if self._main_target()[0] is None and self.criteria == "blend":
            raise SearchError(
                "criteria='blend' calibrates its blend at the FLOPs target, so it needs one. "
                "Received: target_flops=None. Give target_flops (e.g. 0.5) or another criterion."
            )
        for name, value in (("target_flops", t), ("target_latency", self.target_latency)):
            if value is not None:
                what = name[7:].replace("flops", "FLOPs")
                check_number(name, value, SearchError, 0, 1, open_low=True,
                             fix=f"{name} is the share of {what} to keep: use e.g. 0.5 to "
                                 "halve it.")
        if self.target_latency is not None:
            self._check_latency_settings()
        check_int("steps", self.steps, 1, SearchError,
                  expected="the number of pruning stages, an int >= 1",
                  fix="Use 1 for one-shot pruning, e.g. 3 for three stages.")
        if self.finalists is not None:
            check_int("finalists", self.finalists, 1, SearchError,
                      expected="the number of the search's best plans that race, an int >= 1",
                      fix="Use 1 for no race, or None for the default.")
        if self.steps > 1 and (self.method != "bilevel" or t is None
                               or self.finalists not in (None, 1)):
            raise SearchError(
                "Pruning in stages (steps > 1) runs the bi-level search at each stage's FLOPs "
                "target and keeps its best plan, so it needs method='bilevel', a target_flops "
                f"and finalists=1. Received: steps={self.steps}, method={self.method!r}, "
                f"target_flops={t!r}, finalists={self.finalists}. Use steps=1 for those."
            )
        check_executor(self.executor, SearchError)
        check_number("search_fraction", self.search_fraction, SearchError, 0, 1, open_low=True,
                     open_high=True)
        owned = sorted(set(self.search_kwargs or {}) & set(_OWN_SEARCH_ARGS))
        if owned:
            raise SearchError(
                f"search_kwargs repeats settings BiLevelPruner passes to the search itself. "
                f"Received: search_kwargs keys {owned}. Pass them as BiLevelPruner arguments "
                f"instead: " + ", ".join(f"{k} -> {_OWN_SEARCH_ARGS[k]}=" for k in owned) + "."
            )
        compile_config(self.model, self.compile_kwargs)
        # Whether the runtime is installed here, once the arguments are known to be right: a
        # runtime named builds its tables on it, and fit times the pruned model on it.
        if self.target_latency is not None and (timed or not isinstance(self.runtime,
                                                                         LatencyModel)):
            check_runtime(getattr(self.runtime, "runtime", self.runtime))

    # ------------------------------------------------------------ the steps
    def fit(self, x=None, y=None, *, validation_data=None, search_data=None, distill="auto",
            callbacks=None, **fit_kwargs):
        """Searches, prunes and fine-tunes; see the class docstring.

        Args:
            x: training data, as ``model.fit`` takes it (arrays,
                ``tf.data.Dataset``, ``keras.utils.PyDataset``).
            y: training targets, as ``model.fit`` takes them.
            validation_data: passed to fine-tuning; the search never sees it.
            search_data: ``(x, y)`` or a dataset the search scores plans on.
                Default: ``search_fraction`` of array training data, or the
                first batches of a dataset of known length.
            distill: distill from the unpruned model while fine-tuning:
                ``"auto"`` (when its loss is a categorical cross-entropy),
                True or False.
            callbacks: Keras callbacks for fine-tuning (deep-copied).
            **fit_kwargs: passed to ``model.fit`` (``epochs``, ``batch_size``, …).
                Without ``epochs``, about 2,000 optimizer steps' worth.

        Returns:
            The fine-tuning ``History`` (of the kept candidate for ``"nsga2"``; also
            ``history_``), as ``model.fit`` returns one.
        """
        self._validate(timed=True)
        check_data(self.model, x, y, validation_data=validation_data, search_data=search_data,
                   compile_kwargs=self.compile_kwargs)
        x_train, y_train, search_data = self._split(x, y, search_data)
        phases = Phases(self.verbose)
        fit_kwargs.setdefault("epochs", self._default_epochs(x_train, fit_kwargs))
        if self.steps > 1:
            self._prune_in_stages(x_train, y_train, search_data, distill, fit_kwargs, phases)
        else:
            phases.start("search", f"{self.method}, {self._budget_text()}")
            self.search(search_data=search_data)
        recovery = (f"up to {fit_kwargs['epochs']} epoch(s)"
                    + (", distilled from the original" if self._distills(distill) else ""))
        if self.method == "bilevel":
            if self._finalists() > 1:
                phases.start("race", f"{self._finalists()} finalists, {self.finalist_steps} "
                                     "optimizer steps a round")
                self.race(x_train, y_train, search_data=search_data, distill=distill,
                          **fit_kwargs)
            phases.start("fine-tuning", recovery)
            history = self.finetune(x_train, y_train, validation_data=validation_data,
                                    distill=distill, callbacks=callbacks, **fit_kwargs)
            self._check_accuracy(validation_data, search_data)
            self._check_latency()
            phases.done()
            return history
        target, measure = self._main_target()
        pool = [s for s in self.pareto_front_ if s.cost <= target]
        if not pool:
            raise SearchError(
                f"No plan on the NSGA-II front keeps at most {target} of the {measure}. "
                f"Received: a front with costs {np.round(self.pareto_front_.costs, 3).tolist()}."
                " Raise max_prune_ratio or generations in search_kwargs, or the target."
            )
        selected = ParetoFront(pool, self.pareto_front_.greater_is_better).select(self.n_select)
        plans = {}
        for solution in selected:            # each raised to the budget (distinct ones)
            plan = self._at_budget(solution.plan)
            plans.setdefault(plan, plan)
        scored_on = validation_data if validation_data is not None else search_data
        for i, plan in enumerate(plans.values()):
            phases.start(f"fine-tuning {i + 1}/{len(plans)}", recovery)
            self.plan_ = plan
            history = self.finetune(x_train, y_train, validation_data=validation_data,
                                    distill=distill, callbacks=callbacks, **fit_kwargs)
            self.candidates_.append({"plan": plan, "model": self.pruned_model_,
                                     "history": history,
                                     "score": self._score(self.pruned_model_, scored_on)})
        best = max(self.candidates_, key=lambda c: c["score"])
        self.plan_, self.pruned_model_, self.history_ = best["plan"], best["model"], best["history"]
        self._fill_report(validation_data)
        self._check_accuracy(validation_data, search_data)
        self._check_latency()
        phases.done()
        return self.history_

    def search(self, x=None, y=None, *, search_data=None):
        """Runs the search only (forgetting any earlier fit); sets ``plan_``, ``pareto_front_``,
        ``search_history_``.

        Args:
            x: the data to search on (or pass ``search_data``).
            y: its targets.
        """
        self._validate()
        check_data(self.model, x, y, search_data=search_data, compile_kwargs=self.compile_kwargs,
                   who="search")
        self._reset()
        data = search_data if search_data is not None else (x if y is None else (x, y))
        started = time.perf_counter()
        result = self._search_on(self.model, data, self.target_flops)
        self.report_["search"] = {"method": self.method, "evaluations": result.n_evaluations,
                                  "seconds": time.perf_counter() - started,
                                  "best_score": result.best.score, "best_cost": result.best.cost,
                                  "baseline_score": self.evaluator_.baseline}
        return self

    def _search_on(self, model, data, target):
        """The pruner's search on ``model`` at ``target`` of its FLOPs; sets ``plan_`` and more.

        Sets ``evaluator_``, ``search_result_``, ``plan_`` (the best plan,
        raised to the budget's band), ``pareto_front_``, ``search_history_``.
        """
        self.evaluator_ = Evaluator(model, data, metric=self.metric, eval_size=self.eval_size,
                                    calibration_size=self.calibration_size,
                                    adaptive_bn=self.adaptive_bn, racing=self.racing,
                                    executor=self.executor, random_state=self.random_state)
        main, measure = self._main_target(target)
        criterion = self.criteria
        if criterion == "blend":
            criterion = search_module.calibrate_blend(
                self.evaluator_, model, keep=math.sqrt(main),
                random_state=self.random_state, verbose=self.verbose)
        settings = {"criterion": criterion, "round_to": self.round_to,
                    "random_state": self.random_state,
                    "checkpoint_dir": self.checkpoint_dir, "verbose": self.verbose}
        if self.target_latency is not None:
            self.latency_model_ = (self.runtime if isinstance(self.runtime, LatencyModel) else
                                   LatencyModel.build(model, self.runtime,
                                                      self.latency_batch_size,
                                                      round_to=self.round_to,
                                                      graph=self.evaluator_.graph,
                                                      verbose=self.verbose))
            settings |= {"measure": "latency", "latency_model": self.latency_model_,
                         "extra_targets": None if target is None else {"flops": target},
                         "round_to": max(self.round_to, self.latency_model_.lanes)}
        if self.method == "bilevel":
            # With a cost target every plan is fitted to it, so the search ranks plans by
            # their accuracy; max_accuracy_drop is checked after recovery (_check_accuracy).
            epsilon = self.max_accuracy_drop if main is None else None
            # Without a granularity, no lower level: the upper level alone meets the target.
            levels = ({"upper_slack": 0, "lower_share": 0} if self.channel_granularity is None
                      else {"channel_granularity": self.channel_granularity})
            search = search_module.BiLevelSearch(
                self.evaluator_, target=main, max_accuracy_drop=epsilon, **settings,
                **(levels | (self.search_kwargs or {})))
        else:
            search = search_module.NSGA2Search(
                self.evaluator_, **({"max_accuracy_drop": 1.0} | settings
                                    | (self.search_kwargs or {})))
        result = search.run()
        self._search, self._target = search, main
        if main is not None and self.method == "bilevel" and result.best.cost > main + 1e-9:
            raise SearchError(
                f"No plan keeps at most {main:.3f} of the {measure}: the smallest the search "
                f"reached keeps {result.best.cost:.3f}. Raise target_{measure}, or pass "
                "search_kwargs={'upper_slack': 0} so the upper level alone meets it."
            )
        self.search_result_, self._searched_on = result, data
        self.plan_ = self._at_budget(result.best.plan)
        self.pareto_front_ = result.front
        self.search_history_ = result.history
        return result

    def prune(self, plan=None):
        """A new slim model from ``plan`` (default ``plan_``); the original is untouched."""
        plan = plan if plan is not None else getattr(self, "plan_", None)
        if plan is None:
            raise BiPruneError("No plan yet. Received: prune() before search(). Call fit or "
                               "search first, or pass prune(plan=...).")
        return apply_plan(self.model, plan)

    def finetune(self, x=None, y=None, *, validation_data=None, distill="auto", callbacks=None,
                 **fit_kwargs):
        """Prunes with ``plan_`` and recovers; sets ``pruned_model_`` and ``history_``.

        See the class docstring (recovery) and `fit` for the arguments.
        """
        self._validate()
        started = time.perf_counter()
        slim = self._pruned(x, y)
        fit_kwargs.setdefault("epochs", self._default_epochs(x, fit_kwargs))
        self.history_ = self._recover(slim, x, y, distill, callbacks=callbacks,
                                      validation_data=validation_data, **fit_kwargs)
        if self.recalibrate_bn and x is not None:
            recalibrate_batch_norm(slim, x if y is None else (x, y))
        self.pruned_model_ = slim
        self.report_["finetune_seconds"] = time.perf_counter() - started
        if self.method == "bilevel":
            self._fill_report(validation_data)
        return self.history_

    def _prune_in_stages(self, x, y, search_data, distill, fit_kwargs, phases):
        """Searches ``steps`` stages; all but the last are pruned and briefly recovered.

        Stage ``i`` searches the model stage ``i - 1`` left at the share of
        its FLOPs that keeps ``target_flops ** (i / steps)`` of the
        original's. A stage but the last keeps its best plan's filters
        (input masks dropped: they would add layers), raised or cut to the
        band, and recovers for ``stage_steps`` steps. ``plan_`` and
        ``pareto_front_`` are written on the original model (`compose`);
        ``stages_[-1]`` holds the model and plan the full recovery starts from.
        """
        self._reset()
        started, graph = time.perf_counter(), self._graph()
        full = cost(graph).macs
        model, done, history, evaluations = self.model, PruningPlan.keep_all(graph), [], 0
        short = self._short_recovery(x, fit_kwargs, self.stage_steps)
        for stage in range(1, self.steps + 1):
            target = self.target_flops ** (stage / self.steps)
            kept = cost(graph, done).macs / full
            phases.start(f"search {stage}/{self.steps}",
                         f"{self.method}, at most {target:.0%} of the original's FLOPs")
            result = self._search_on(model, search_data, min(1.0, target / kept))
            history += [dict(entry, stage=stage) for entry in result.history]
            evaluations += result.n_evaluations
            self.stages_.append({"model": model, "plan": self.plan_, "target": target})
            if stage == self.steps:
                break
            plan = self._search.fill(PruningPlan(self.plan_.keep, signature=self.plan_.signature),
                                     self._target)
            phases.start(f"recovery {stage}/{self.steps}",
                         f"{self.stage_steps} optimizer steps")
            slim = self._pruned(x, y, model, plan)
            self._recover(slim, x, y, distill, **short)
            done, model = compose(graph, done, plan), slim
            self.stages_[-1].update(plan=plan, flops_kept=cost(graph, done).macs / full,
                                    score=self._score(slim, search_data))
        self.pareto_front_ = ParetoFront(
            [Solution(compose(graph, done, s.plan), s.score, s.cost * kept)
             for s in self.pareto_front_], self.pareto_front_.greater_is_better)
        self.plan_ = compose(graph, done, self.plan_)
        self.search_history_ = history
        self.report_["search"] = {"method": self.method, "steps": self.steps,
                                  "evaluations": evaluations,
                                  "seconds": time.perf_counter() - started,
                                  "baseline_score": self.evaluator_.baseline}
        self.report_["stages"] = [{k: v for k, v in stage.items() if k not in ("model", "plan")}
                                  for stage in self.stages_]

    def _short_recovery(self, x, fit_kwargs, steps):
        """``model.fit`` arguments of a recovery of about ``steps`` optimizer steps, silent."""
        per_epoch = steps_per_epoch(x, fit_kwargs) or 1
        short = {"epochs": math.ceil(steps / per_epoch),
                 "steps_per_epoch": min(steps, per_epoch), "verbose": 0}
        if "batch_size" in fit_kwargs:
            short["batch_size"] = fit_kwargs["batch_size"]
        return short

    @staticmethod
    def _default_epochs(x, fit_kwargs):
        """Epochs of about 2,000 optimizer steps (`keras_biprune.training.recovery_epochs`)."""
        return recovery_epochs(steps_per_epoch(x, fit_kwargs) or 1)

    def _distills(self, distill):
        """Whether recovery distills from the original (``"auto"``: when it is a classifier)."""
        return is_classifier(self.model, self.compile_kwargs) if distill == "auto" else distill

    def _at_budget(self, plan):
        """``plan`` raised to the budget's band when it is under it (upper-level plans only).

        A bi-level plan's lower level can only cut input channels, so on a
        narrow model a single channel may be worth more than the band: its
        groups then get channels back here. Under a latency target alone the
        plan is also grown to keep the most FLOPs that latency buys
        (`keras_biprune.search.Search.fill`). Plans that keep input or
        kernel masks are left as they are.
        """
        if self._target is None or plan.inputs or plan.kernels:
            return plan
        return self._search.fill(plan, self._target)

    def _pruned(self, x, y, model=None, plan=None):
        """A new slim model of ``plan`` (default: ``plan_``, or the last stage's plan of the
        model the stage before left), its batch-norm statistics re-estimated on ``x``."""
        if model is None:
            model, plan = ((self.stages_[-1]["model"], self.stages_[-1]["plan"]) if self.stages_
                           else (self.model, self.plan_))
        slim = apply_plan(model, plan)
        if self.recalibrate_bn and x is not None:
            recalibrate_batch_norm(slim, x if y is None else (x, y))
        return slim

    def _recover(self, slim, x, y, distill, **fit_kwargs):
        """``finetune`` with the pruner's recovery settings (kernel zeros held)."""
        distill = self._distills(distill)
        masks = {path: _kernel_nonzero(_layer_at(slim, path)) for path in self.plan_.kernels}
        return finetune(
            slim, self.model, x, y, compile_kwargs=self.compile_kwargs,
            teacher=self.model if distill else None, temperature=self.temperature,
            alpha=self.alpha, kernel_masks=masks, shuffle_seed=self.random_state,
            schedule=self.schedule, patience=self.patience,
            verbose=fit_kwargs.pop("verbose", fit_verbosity(self.verbose)), **fit_kwargs)

    def _finalists(self):
        """How many plans race: ``finalists``, or by default `_defaults.FINALISTS` one-shot
        and 1 in stages."""
        if self.finalists is not None:
            return self.finalists
        return 1 if self.steps > 1 else _defaults.FINALISTS

    def race(self, x=None, y=None, *, search_data=None, distill="auto", **fit_kwargs):
        """Races the search's best plans through short recoveries; keeps the best after them.

        `fit` runs it between the search and fine-tuning: the search's
        ``finalists - 1`` best plans and the criterion's uniform plan at the
        budget each recover for ``finalist_steps``
        optimizer steps, are scored, and the weaker half is dropped, round
        after round, until one is left (its accuracy after a short recovery
        predicted the accuracy after a full one better than the score before
        recovery did; see docs/benchmarks.md). Call it after `search` to
        choose as `fit` does before a recovery of your own. With one
        finalist nothing is raced. ``report_["race"]`` records the rounds.

        Args:
            x: training data of the short recoveries, as `fit` takes it.
            y: its targets.
            search_data: ``(x, y)`` or a dataset the finalists are scored on
                after each round (default: the data `search` scored plans on).
            distill: distill from the unpruned model, as in `fit`.
            **fit_kwargs: as in `fit` (``batch_size`` sizes the short
                recoveries).

        Returns:
            The plan kept (also ``plan_``).

        Raises:
            BiPruneError: before `search`, or with ``method="nsga2"`` (whose
                `fit` fine-tunes each of its selections instead).

        Example:

        ```python
        pruner = kb.BiLevelPruner(model, target_flops=0.5)
        pruner.search(x_search, y_search)
        plan = pruner.race(x_train, y_train)              # as fit chooses
        pruner.finetune(x_train, y_train, epochs=10)
        ```
        """
        if getattr(self, "search_result_", None) is None or self.method != "bilevel":
            raise BiPruneError(
                "race() chooses among the plans of a bi-level search. Received: "
                + (f"method={self.method!r}; NSGA-II's fit fine-tunes each selected plan"
                   if self.method != "bilevel" else "race() before search()")
                + ". Call search first, with method='bilevel'.")
        check_data(self.model, x, y, search_data=search_data,
                   compile_kwargs=self.compile_kwargs, who="race")
        if self._finalists() > 1:
            self.plan_ = self._race(x, y, self._searched_on if search_data is None
                                    else search_data, distill, fit_kwargs)
        return self.plan_

    def _race(self, x, y, search_data, distill, fit_kwargs):
        """The finalist plan that scores best on the search data after short recoveries.

        The finalists are the search's best plans but one, and the criterion's uniform plan
        at the budget (`BiLevelSearch.uniform`; the next best plan when they coincide).
        """
        n = self._finalists()
        before = ({self._at_budget(s.plan): s.score for s in self.search_result_.ranked[:n]}
                  or {self.plan_: self.search_result_.best.score})
        ranked = list(before)
        uniform = [] if self._target is None else [self._search.uniform(self._target)]
        plans = list(dict.fromkeys(ranked[:n - 1] + uniform + ranked[n - 1:]))[:n]
        short = self._short_recovery(x, fit_kwargs, self.finalist_steps)
        models, alive, rounds = {}, list(range(len(plans))), []
        while len(alive) > 1:
            scores = {}
            for i in alive:
                self.plan_ = plans[i]
                if i not in models:
                    models[i] = self._pruned(x, y)
                self._recover(models[i], x, y, distill, **short)
                scores[i] = self._score(models[i], search_data)
            rounds.append(scores)
            alive = sorted(alive, key=lambda i: -scores[i])[:math.ceil(len(alive) / 2)]
        self.report_["race"] = {"finalists": len(plans), "steps_per_round": self.finalist_steps,
                                "rounds": [{str(i): v for i, v in r.items()} for r in rounds],
                                "winner": alive[0],
                                "uniform": plans.index(uniform[0]) if uniform else None,
                                "scores_before": [before[p] if p in before
                                                  else self.evaluator_.evaluate_one(p)
                                                  for p in plans]}
        return plans[alive[0]]

    # ------------------------------------------------------------ latency
    def _main_target(self, flops_target="own"):
        """``(target, measure)`` the search is repaired to: the latency's when there is one,
        else ``flops_target`` (default ``target_flops``)."""
        if self.target_latency is not None:
            return self.target_latency, "latency"
        return (self.target_flops if flops_target == "own" else flops_target), "flops"

    def _budget_text(self):
        """``at most 50% of the latency (tflite, batch 1) and at most 60% of the FLOPs``."""
        parts = []
        if self.target_latency is not None:
            runtime = getattr(self.runtime, "runtime", self.runtime)
            parts.append(f"at most {self.target_latency:.0%} of the latency ({runtime}, batch "
                         f"{getattr(self.runtime, 'batch_size', self.latency_batch_size)})")
        if self.target_flops is not None:
            parts.append(f"at most {self.target_flops:.0%} of the FLOPs")
        return " and ".join(parts) or (f"the fewest FLOPs within {self.max_accuracy_drop} of "
                                       "the accuracy")

    def _check_latency_settings(self):
        check_int("latency_batch_size", self.latency_batch_size, 1, SearchError)
        if self.steps > 1:
            raise SearchError(
                "Pruning in stages (steps > 1) splits the FLOPs target between stages; a "
                f"latency target is not split. Received: steps={self.steps}, target_latency="
                f"{self.target_latency!r}. Use steps=1 with target_latency."
            )

    def _check_latency(self):
        """Times the pruned model against the original, call by call in turn, on the runtime of
        the latency target; ``report_["latency"]`` gets the predicted and measured ratios."""
        if self.target_latency is None:
            return
        model = self.latency_model_
        original, pruned = paired([forward_call(m, model.runtime, model.batch_size,
                                                threads=model.threads)
                                   for m in (self.model, self.pruned_model_)], rounds=5, runs=10)
        self.report_["latency"] = {
            "runtime": model.runtime, "batch_size": model.batch_size, "threads": model.threads,
            "target": self.target_latency, "predicted": model.ratio(self.plan_),
            "measured": pruned / original, "original_ms": original, "pruned_ms": pruned,
            "table_seconds": model.seconds}
        if pruned / original > 1.1 * self.target_latency:
            logger.warning(
                "target_latency=%s: the pruned model was predicted at %.3f of the original's "
                "latency on %s (batch %d) but measured at %.3f. Timings on a busy machine are "
                "noisy; rebuild the latency tables (delete the cache) on an idle machine.",
                self.target_latency, self.report_["latency"]["predicted"], model.runtime,
                model.batch_size, pruned / original)

    # ------------------------------------------------------------ reporting
    def _graph(self):
        if getattr(self, "_traced", (None, None))[0] is not self.model:
            self._traced = (self.model, trace(self.model))
        return self._traced[1]

    def _check_accuracy(self, validation_data, search_data):
        """Warns when the recovered model loses more than ``max_accuracy_drop``."""
        if self.max_accuracy_drop is None:
            return
        data = validation_data if validation_data is not None else search_data
        before, after = self._score(self.model, data), self._score(self.pruned_model_, data)
        drop = before - after
        self.report_["accuracy_drop"] = {"value": drop, "allowed": self.max_accuracy_drop,
                                         "on": "validation" if validation_data is not None
                                         else "search"}
        if drop > self.max_accuracy_drop:
            logger.warning(
                "max_accuracy_drop=%s does not hold: after recovery the pruned model loses %.4f "
                "(%s %.4f -> %.4f on the %s data) at %.3f of the FLOPs; it is kept. Fine-tune "
                "longer (epochs=...), raise target_flops, or allow a larger drop.",
                self.max_accuracy_drop, drop, self.metric, before, after,
                self.report_["accuracy_drop"]["on"], self.report_.get("flops_kept", float("nan")))

    def _fill_report(self, validation_data):
        graph = self._graph()
        full, slim = cost(graph), cost(graph, self.plan_)
        self.report_.update({
            "params": {"original": full.params, "pruned": slim.params,
                       "pruned_nonzero": slim.sparse_params},
            "macs": {"original": full.macs, "pruned": slim.macs, "pruned_sparse": slim.sparse_macs},
            "flops_kept": slim.macs / full.macs, "sparse_flops_kept": slim.sparse_macs / full.macs,
            "target_flops": self.target_flops,
            "target_latency": self.target_latency,
            "widths": {g.id: [g.size, len(self.plan_.keep.get(g.id, range(g.size)))]
                       for g in graph.prunable_groups},
        })
        if validation_data is not None:
            self.report_["validation"] = {
                "original": _evaluate(self.model, validation_data),
                "pruned": _evaluate(self.pruned_model_, validation_data)}

    def summary(self, print_fn=None):
        """A table of widths, params, FLOPs and accuracy before and after; printed and returned."""
        self._check_fitted("summary")
        text = format_report(self.report_, title=f"BiLevelPruner ({self.method}) on "
                                                 f"{self.model.name!r}")
        (print_fn or print)(text)
        return text

    def plot_pareto_front(self, **kwargs):
        """A matplotlib Figure of the front (see `keras_biprune.plotting.plot_pareto_front`).

        The budget is drawn as a vertical line and, after ``fit`` with
        validation data, the pruned model's accuracy after recovery as a
        diamond.
        """
        from keras_biprune import plotting

        chosen = next((s for s in self.pareto_front_ if s.plan == self.plan_), None)
        pruned = self.report_.get("validation", {}).get("pruned", {})
        kept = self.report_.get("sparse_flops_kept" if self.plan_.kernels else "flops_kept")
        finetuned = (kept, pruned[self.metric]) if self.metric in pruned and kept else None
        settings = {"metric": self.metric if isinstance(self.metric, str) else None,
                    "target": self._main_target()[0], "finetuned": finetuned}
        return plotting.plot_pareto_front(self.pareto_front_,
                                          baseline=self.report_["search"]["baseline_score"],
                                          chosen=chosen, **(settings | kwargs))

    def plot_widths(self, **kwargs):
        """A matplotlib Figure of each group's width before and after."""
        from keras_biprune import plotting

        return plotting.plot_widths(self._graph(), self.plan_, **kwargs)

    def plot_search_history(self, **kwargs):
        """A matplotlib Figure of the search's fitness per generation."""
        from keras_biprune import plotting

        return plotting.plot_search_history(self.search_history_, **kwargs)

    # ------------------------------------------------------------ persistence
    def export(self, directory, *, representative_data=None, overwrite=False):
        """Writes the pruned model in every format, with plan, report and figures.

        See `keras_biprune.export.export_model`: ``model.keras``,
        ``saved_model/``, ``model.tflite``, ``model_int8.tflite`` (with
        ``representative_data``), ``plan.json``, ``report.json``,
        ``pareto.png``, ``widths.png``, ``history.png``.

        Returns:
            ``{artifact: path}``.
        """
        from keras_biprune.export import export_model

        self._check_fitted("export")
        figures = {"widths": self.plot_widths(), "history": self.plot_search_history()}
        if len(self.pareto_front_):             # empty when no plan met max_accuracy_drop
            figures["pareto"] = self.plot_pareto_front()
        return export_model(directory, self.pruned_model_, plan=self.plan_, report=self.report_,
                            figures=figures, representative_data=representative_data,
                            overwrite=overwrite)

    def save(self, directory, overwrite=False):
        """Saves the pruner: settings, original and pruned models, plan, front, histories.

        `load` restores it; the search itself resumes from ``checkpoint_dir``.
        """
        from keras_biprune.export import ExportError, save_report

        self._check_fitted("save")
        directory = os.fspath(directory)
        if os.path.isdir(directory) and os.listdir(directory) and not overwrite:
            raise ExportError(f"{directory!r} is not empty. Received: overwrite=False. Pass "
                              "overwrite=True or choose a new directory.")
        os.makedirs(directory, exist_ok=True)
        params = self.get_params(deep=False)
        del params["model"]
        if not isinstance(params["criteria"], str):
            params["criteria"] = criteria_module.serialize(params["criteria"])
        if hasattr(params["racing"], "get_config"):
            params["racing"] = params["racing"].get_config()
        if isinstance(params["runtime"], LatencyModel):      # its tables are in the cache
            params["runtime"] = params["runtime"].runtime
        params["executor"] = None                            # a pool of workers, not a setting
        self.model.save(os.path.join(directory, "original.keras"))
        self.pruned_model_.save(os.path.join(directory, "pruned.keras"))
        save_report({"format": _FORMAT, "params": params, "plan": self.plan_.get_config(),
                     "front": self.pareto_front_.to_dict(), "search_history": self.search_history_,
                     "history": self.history_.history, "report": self.report_},
                    os.path.join(directory, "pruner.json"))

    @classmethod
    def load(cls, directory):
        """A pruner saved by `save`, fitted attributes included."""
        path = os.path.join(os.fspath(directory), "pruner.json")
        if not os.path.exists(path):
            raise BiPruneError(f"No saved pruner in {directory!r}. Received: a directory without "
                               "pruner.json. Use the directory given to BiLevelPruner.save.")
        with open(path) as f:
            state = json.load(f)
        params = state["params"]
        if isinstance(params["criteria"], dict):
            params["criteria"] = criteria_module.get(params["criteria"])
        pruner = cls(keras.saving.load_model(os.path.join(directory, "original.keras")),
                     **params)
        pruner.pruned_model_ = keras.saving.load_model(os.path.join(directory, "pruned.keras"))
        pruner.plan_ = PruningPlan.from_config(state["plan"])
        pruner.pareto_front_ = ParetoFront.from_dict(state["front"])
        pruner.search_history_ = state["search_history"]
        pruner.history_ = keras.callbacks.History()
        pruner.history_.history = state["history"]
        pruner.report_ = state["report"]
        pruner.candidates_ = []
        pruner.stages_ = []
        return pruner

    def _score(self, model, data):
        results = _evaluate(model, data)
        if self.metric in results:
            return results[self.metric]
        return -results["loss"]

    def _reset(self):
        super()._reset()
        self.report_ = {}
        self.candidates_ = []
        self.stages_ = []

    def _split(self, x, y, search_data):
        """(x_train, y_train, search_data): the search's share held out of the training data."""
        if search_data is not None:
            return x, y, search_data
        split = hold_out(x, y, self.search_fraction, self.random_state)
        if split is not None:
            return split
        raise SearchError(
            "fit holds out part of the training data for the search, which needs NumPy arrays "
            f"(x, y) or a tf.data.Dataset of known length. Received: x of type "
            f"{type(x).__name__}. Pass search_data=(x_search, y_search)."
        )


# Search arguments the pruner sets from its own: {search argument: pruner argument}.
_OWN_SEARCH_ARGS = {"target": "target_flops", "measure": "target_latency",
                    "latency_model": "runtime", "extra_targets": "target_flops",
                    "channel_granularity": "channel_granularity",
                    "criterion": "criteria", "round_to": "round_to",
                    "random_state": "random_state", "checkpoint_dir": "checkpoint_dir",
                    "verbose": "verbose"}


def _evaluate(model, data):
    """``model.evaluate`` as a dict, on (x, y) arrays (in batches a distribution's devices
    share, `even_split`) or a dataset, on the devices ``model`` is on."""
    with on_own_devices(model):
        if isinstance(data, (tuple, list)):
            x, y = even_split(tuple(data[:2]), 32, "evaluation")
            results = model.evaluate(x, y, batch_size=32, verbose=0, return_dict=True)
        else:
            results = model.evaluate(data, verbose=0, return_dict=True)
    return {k: float(v) for k, v in results.items()}


def _kernel_nonzero(layer):
    """Bool (input channel, filter) mask of the kernel slices that are not all zero."""
    kernel = keras.ops.convert_to_numpy(layer.kernel)
    return np.any(kernel.reshape(-1, *kernel.shape[-2:]) != 0, axis=0)


def _layer_at(model, path):
    """The layer at ``outer/inner`` path of a model."""
    layer = model
    for name in path.split("/"):
        layer = layer.get_layer(name)
    return layer
