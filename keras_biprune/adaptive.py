"""AdaptivePruner: prune weak filters and grow saturated layers while the model trains."""

import copy
import logging
import math
import time

import keras
import numpy as np

from keras_biprune._data import fit_inputs, samples
from keras_biprune._estimator import Estimator
from keras_biprune._validate import check_int, check_model, check_number
from keras_biprune.errors import TrainingError, UnsupportedModelError
from keras_biprune.evaluate import cost
from keras_biprune.graph import trace
from keras_biprune.surgery import PruningPlan, grow, growable_groups, rebuild
from keras_biprune.training import (
    OnlineFilterScore,
    compile_config,
    compile_fresh,
    load_optimizer_state,
    map_optimizer_state,
    optimizer_state,
)

logger = logging.getLogger(__name__)


class AdaptivePruner(Estimator):
    """Trains a model while it prunes weak filters and grows saturated layers.

    Each layer's width is found while training instead of being fixed: the
    run is one training of ``epochs`` epochs, cut into phases at
    architecture changes, with one ``History`` for all of it.

    The rules:

    1. **Scores** (every ``update_every`` training steps): the
       `keras_biprune.training.OnlineFilterScore` callback keeps, for each
       filter (channel position) of each prunable channel group, an
       exponential moving average ``S = decay·S + (1 − decay)·s`` of
       ``s = o^(1−λ) · n^λ`` (λ = ``next_layer_weight``), where ``o`` (own-layer
       profit) is the spread (standard deviation) of the filter's output as
       its consumers read it, and ``n`` (next-layer profit) is mean |output|
       × the L1 norm of the next layers' kernel slices reading it, both
       measured on a fixed probe batch of ``probe_size`` training samples and
       divided by their mean over the group (so an average filter scores 1).
    2. **When**: at the end of every ``change_every``-th epoch, except in the
       last ``final_epochs`` epochs (the final architecture trains on
       unchanged). If no update happened since the last change, one is made.
    3. **Prune**: in each group, the filters with ``S < prune_threshold``,
       weakest first, at most ``floor(max_prune_fraction · width)`` of them
       per change, never below ``min(min_channels, starting width)``. Filters
       inserted at one of the last ``grace`` changes are not pruned yet.
    4. **Grow**: a group from which nothing was pruned is *saturated* when at
       least ``saturation`` (by default: all) of its filters have
       ``S ≥ grow_threshold``; it
       gets ``max(1, ceil(growth_rate · width))`` new filters, up to a cap of
       ``ceil(max_width · starting width)``. New filters come from the
       layers' initializers with zero outgoing weights
       (`keras_biprune.surgery.grow_model`), so the function is unchanged at
       insertion; their score starts at their first measurement (until
       then they are neither pruned nor counted as strongly used). Groups that cannot grow (see
       `keras_biprune.surgery.growable_groups`) only shrink.
    5. **Carry-over**: a change rebuilds the model by surgery (pruning, then
       growth: residual groups change in every producer together), compiles
       it with the original's compile config (fresh objects) and loads the
       optimizer state: the iteration count (so learning-rate schedules run
       on) and every per-variable slot (Adam's moments), sliced for pruned
       channels and zero for new ones. The scores of kept filters carry over.

    Callbacks are deep-copied once and see every phase; a callback that
    stops training (``EarlyStopping``) ends the whole run, but its patience
    restarts at each change. ``__init__`` only stores its arguments; the
    user's model is never modified.

    Args:
        model: a functional or Sequential Keras model, compiled (or pass
            ``compile_kwargs``).
        from_scratch: train freshly initialized weights (``clone_model``)
            instead of the model's own.
        update_every: training steps between score updates.
        change_every: epochs between architecture changes.
        final_epochs: last epochs without changes.
        decay: EMA decay of the scores, in [0, 1).
        next_layer_weight: λ, the weight of next-layer profit, in [0, 1].
        prune_threshold: the score below which a filter is pruned.
        max_prune_fraction: the most of a group's filters pruned at one change.
        min_channels: the fewest filters a group keeps.
        grow_threshold: the score that counts a filter as strongly used.
        saturation: the share of strongly used filters that makes a group grow.
        growth_rate: new filters as a share of the width.
        max_width: the width cap, as a multiple of the starting width.
        grace: changes a new filter survives before it may be pruned.
        probe_size: training samples in the probe batch.
        compile_kwargs: ``model.compile`` arguments instead of the original's.
        random_state: seed of the shuffle of array training data.
        verbose: 0 silent, 1 progress bars and a line per change, 2 a line per epoch.

    Attributes:
        pruned_model_: the trained model with its final widths.
        history_: one ``History`` of every epoch of the run.
        width_history_: an entry per architecture change (and the start):
            ``epoch``, ``step``, ``widths`` ({group_id: width}), ``macs``,
            ``params``, ``pruned`` and ``grown`` ({group_id: filters}).
        widths_: ``{group_id: final width}``.
        scores_: ``{group_id: final EMA scores}``.
        report_: MACs and parameters at the start and the end, wall time.

    Example:

    ```python
    import keras_biprune as kb
    pruner = kb.AdaptivePruner(model, from_scratch=True, update_every=20)
    history = pruner.fit(x_train, y_train, epochs=4, batch_size=64, verbose=0)
    print(len(history.history["loss"]), pruner.widths_)      # 4 epochs, final widths
    pruner.plot_widths().savefig("widths.png")
    ```
    """

    def __init__(self, model, from_scratch=False, update_every=50, change_every=1,
                 final_epochs=1, decay=0.9, next_layer_weight=0.5, prune_threshold=0.3,
                 max_prune_fraction=0.25, min_channels=4, grow_threshold=0.6, saturation=1.0,
                 growth_rate=0.25, max_width=2.0, grace=1, probe_size=256, compile_kwargs=None,
                 random_state=0, verbose=1):
        self.model = model
        self.from_scratch = from_scratch
        self.update_every = update_every
        self.change_every = change_every
        self.final_epochs = final_epochs
        self.decay = decay
        self.next_layer_weight = next_layer_weight
        self.prune_threshold = prune_threshold
        self.max_prune_fraction = max_prune_fraction
        self.min_channels = min_channels
        self.grow_threshold = grow_threshold
        self.saturation = saturation
        self.growth_rate = growth_rate
        self.max_width = max_width
        self.grace = grace
        self.probe_size = probe_size
        self.compile_kwargs = compile_kwargs
        self.random_state = random_state
        self.verbose = verbose

    def _validate(self, epochs, update_every, change_every):
        check_model(self.model, "AdaptivePruner")
        for name, low in (("epochs", 1), ("update_every", 1), ("change_every", 1),
                          ("final_epochs", 0), ("min_channels", 1), ("grace", 0),
                          ("probe_size", 1)):
            given = {"epochs": epochs, "update_every": update_every, "change_every": change_every}
            value = given[name] if name in given else getattr(self, name)
            check_int(name, value, low, TrainingError)
        for name, low, high, open_low, open_high in (
                ("decay", 0, 1, False, True), ("next_layer_weight", 0, 1, False, False),
                ("prune_threshold", 0, math.inf, False, False),
                ("max_prune_fraction", 0, 1, False, False),
                ("grow_threshold", 0, math.inf, False, False),
                ("saturation", 0, 1, True, False), ("growth_rate", 0, math.inf, True, False),
                ("max_width", 1, math.inf, False, False)):
            check_number(name, getattr(self, name), TrainingError, low, high, open_low=open_low,
                         open_high=open_high, fix="See the AdaptivePruner docstring.")
        return compile_config(self.model, self.compile_kwargs)

    # ------------------------------------------------------------ training
    def fit(self, x=None, y=None, *, epochs=1, update_every=None, change_every=None,
            batch_size=None, validation_data=None, callbacks=None, verbose=None, **fit_kwargs):
        """Trains for ``epochs`` epochs, changing widths by the rules of the class.

        Args:
            x: training data as ``model.fit`` takes it (arrays, a
                ``tf.data.Dataset``, a ``keras.utils.PyDataset``). Arrays are
                fed through a ``tf.data`` pipeline with autotuning off.
            y: training targets, as ``model.fit`` takes them.
            epochs: epochs in all, across every architecture change.
            update_every: overrides the constructor's value for this run.
            change_every: overrides the constructor's value for this run.
            batch_size: as for ``model.fit``.
            validation_data: as for ``model.fit``.
            callbacks: Keras callbacks (deep-copied once, used by every phase).
            verbose: overrides the constructor's ``verbose``.
            **fit_kwargs: more ``model.fit`` arguments (``class_weight``, …).

        Returns:
            The ``History`` of the whole run (also ``history_``).
        """
        started = time.perf_counter()
        update_every = self.update_every if update_every is None else update_every
        change_every = self.change_every if change_every is None else change_every
        config = self._validate(epochs, update_every, change_every)
        verbose = self.verbose if verbose is None else verbose
        self._reset()
        model = (keras.models.clone_model(self.model) if self.from_scratch
                 else rebuild(self.model, None)[0])
        graph = trace(model)
        probe = self._probe(x, y, model)
        if batch_size is not None:
            fit_kwargs["batch_size"] = batch_size
        train, fit_kwargs = fit_inputs(x, y, {"validation_data": validation_data, **fit_kwargs},
                                       self.random_state)
        self._limits = {g.id: (min(self.min_channels, g.size), math.ceil(self.max_width * g.size))
                        for g in graph.prunable_groups}
        self._ages = {g.id: np.full(g.size, self.grace) for g in graph.prunable_groups}
        self.history_ = keras.callbacks.History()
        self.history_.epoch = []
        self.width_history_ = [_width_entry(graph, 0, 0)]
        score = OnlineFilterScore(probe, update_every, self.decay, self.next_layer_weight)
        callbacks = copy.deepcopy(list(callbacks or []))
        compile_fresh(model, config, self.compile_kwargs)
        scores, epoch = {}, 0
        last_change = epochs - self.final_epochs
        ends = [*range(change_every, last_change + 1, change_every), epochs]
        for end in sorted(set(ends)):
            score.bind(model, graph, scores)
            phase = model.fit(train, initial_epoch=epoch, epochs=end,
                              callbacks=[score, *callbacks], verbose=verbose, **fit_kwargs)
            for key, values in phase.history.items():
                self.history_.history.setdefault(key, []).extend(values)
            self.history_.epoch.extend(phase.epoch)
            epoch = end
            if getattr(model, "stop_training", False) or epoch >= epochs:
                break
            if score.updates_ == 0:
                score.update()
            model, graph, scores = self._change(model, graph, score.scores_, config,
                                                epoch, score.steps_, verbose)
        self.history_.set_model(model)
        self.pruned_model_ = model
        self.widths_ = {g.id: g.size for g in graph.prunable_groups}
        self.scores_ = dict(score.scores_)
        first, last = self.width_history_[0], _width_entry(graph, epoch, score.steps_)
        self.report_ = {"macs": {"start": first["macs"], "final": last["macs"]},
                        "params": {"start": first["params"], "final": last["params"]},
                        "flops_kept": _ratio(last["macs"], first["macs"]),
                        "epochs": len(self.history_.epoch),
                        "changes": len(self.width_history_) - 1,
                        "seconds": time.perf_counter() - started}
        return self.history_

    def _probe(self, x, y, model):
        """The first ``probe_size`` training samples, as the model's input arrays."""
        arrays, _ = samples(x if y is None else (x, y), model, "AdaptivePruner's probe batch",
                            self.probe_size, self.probe_size)
        arrays = [a[:self.probe_size] for a in arrays]
        return arrays[0] if len(arrays) == 1 else arrays

    def _decide(self, graph, scores):
        """``(keep, growth)`` for each scored group by the pruning and growth rules."""
        keep, growth = {}, {}
        blocked = growable_groups(graph)
        for group in graph.prunable_groups:
            s = scores.get(group.id)
            if s is None or group.id not in self._limits:
                continue
            floor, cap = self._limits[group.id]
            n = group.size
            limit = min(int(self.max_prune_fraction * n), n - floor)
            prunable = np.where(self._ages[group.id] > self.grace, s, np.nan)
            weakest = np.argsort(prunable, kind="stable")[:max(limit, 0)]
            drop = weakest[prunable[weakest] < self.prune_threshold]
            if len(drop):
                keep[group.id] = sorted(set(range(n)) - set(drop.tolist()))
            elif (group.id not in blocked and n < cap
                  and np.mean(s >= self.grow_threshold) >= self.saturation):
                growth[group.id] = min(max(1, math.ceil(self.growth_rate * n)), cap - n)
        return keep, growth

    def _change(self, model, graph, scores, config, epoch, step, verbose):
        """Prunes and grows by the rules; returns the new model, its graph and scores."""
        self._ages = {g: a + 1 for g, a in self._ages.items()}
        keep, growth = self._decide(graph, scores)
        if not keep and not growth:
            self.width_history_.append(_width_entry(graph, epoch, step))
            return model, graph, scores
        state = optimizer_state(model)
        if keep:
            model, rebuilder = rebuild(model, PruningPlan(keep, signature=graph.signature), graph)
            state = map_optimizer_state(state, rebuilder)
            scores = {g: s[list(keep[g])] if g in keep else s for g, s in scores.items()}
            self._ages = {g: a[list(keep[g])] if g in keep else a for g, a in self._ages.items()}
            graph = trace(model)
        if growth:
            model, rebuilder, skipped = grow(model, growth, graph)
            growth = {g: n for g, n in growth.items() if g not in skipped}
            state = map_optimizer_state(state, rebuilder)
            scores = {g: np.r_[s, np.full(growth[g], np.nan)] if g in growth else s
                      for g, s in scores.items()}
            self._ages = {g: np.r_[a, np.zeros(growth[g], int)] if g in growth else a
                          for g, a in self._ages.items()}
            graph = trace(model)
        compile_fresh(model, config, self.compile_kwargs)
        carried, fresh = load_optimizer_state(model, state)
        pruned = {g: self.width_history_[-1]["widths"][g] - len(k) for g, k in keep.items()}
        entry = _width_entry(graph, epoch, step, pruned, growth)
        self.width_history_.append(entry)
        message = (f"Epoch {epoch}: pruned {sum(pruned.values())} filters in {len(pruned)} "
                   f"groups, grew {sum(growth.values())} in {len(growth)}; MACs "
                   f"{_ratio(entry['macs'], self.width_history_[0]['macs']):.1%} of the start; "
                   f"optimizer slots carried {carried}, new {fresh}")
        logger.info(message)
        if verbose:
            print(message, flush=True)
        return model, graph, scores

    # ------------------------------------------------------------ reporting
    def summary(self, print_fn=None):
        """A table of widths at the start and the end, MACs and parameters; printed and returned."""
        self._check_fitted("summary")
        start, r = self.width_history_[0]["widths"], self.report_
        head = (f"AdaptivePruner on {self.model.name!r}: {r['epochs']} epochs, "
                f"{r['changes']} architecture changes, {r['seconds']:.0f} s")
        lines = [head, "widths (group: start -> final):"]
        if r["macs"]["start"] is not None:
            lines.insert(1, f"  MACs {r['macs']['start']:,} -> {r['macs']['final']:,} "
                            f"({r['flops_kept']:.1%}); parameters {r['params']['start']:,} "
                            f"-> {r['params']['final']:,}")
        lines += [f"  {g}: {start.get(g, '?')} -> {w}" for g, w in self.widths_.items()]
        text = "\n".join(lines)
        (print_fn or print)(text)
        return text

    def plot_widths(self, **kwargs):
        """A matplotlib Figure of every group's width over the run
        (see `keras_biprune.plotting.plot_width_history`)."""
        from keras_biprune import plotting

        self._check_fitted("plot_widths")
        kwargs.setdefault("end_epoch", len(self.history_.epoch))
        return plotting.plot_width_history(self.width_history_, **kwargs)


def _width_entry(graph, epoch, step, pruned=None, grown=None):
    """One entry of ``width_history_``: the widths, MACs and parameters of ``graph``."""
    try:
        counted = cost(graph)
        macs, params = counted.macs, counted.params
    except UnsupportedModelError:      # an unknown spatial size: no MACs
        macs, params = None, None
    return {"epoch": int(epoch), "step": int(step),
            "widths": {g.id: g.size for g in graph.prunable_groups},
            "macs": macs, "params": params, "pruned": dict(pruned or {}),
            "grown": dict(grown or {})}


def _ratio(a, b):
    return None if a is None or not b else a / b

