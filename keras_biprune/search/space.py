"""Genome encodings: how a row of integers becomes a `PruningPlan`.

Every encoding is a list of *slots*. A slot owns a list of channels ranked
best first (by a criterion) and one integer gene; the gene says how many of
them stay. A mask encoding has one channel per slot and a 0/1 gene, one bit
per filter or per input channel, as in the papers. A width encoding has one
slot per group (or per layer, or per filter) whose gene is a keep count in
steps, and the criterion chooses which channels: it scales to models with
tens of thousands of channels.
"""

import math

import numpy as np

from keras_biprune._validate import check_choice, check_int, check_number
from keras_biprune.criteria.weights import input_magnitudes
from keras_biprune.errors import SearchError
from keras_biprune.evaluate import cost
from keras_biprune.plan import PruningPlan, takes_input_mask, takes_kernel_mask
from keras_biprune.plan.steps import group_step, stepped

KINDS = ("mask", "width")
GRANULARITIES = ("layer", "filter")
MEASURES = ("flops", "params", "filters", "latency")


class UpperEncoding:
    """Filters each group keeps: one bit per filter, or one width gene per group.

    Decoding enforces the per-group floors by *repair*: a group keeps at
    least ``min_channels`` channels and at least ``(1 - max_prune_ratio)`` of
    them; when a genome keeps fewer, the best-ranked missing channels are
    added back. The cost budget is enforced by `Budget.repair`.

    Args:
        graph: the model's `ChannelGraph`.
        scores: ``{group_id: scores}`` ranking each group's channels (higher
            is more important), e.g. from `keras_biprune.criteria.scores`.
        kind: ``"mask"`` (one bit per filter) or ``"width"`` (one gene per
            group: keep ``gene * step`` channels, at most the group size).
        round_to: width step: every group keeps a multiple of it (or all its
            channels); a group with fewer than three such steps counts in
            halves of it (`group_step`: a 16-wide group with ``round_to=8``
            keeps 4, 8, 12 or 16). The ``"width"`` kind counts in steps; the
            ``"mask"`` kind rounds each group's kept count to the nearest
            multiple, adding the best-ranked missing channels or dropping the
            worst-ranked kept ones. Multiples of 8 let CPU kernels vectorize:
            see ``docs/benchmarks.md``.
        min_channels: fewest channels a group keeps.
        max_prune_ratio: largest share of a group that may be pruned.

    Example:

    ```python
    import keras_biprune as kb
    graph = kb.trace(model)
    scores = kb.criteria.scores(graph, model, "l1")
    encoding = kb.search.UpperEncoding(graph, scores, kind="width", round_to=8)
    budget = kb.search.Budget(graph, target=0.5)
    plan = encoding.decode(encoding.full(), budget)     # L1-uniform at half the FLOPs
    ```
    """

    def __init__(self, graph, scores, kind="mask", round_to=1, min_channels=1,
                 max_prune_ratio=1.0):
        check_choice("kind", kind, KINDS, SearchError)
        check_int("round_to", round_to, 1, SearchError)
        check_int("min_channels", min_channels, 1, SearchError)
        check_number("max_prune_ratio", max_prune_ratio, SearchError, 0, 1, open_low=True,
                     fix="Use e.g. 0.8 to keep at least 20% of every group.")
        self.graph = graph
        self.kind = kind
        self.round_to = round_to
        self.groups = graph.prunable_groups
        if not self.groups:
            raise SearchError(
                f"Model {graph.model_name!r} has no prunable channel group, so there is "
                "nothing to search. See kb.trace(model).summary() for why each group is frozen."
            )
        self.ranking = {g.id: np.argsort(-np.asarray(scores[g.id], float), kind="stable")
                        for g in self.groups}
        self.floor = {g.id: min(g.size, max(min_channels,
                                            math.ceil((1 - max_prune_ratio) * g.size - 1e-9)))
                      for g in self.groups}
        self.step = {g.id: group_step(g.size, round_to) for g in self.groups}
        if kind == "mask":
            self.gene_space = [[0, 1]] * sum(g.size for g in self.groups)
        else:
            self.gene_space = [list(range(1, math.ceil(g.size / self.step[g.id]) + 1))
                               for g in self.groups]
        self.n_genes = len(self.gene_space)

    def full(self):
        """The genome that keeps everything."""
        return np.array([space[-1] for space in self.gene_space], dtype=np.int64)

    def encode_counts(self, counts):
        """A genome keeping ``counts[group_id]`` best-ranked channels per group."""
        genome = []
        for g in self.groups:
            n = counts.get(g.id, g.size)
            if self.kind == "width":
                genome.append(max(1, min(math.ceil(n / self.step[g.id]),
                                         self.gene_space[len(genome)][-1])))
            else:
                bits = np.zeros(g.size, dtype=np.int64)
                bits[self.ranking[g.id][:n]] = 1
                genome.extend(bits)
        return np.array(genome, dtype=np.int64)

    def kept(self, genome):
        """``{group_id: kept positions, best-ranked first}`` before the budget."""
        genome = np.asarray(genome, dtype=np.int64)
        keep, start = {}, 0
        for i, g in enumerate(self.groups):
            ranked = self.ranking[g.id]
            if self.kind == "mask":
                bits = genome[start:start + g.size]
                start += g.size
                chosen = ranked[bits[ranked] > 0]
            else:
                chosen = ranked[:min(g.size, int(genome[i]) * self.step[g.id])]
            n = stepped(max(len(chosen), self.floor[g.id]), self.step[g.id], self.floor[g.id],
                        g.size)
            if n > len(chosen):
                missing = ranked[~np.isin(ranked, chosen)]
                chosen = ranked[np.isin(ranked, np.concatenate([chosen, missing[:n - len(chosen)]]))]
            keep[g.id] = chosen[:n]
        return keep

    def decode(self, genome, budget=None):
        """The `PruningPlan` of a genome, repaired to ``budget`` when given."""
        keep = self.kept(genome)
        return self.plan(keep) if budget is None else budget.repair(self, keep)

    def plan(self, keep):
        return PruningPlan({k: sorted(v.tolist()) for k, v in keep.items()
                            if len(v) < self.graph.group(k).size},
                           signature=self.graph.signature)


