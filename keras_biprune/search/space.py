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
import numbers

import numpy as np

from keras_biprune.criteria.weights import input_magnitudes
from keras_biprune.errors import SearchError
from keras_biprune.evaluate import cost
from keras_biprune.plan import PruningPlan, takes_input_mask, takes_kernel_mask

KINDS = ("mask", "width")
GRANULARITIES = ("layer", "filter")
MEASURES = ("flops", "params", "filters")


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
            group: keep ``gene * round_to`` channels, at most the group size).
        round_to: width step: every group keeps a multiple of it (or all its
            channels). The ``"width"`` kind counts in these steps; the
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
        check_choice("kind", kind, KINDS)
        check_int("round_to", round_to, 1)
        check_int("min_channels", min_channels, 1)
        if not isinstance(max_prune_ratio, numbers.Real) or not 0 < max_prune_ratio <= 1:
            raise SearchError(
                f"max_prune_ratio must be in (0, 1]. Received: max_prune_ratio="
                f"{max_prune_ratio!r}. Use e.g. 0.8 to keep at least 20% of every group."
            )
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
        if kind == "mask":
            self.gene_space = [[0, 1]] * sum(g.size for g in self.groups)
        else:
            self.gene_space = [list(range(1, math.ceil(g.size / round_to) + 1))
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
                genome.append(max(1, min(math.ceil(n / self.round_to),
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
                chosen = ranked[:min(g.size, int(genome[i]) * self.round_to)]
            n = stepped(max(len(chosen), self.floor[g.id]), self.round_to, self.floor[g.id],
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
            norm, fill up or are dropped to the step). Reading an odd count
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
        check_choice("granularity", granularity, GRANULARITIES)
        check_choice("kind", kind, KINDS)
        check_int("levels", levels, 1)
        check_int("round_to", round_to, 1)
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
        whole plan meets the target (see `Budget.fit`).
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

        def plan_at(factor):
            inputs, kernels = {}, {}
            for path, read, chosen, counts, kept_filters in choices:
                if kept_filters is None:            # layer: ``chosen`` ranks read channels
                    n = stepped(max(1, round(factor * counts)), self.round_to, 1, len(read))
                    kept = chosen[:n]
                    if len(kept) < len(read):
                        inputs[path] = sorted(kept.tolist())
                    continue
                mask = np.ones(self.kernel_abs[path].shape, dtype=bool)
                mask[read] = chosen < np.maximum(1, np.round(factor * counts))[None, :]
                mask[:, ~kept_filters] = True          # filters the upper level removed
                if not mask.all():
                    kernels[path] = mask
            plan = PruningPlan(upper_plan.keep, inputs=inputs, kernels=kernels,
                               signature=upper_plan.signature)
            return plan.without_unread(self.graph)

        return plan_at(1.0) if budget is None else budget.fit(plan_at)


class Budget:
    """A cost ceiling: the kept share of FLOPs, parameters or filters.

    `repair` enforces it on the upper level: every group's kept count is
    scaled by one common factor (rounded to the encoding's ``round_to``,
    never below the group's floor), dropping each group's worst-ranked kept
    channels; `LowerEncoding.decode` does the same with input channels. The
    factor is the largest that meets the target (`fit`). When the floors make
    the target unreachable, the plan is as small as they allow and the
    objective's penalty applies.

    Args:
        graph: the model's `ChannelGraph`.
        target: kept share in (0, 1], or None for no ceiling.
        measure: ``"flops"`` (multiply-accumulates; sparse ones when the plan
            has kernel masks), ``"params"`` or ``"filters"`` (kept positions
            of the prunable groups).

    Example:

    ```python
    import keras_biprune as kb
    graph = kb.trace(model)
    budget = kb.search.Budget(graph, target=0.5, measure="params")
    budget.ratio(kb.PruningPlan.random(graph, ratio=0.5, seed=0))   # about 0.25-0.5
    ```
    """

    def __init__(self, graph, target=None, measure="flops"):
        check_choice("measure", measure, MEASURES)
        if target is not None and (not isinstance(target, numbers.Real)
                                   or isinstance(target, bool) or not 0 < target <= 1):
            raise SearchError(
                f"The target must be the share of the unpruned model's {measure} to keep, in "
                f"(0, 1]. Received: target={target!r}. Use e.g. 0.5 to halve the {measure}."
            )
        self.graph = graph
        self.target = target
        self.measure = measure
        self._sizes = {g.id: g.size for g in graph.prunable_groups}
        if measure != "filters":
            self._full = self._absolute(PruningPlan.keep_all(graph))

    def ratio(self, plan):
        """The plan's cost as a share of the unpruned model's."""
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
        plan = plan_at(1.0)
        if self.target is None or self.ratio(plan) <= self.target:
            return plan
        low, high = 0.0, 1.0
        for _ in range(14):
            mid = (low + high) / 2
            if self.ratio(plan_at(mid)) <= self.target:
                low = mid
            else:
                high = mid
        return plan_at(low)

    def repair(self, encoding, keep):
        """The upper-level plan of ``keep`` (from `UpperEncoding.kept`), shrunk to the target."""
        step = encoding.round_to

        def count(group_id, n, factor):
            if factor >= 1:
                return n
            return min(n, stepped(factor * n, step, encoding.floor[group_id], n))

        def plan_at(factor):
            return encoding.plan({k: v[:count(k, len(v), factor)] for k, v in keep.items()})

        return self.fit(plan_at)


def stepped(n, step, floor, size):
    """``n`` rounded to the nearest multiple of ``step``, at least ``floor``, at most ``size``.

    A whole group (``n >= size``) stays whole.
    """
    if n >= size:
        return size
    n = step * max(1, round(n / step))
    if n < floor:
        n = step * math.ceil(floor / step)
    return min(size, n)


def check_choice(name, value, choices):
    if value not in choices:
        raise SearchError(f"{name} must be one of {choices}. Received: {name}={value!r}.")


def check_int(name, value, low):
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < low:
        raise SearchError(f"{name} must be an int >= {low}. Received: {name}={value!r}.")