class LowerEncoding:
    """Input channels each layer (or each filter) reads, given the upper level.

    Granularity ``"layer"``: a conv or dense layer drops some of its input
    channels (``PruningPlan.inputs``, realized structurally). With kind
    ``"mask"`` one bit per (layer, input channel); with ``"width"`` one gene
    per layer, the share of its read channels it keeps in ``levels`` steps,
    chosen by the L1 norm of the kernel rows.

    Granularity ``"filter"``: each filter of a conv or dense layer drops some
    of its input channels (``PruningPlan.kernels``, exact zeros). One gene per
    (layer, filter): the share of the read channels it keeps in ``levels``
    steps, chosen by the L1 norm of that filter's kernel slices. (One bit per
    kernel entry would be in × out genes per layer.)

    Genes refer to the original model's channels, so a genome means the same
    for every upper individual: lower-level solutions migrate between upper
    individuals unchanged. Every layer reads at least one channel the upper
    level kept; every filter at least one. Kernels are read from the traced
    layers once, when the encoding is made.

    Args:
        graph: the model's `ChannelGraph`.
        granularity: ``"layer"`` or ``"filter"``.
        kind: ``"mask"`` or ``"width"`` (``"filter"`` granularity is always
            per-filter width genes).
        levels: steps of a width gene.
        round_to: ``"layer"`` granularity: a layer that drops input channels
            reads a multiple of this many (the best-ranked ones, by kernel
            norm, fill up or are dropped to the step; halved for layers
            reading fewer than three steps, see `group_step`). Reading an odd count
            of channels costs a gather and unvectorized kernels, which can
            make the pruned layer slower than the whole one. Kernel masks
            (``"filter"``) change no shape and are not rounded.

    Example:

    ```python
    import keras_biprune as kb
    graph = kb.trace(model)
    lower = kb.search.LowerEncoding(graph, granularity="layer", kind="mask")
    genome = lower.full()
    genome[lower.slices[0]][::2] = 0                    # first layer reads every other input
    plan = lower.decode(genome, kb.PruningPlan.keep_all(graph))
    ```
    """

    def __init__(self, graph, granularity="layer", kind="mask", levels=8, round_to=1):
        check_choice("granularity", granularity, GRANULARITIES, SearchError)
        check_choice("kind", kind, KINDS, SearchError)
        check_int("levels", levels, 1, SearchError)
        check_int("round_to", round_to, 1, SearchError)
        self.graph = graph
        self.round_to = round_to
        self.granularity = granularity
        self.kind = "width" if granularity == "filter" else kind
        self.levels = levels
        takes = takes_kernel_mask if granularity == "filter" else takes_input_mask
        self.records = [r for r in graph.records if takes(r)]
        self.kernel_abs = {}
        self.gene_space, self.slices = [], []
        for r in self.records:
            kernel = input_magnitudes(r.op)                                  # (in, filters)
            self.kernel_abs[r.path] = kernel
            n_in, n_out = kernel.shape
            if self.kind == "mask":
                size, space = n_in, [0, 1]
            elif granularity == "layer":
                size, space = 1, list(range(1, levels + 1))
            else:
                size, space = n_out, list(range(1, levels + 1))
            self.slices.append(slice(len(self.gene_space), len(self.gene_space) + size))
            self.gene_space.extend([space] * size)
        self.n_genes = len(self.gene_space)

    def full(self):
        """The genome that keeps every input channel."""
        return np.array([space[-1] for space in self.gene_space], dtype=np.int64)

    def decode(self, genome, upper_plan, budget=None):
        """``upper_plan`` with this genome's ``inputs`` or ``kernels`` added.

        With a ``budget``, a plan over its target is repaired: every layer's
        (or filter's) kept input count is scaled by one common factor,
        dropping the channels with the smallest kernel norms, until the
        whole plan meets the target (see `Budget.fit`); layers then read
        channels back while it holds (`Budget.fit_counts`).
        """
        genome = np.asarray(genome, dtype=np.int64)
        atom_keep = self.graph.atom_keep(upper_plan.keep)
        choices = []
        for r, where in zip(self.records, self.slices):
            read = np.flatnonzero(atom_keep[r.inputs[0].labels])
            kernel = self.kernel_abs[r.path]
            genes = genome[where]
            if self.granularity == "filter":
                order = np.argsort(-kernel[read], axis=0, kind="stable")    # best first
                counts = np.ceil(genes / self.levels * len(read))
                kept_filters = atom_keep[r.outputs[0].labels]
                choices.append((r.path, read, np.argsort(order, axis=0), counts, kept_filters))
                continue
            ranked = read[np.argsort(-kernel[read].sum(axis=1), kind="stable")]
            if self.kind == "mask":
                chosen = ranked[genes[ranked] > 0]
            else:
                chosen = ranked[:math.ceil(genes[0] / self.levels * len(read))]
            chosen = chosen if len(chosen) else ranked[:1]
            rest = ranked[~np.isin(ranked, chosen)]           # fills up to the step
            choices.append((r.path, read, np.concatenate([chosen, rest]), len(chosen), None))

        def plan_of(inputs, kernels):
            plan = PruningPlan(upper_plan.keep, inputs=inputs, kernels=kernels,
                               signature=upper_plan.signature)
            return plan.without_unread(self.graph)

        if self.granularity == "layer":
            reads = {path: (read, chosen) for path, read, chosen, _, _ in choices}

            def plan_of_counts(counts):
                return plan_of({path: sorted(chosen[:counts[path]].tolist())
                                for path, (read, chosen) in reads.items()
                                if counts[path] < len(read)}, {})

            steps = {path: group_step(len(read), self.round_to)
                     for path, (read, _) in reads.items()}
            wanted = {path: stepped(n, steps[path], 1, len(read))
                      for path, read, _, n, _ in choices}
            if budget is None:
                return plan_of_counts(wanted)
            return budget.fit_counts(wanted, plan_of_counts, steps, dict.fromkeys(wanted, 1),
                                     limits={path: len(read) for path, (read, _) in reads.items()})

        def plan_at(factor):
            kernels = {}
            for path, read, chosen, counts, kept_filters in choices:
                mask = np.ones(self.kernel_abs[path].shape, dtype=bool)
                mask[read] = chosen < np.maximum(1, np.round(factor * counts))[None, :]
                mask[:, ~kept_filters] = True          # filters the upper level removed
                if not mask.all():
                    kernels[path] = mask
            return plan_of({}, kernels)

        return plan_at(1.0) if budget is None else budget.fit(plan_at)


class Budget:
    """A cost ceiling: the kept share of FLOPs, parameters, filters or predicted latency.

    `repair` enforces it on the upper level: every group's kept count is
    scaled by one common factor (rounded to the group's step, never below
    its floor), dropping each group's worst-ranked kept channels, then the
    most cut groups get channels back while the target holds, so the plan
    lands within ``BAND`` (0.03) below the target (`fit_counts`; under a
    latency ceiling widths move by whole lanes, and a narrow model may land
    further below);
    `LowerEncoding.decode` does the same with input channels. When the
    floors make the target unreachable, the plan is as small as they allow
    (`floor_ratio`) and the objective's penalty applies.

    Ceilings on other measures (``extra_targets``) hold too: a plan meets
    the budget when it meets every ceiling (`slack`), so the binding one
    lands in the band. ``repair(..., fill=True)`` (which
    `keras_biprune.search.Search.fill` runs on the plans a search
    returns) then moves channels between groups so that every ceiling on
    the model's size (FLOPs, parameters, filters) lands in its band where a
    plan does (`filled`). A latency ceiling beside one of them is only
    held: the plan keeps the FLOPs the FLOPs target allows and runs at most
    as slow as the latency target, faster when it can. Under latency
    ceilings alone, the fill then grows the plan (`grows`): steps move
    between groups to keep the most FLOPs the latency buys. `ratio` is the
    main measure's.

    Args:
        graph: the model's `ChannelGraph`.
        target: kept share in (0, 1], or None for no ceiling.
        measure: ``"flops"`` (multiply-accumulates; sparse ones when the plan
            has kernel masks), ``"params"``, ``"filters"`` (kept positions
            of the prunable groups) or ``"latency"`` (the latency predicted
            by ``latency_model``).
        latency_model: a `keras_biprune.evaluate.LatencyModel` of the model,
            for the ``"latency"`` measure.
        extra_targets: ``{measure: target}``, more ceilings that must hold,
            e.g. ``{"flops": 0.6}`` beside a latency target.

    Example:

    ```python
    import keras_biprune as kb
    graph = kb.trace(model)
    budget = kb.search.Budget(graph, target=0.5, measure="params")
    budget.ratio(kb.PruningPlan.random(graph, ratio=0.5, seed=0))   # about 0.25-0.5
    latency = kb.evaluate.LatencyModel.build(model, runtime="tflite")
    both = kb.search.Budget(graph, target=0.5, measure="latency", latency_model=latency,
                            extra_targets={"flops": 0.6})
    ```
    """

    def __init__(self, graph, target=None, measure="flops", latency_model=None,
                 extra_targets=None):
        check_choice("measure", measure, MEASURES, SearchError)
        if target is not None:
            check_number("target", target, SearchError, 0, 1, open_low=True,
                         expected=f"the share of the unpruned model's {measure} to keep, in "
                                  "(0, 1]", fix=f"Use e.g. 0.5 to halve the {measure}.")
        extra_targets = dict(extra_targets or {})
        if measure in extra_targets:
            raise SearchError(
                f"extra_targets holds ceilings on measures other than the main one. Received: "
                f"measure={measure!r} and extra_targets={extra_targets!r}. Give the {measure} "
                "target as target."
            )
        if "latency" in (measure, *extra_targets) and (
                latency_model is None or latency_model.graph.signature != graph.signature):
            raise SearchError(
                "A latency budget needs the LatencyModel of this model. Received: "
                f"latency_model={latency_model!r}. Build it with "
                "kb.evaluate.LatencyModel.build(model, runtime=...)."
            )
        self.graph = graph
        self.target = target
        self.measure = measure
        self.latency_model = latency_model
        self.extra_targets = extra_targets
        self.ceilings = [b for b in [self, *(Budget(graph, t, m, latency_model)
                                             for m, t in extra_targets.items())]
                         if b.target is not None]
        self._sizes = {g.id: g.size for g in graph.prunable_groups}
        if measure not in ("filters", "latency"):
            self._full = self._absolute(PruningPlan.keep_all(graph))

    def with_target(self, target):
        """This budget with ``target`` for its main measure; the extra ceilings scale alike."""
        scale = 1.0 if self.target is None else target / self.target
        return Budget(self.graph, target, self.measure, self.latency_model,
                      {m: min(1.0, t * scale) for m, t in self.extra_targets.items()})

    def slack(self, plan):
        """How far below its ceilings the plan is: the least ``target - ratio`` over them.

        Negative when the plan misses one; infinite without any ceiling.
        """
        return min(self._gaps(plan), default=math.inf)

    def filled(self, plan):
        """Whether the plan meets every ceiling, and each one to fill (every ceiling on the
        model's size, or else the latency's) within ``BAND``."""
        gaps = self._gaps(plan)
        return min(gaps, default=math.inf) >= 0 and all(gap <= BAND for gap in self._to_fill(gaps))

    def _gaps(self, plan):
        """``target - ratio`` of every ceiling, in the order of ``ceilings``."""
        return [b.target - b.ratio(plan) for b in self.ceilings]

    def _to_fill(self, gaps):
        """Of the ceilings' ``gaps``, those of every ceiling on the model's size, or else all
        (the latency's)."""
        sizes = [gap for b, gap in zip(self.ceilings, gaps) if b.measure != "latency"]
        return sizes or gaps

    def ratio(self, plan):
        """The plan's cost as a share of the unpruned model's."""
        if self.measure == "latency":
            return self.latency_model.ratio(plan)
        if self.measure == "filters":
            total = sum(self._sizes.values())
            pruned = sum(self._sizes[k] - len(v) for k, v in plan.keep.items() if k in self._sizes)
            return (total - pruned) / total
        return self._absolute(plan) / self._full

    def _absolute(self, plan):
        report = cost(self.graph, plan)
        if self.measure == "params":
            return report.sparse_params if plan.kernels else report.params
        return report.sparse_macs if plan.kernels else report.macs

    def fit(self, plan_at):
        """``plan_at(factor)`` for the largest factor in [0, 1] that meets the target.

        ``plan_at`` maps a shrink factor (1: as given) to a plan whose cost
        grows with the factor; a bisection of 14 steps finds the factor.
        Without a target, or when ``plan_at(1.0)`` meets it, that plan is
        returned; when even ``plan_at(0.0)`` misses it, that smallest plan.
        """
        return self._bisect(plan_at)[0]

    def _bisect(self, plan_at):
        """``(plan, factor)`` of `fit`."""
        plan = plan_at(1.0)
        if self.slack(plan) >= 0:
            return plan, 1.0
        low, high = 0.0, 1.0
        for _ in range(14):
            mid = (low + high) / 2
            if self.slack(plan_at(mid)) >= 0:
                low = mid
            else:
                high = mid
        return plan_at(low), low

    def fit_counts(self, wanted, plan_of, steps, floors, limits=None, fill=False):
        """``plan_of(counts)`` for the counts closest below the target.

        Counts over the target are scaled by one common factor (the largest
        that meets it, see `fit`), each rounded to its unit's step and never
        below its floor. Counts are then raised a step at a time, the most
        cut unit first (up to ``limits``), while the plan still meets the
        target, until its cost is within ``TOLERANCE`` of it; where the
        steps cannot get within ``BAND``, halved steps (down to single
        channels) are added the same way, then single channels are moved
        from one unit to another (`_exchange`). So a target reachable from
        these counts by such moves is met within ``BAND`` whatever the steps.
        Under a latency ceiling, steps are never below the latency model's
        ``lanes`` and no single channel is moved. With ``fill``, steps are
        moved between units until every ceiling to fill (see `filled`) is
        within ``BAND``, where such moves get there.

        Args:
            wanted: ``{unit: count}`` before the budget (a unit is a group,
                or a layer's input channels).
            plan_of: maps ``{unit: count}`` to a plan; its cost grows with
                every count.
            steps: ``{unit: step}``.
            floors: ``{unit: fewest channels}``.
            limits: ``{unit: most channels}`` counts may be raised to
                (default ``wanted``).
            fill: fill every ceiling to fill, not only the binding one.
                Each move tries about ``2 * U**2`` plans of ``U`` units, so
                it is kept for the plans a search returns.
        """
        limits = wanted if limits is None else limits
        finest = self._finest_step()
        steps = {u: max(step, finest) for u, step in steps.items()}

        def counts_at(factor):
            if factor >= 1:
                return dict(wanted)
            return {u: min(n, stepped(factor * n, steps[u], floors[u], n))
                    for u, n in wanted.items()}

        _, factor = self._bisect(lambda f: plan_of(counts_at(f)))
        counts = counts_at(factor)
        if not self.ceilings:
            return plan_of(counts)
        slack = self.slack(plan_of(counts))
        counts, slack = self._raise(counts, limits, steps, plan_of, slack, TOLERANCE)
        while slack > BAND and max(steps.values(), default=1) > finest:
            steps = {u: max(finest, step // 2) for u, step in steps.items()}
            counts, slack = self._raise(counts, limits, steps, plan_of, slack, BAND)
        if fill:
            counts = self._exchange(counts, limits, floors, steps, plan_of, self._to_fill)
            if self.grows:
                counts = self._grow(counts, limits, floors, steps, plan_of)
        elif slack > BAND and finest == 1:
            counts = self._exchange(counts, limits, floors, steps, plan_of,
                                    lambda gaps: [min(gaps)])
        return plan_of(counts)

    @property
    def grows(self):
        """Whether a filled plan is also grown (`_grow`): under latency ceilings alone, which
        say how fast the plan runs and not how much of the model it keeps."""
        return bool(self.ceilings) and all(b.measure == "latency" for b in self.ceilings)

    def _grow(self, counts, limits, floors, steps, plan_of):
        """Counts moved a step at a time to keep more FLOPs while every ceiling holds.

        The same latency buys very different networks: ResNet-20 at half its
        predicted TensorFlow latency keeps 8-12 % of its FLOPs as the search
        and the criteria cut it, and 17-26 % once steps move from layers that
        run slow for their FLOPs to those that run fast (measured at 0.51 of
        the latency all the same). A move raises one unit a step and lowers
        another one or two steps (never below one step), or none. Each round
        prices every unit's raise and lowering on its own (about ``3 * U``
        plans for ``U`` units), tries the moves in the order of their summed
        FLOPs gain and takes the first whose own plan holds every ceiling and
        keeps more FLOPs (adjacent layers' costs do not add up, so every move
        is tried before the plan counts as grown).
        """
        flops = Budget(self.graph, measure="flops")

        def priced(trial):
            plan = plan_of(trial)
            return flops.ratio(plan), min(self._gaps(plan))

        kept = priced(counts)[0]
        while True:
            ups = {u: _step_up(counts[u], steps[u], limits[u])
                   for u in counts if counts[u] < limits[u]}
            downs = {(u, n) for u in counts for k in (1, 2)
                     if (n := _step_down(counts[u], steps[u], k, max(floors[u], steps[u])))
                     < counts[u]}
            gain = {move: priced({**counts, move[0]: move[1]})[0] - kept
                    for move in [*ups.items(), *downs]}
            moves = [((up, n), None) for up, n in ups.items()] + [
                ((up, n), down) for up, n in ups.items() for down in downs if down[0] != up]
            moves.sort(key=lambda m: -(gain[m[0]] + (gain[m[1]] if m[1] else 0.0)))
            for up, down in moves:
                trial = {**counts, up[0]: up[1], **dict([down] if down else [])}
                trial_kept, slack = priced(trial)
                if slack >= 0 and trial_kept > kept:
                    counts, kept = trial, trial_kept
                    break
            else:
                return counts

    def _finest_step(self):
        """The smallest step counts are moved by: one channel, or under a latency ceiling the
        latency model's ``lanes`` (a runtime computes widths in between as the next multiple,
        and is often slower there: such moves buy no predicted time and cost real time)."""
        return max([b.latency_model.lanes for b in self.ceilings if b.measure == "latency"],
                   default=1)

    def _exchange(self, counts, limits, floors, steps, plan_of, chosen):
        """Counts with one unit raised a step and another lowered one or two (or none), the
        move that most narrows the gaps ``chosen(gaps)`` (of the ceilings' gaps) beyond
        ``BAND`` (then in all) while every ceiling holds, until each is within ``BAND``.

        Raising alone can stop short of the band: a unit at its limit cannot
        grow, and one more step of another may overshoot (a group whose
        every channel costs more than the band). Moving a step between
        two units then lands in between. With several ceilings the raise
        stops at the binding one; moving steps from units dear in it to
        units cheap in it fills the others (under a latency ceiling, FLOPs
        move from layers that run slow for their FLOPs to those that run
        fast).
        """
        def unfilled(gaps):
            gaps = chosen(gaps)
            return sum(max(0.0, gap - BAND) for gap in gaps), sum(gaps)

        gap = unfilled(self._gaps(plan_of(counts)))
        while gap[0] > 0:
            best = None
            lowered = dict.fromkeys(
                (u, _step_down(counts[u], steps[u], k, floors[u]))
                for u in counts if counts[u] > floors[u] for k in (1, 2))
            for up in (u for u in counts if counts[u] < limits[u]):
                raised = _step_up(counts[up], steps[up], limits[up])
                for down, count in (None, None), *(m for m in lowered if m[0] != up):
                    trial = {**counts, up: raised}
                    if down is not None:
                        trial[down] = count
                    gaps = self._gaps(plan_of(trial))
                    if min(gaps) < 0:
                        continue
                    value = unfilled(gaps)
                    if value < (gap if best is None else best[1]):
                        best = (trial, value)
            if best is None:
                return counts
            counts, gap = best
        return counts

    def _raise(self, counts, limits, steps, plan_of, slack, tolerance):
        """Counts raised a step at a time, most cut unit first, while the ceilings hold.

        Stops once the cost is within ``tolerance`` of the binding ceiling.
        """
        moved = True
        while moved and slack > tolerance:
            moved = False
            for unit in sorted(counts, key=lambda u: counts[u] / max(1, limits[u])):
                if counts[unit] >= limits[unit]:
                    continue
                trial = dict(counts)
                trial[unit] = _step_up(counts[unit], steps[unit], limits[unit])
                value = self.slack(plan_of(trial))
                if value >= 0:
                    counts, slack, moved = trial, value, True
                    if slack <= tolerance:
                        break
        return counts, slack

    def floor_ratio(self, encoding):
        """The smallest share of the main measure the floors of an `UpperEncoding` allow:
        every group at its floor."""
        keep = {g.id: encoding.ranking[g.id][:stepped(encoding.floor[g.id], encoding.step[g.id],
                                                       encoding.floor[g.id], g.size)]
                for g in encoding.groups}
        return self.ratio(encoding.plan(keep))

    def repair(self, encoding, keep, fill=False):
        """The upper-level plan of ``keep`` (from `UpperEncoding.kept`) fitted to the target.

        Shrunk when over it; then the most cut groups get their best-ranked
        missing channels back while the target holds (`fit_counts`), so
        every repaired plan lands just below the target; with ``fill``, every
        ceiling to fill does (see `filled`).
        """
        order = {k: np.concatenate([v, encoding.ranking[k][~np.isin(encoding.ranking[k], v)]])
                 for k, v in keep.items()}
        return self.fit_counts({k: len(v) for k, v in keep.items()},
                               lambda counts: encoding.plan({k: order[k][:n]
                                                             for k, n in counts.items()}),
                               encoding.step, encoding.floor,
                               limits={k: len(v) for k, v in order.items()}, fill=fill)


def _step_up(count, step, limit):
    """``count`` raised to the next multiple of ``step``, at most ``limit``."""
    return min(limit, (count // step + 1) * step)


def _step_down(count, step, k, floor):
    """``count`` lowered ``k`` multiples of ``step`` (from its own, rounded up), at least
    ``floor``."""
    return max(floor, (-(-count // step) - k) * step)


# A budget is met within BAND of its target (when the floors allow): counts are raised in
# their steps until the cost is within TOLERANCE of the target, then in halved steps (down
# to single channels) while it is still more than BAND below.
TOLERANCE = 0.01
BAND = 0.03


