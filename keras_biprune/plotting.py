"""Figures of a pruning run: the Pareto front, kept widths, the search history,
widths over an adaptive run.

Every function returns a `matplotlib.figure.Figure` built with the
object-oriented API: pyplot is never imported and no global matplotlib state
(backend, ``rcParams``) is touched, so the figures work in scripts, notebooks
and headless jobs alike. Pass ``ax`` to draw into an axes of your own figure.
"""

from collections.abc import Mapping

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from keras_biprune._validate import is_number
from keras_biprune.errors import SearchError
from keras_biprune.graph import ChannelGraph, trace

__all__ = ["plot_pareto_front", "plot_search_history", "plot_width_history", "plot_widths"]

_MEASURES = {"flops": "FLOPs", "params": "Parameters", "filters": "Filters"}


def _axes(ax, figsize, name):
    """A fresh tight-layout figure and axes, or ``ax`` and its figure."""
    if ax is None:
        figure = Figure(figsize=figsize, layout="tight")
        return figure, figure.add_subplot()
    if not isinstance(ax, Axes):
        raise SearchError(f"{name} draws into a matplotlib Axes. Received: ax={type(ax).__name__}."
                          " Pass ax=None for a new figure, or an axes, e.g. fig.add_subplot().")
    return ax.get_figure(root=True), ax


def _points(items, name):
    """(n, 2) array of (cost, score) from `Solution` objects or (cost, score) pairs."""
    rows = []
    for item in items:
        pair = (item.cost, item.score) if hasattr(item, "cost") and hasattr(item, "score") else item
        try:
            cost, score = (float(v) for v in pair)
        except (TypeError, ValueError):
            raise SearchError(
                f"{name} must hold Solution objects or (cost, score) pairs. Received: an item "
                f"{item!r:.80}. Pass e.g. {name}=front.select(3) or {name}=[(0.5, 0.91)]."
            ) from None
        rows.append((cost, score))
    return np.array(rows, dtype="float64").reshape(-1, 2)


def _metric_name(metric):
    """``"accuracy"`` -> ``"Accuracy"``: the y axis names what the score measures."""
    if metric is None:
        return "Score"
    if not isinstance(metric, str) or not metric.strip():
        raise SearchError(f"metric must be the name of the score (e.g. 'accuracy') or None. "
                          f"Received: metric={metric!r}.")
    metric = metric.strip().replace("_", " ")
    return metric[0].upper() + metric[1:]


def plot_pareto_front(front, *, baseline=None, selected=None, chosen=None, others=None,
                      metric=None, target=None, finetuned=None, ax=None):
    """Accuracy (or another score) against kept cost of the plans on a Pareto front.

    The front is drawn as a step line with markers: for every kept share of the
    cost measure, the best score a plan on the front reaches at that cost.
    Front scores are measured *before* fine-tuning (with adaptive batch norm);
    ``finetuned`` adds the chosen plan's score after it, so the two can be
    told apart on one figure.

    Args:
        front: a `keras_biprune.search.ParetoFront` with at least one solution.
        baseline: the unpruned model's score, drawn as a dashed line, or None.
        selected: `Solution` objects (or (cost, score) pairs) to highlight,
            e.g. ``front.select(3)``, or None.
        chosen: one `Solution` (or (cost, score) pair) to mark with a star, or None.
        others: (cost, score) pairs (or `Solution` objects) of other evaluated
            plans, drawn as a faint cloud, or None.
        metric: the name of what the score measures, e.g. ``"accuracy"``
            (the evaluator's ``metric``): the y axis then reads "Accuracy
            before fine-tuning". None keeps the generic "Score".
        target: the cost budget (e.g. ``target_flops=0.5``), drawn as a
            vertical dotted line, or None.
        finetuned: ``(cost, score)`` of the chosen plan after fine-tuning
            (the pruned model's measured share of the cost and its score),
            drawn as a green diamond, or None.
        ax: a matplotlib `Axes` to draw into, or None for a new figure.

    Returns:
        The `matplotlib.figure.Figure` (the figure of ``ax`` when given).

    Raises:
        SearchError: ``front`` is not a non-empty `ParetoFront`, a point is
            malformed, or ``metric``, ``target`` or ``baseline`` is not what it should be.

    Example:

    ```python
    from keras_biprune.plotting import plot_pareto_front
    result = kb.search.NSGA2Search(evaluator, max_accuracy_drop=0.05).run()
    fig = plot_pareto_front(result.front, baseline=evaluator.baseline, metric="accuracy",
                            selected=result.front.select(3), chosen=result.best,
                            target=0.5, finetuned=(0.49, 0.91))
    fig.savefig("front.png")
    ```
    """
    if not (hasattr(front, "solutions") and hasattr(front, "measure")):
        hint = " It looks like a SearchResult: pass result.front." if hasattr(front, "front") else ""
        raise SearchError(f"plot_pareto_front expects a ParetoFront. Received: "
                          f"front={type(front).__name__}.{hint}")
    if len(front.solutions) == 0:
        raise SearchError("plot_pareto_front needs a ParetoFront with at least one solution. "
                          "Received: an empty front (no feasible plan was found). Loosen "
                          "max_accuracy_drop or target, or search longer.")
    for name, value in (("baseline", baseline), ("target", target)):
        if value is not None and not is_number(value):
            what = "the unpruned score" if name == "baseline" else "the kept share, e.g. 0.5"
            raise SearchError(f"{name} must be a number ({what}) or None. "
                              f"Received: {name}={value!r}.")
    name = _metric_name(metric)
    points = _points(front.solutions, "front")
    figure, ax = _axes(ax, (7.0, 4.5), "plot_pareto_front")
    if others is not None:
        cloud = _points(others, "others")
        ax.scatter(cloud[:, 0], cloud[:, 1], s=12, color="gray", alpha=0.3, linewidths=0,
                   zorder=1, label=f"other plans ({len(cloud)})")
    ax.step(points[:, 0], points[:, 1], where="post", marker="o", color="tab:blue", zorder=3,
            label=f"Pareto front ({len(points)} plans)")
    if baseline is not None:
        ax.axhline(float(baseline), linestyle="--", linewidth=1, color="black", label="unpruned")
    if target is not None:
        ax.axvline(float(target), linestyle=":", linewidth=1.5, color="tab:purple",
                   label=f"target ({float(target):.0%} kept)")
    if selected is not None:
        picked = _points(selected, "selected")
        ax.scatter(picked[:, 0], picked[:, 1], s=150, facecolors="none", edgecolors="tab:orange",
                   linewidths=2, zorder=4, label=f"selected ({len(picked)})")
    if chosen is not None:
        (cost, score), = _points([chosen], "chosen")
        ax.scatter([cost], [score], marker="*", s=300, color="tab:red", edgecolors="black",
                   zorder=5, label=f"chosen ({cost:.0%} kept, {name.lower()} {score:.3g})")
    if finetuned is not None:
        (cost, score), = _points([finetuned], "finetuned")
        label = f"after fine-tuning ({cost:.0%} kept, {name.lower()} {score:.3g})"
        ax.scatter([cost], [score], marker="D", s=90, color="tab:green", edgecolors="black",
                   zorder=6, label=label)
    measure = _MEASURES.get(front.measure, str(front.measure).capitalize())
    direction = "higher" if getattr(front, "greater_is_better", True) else "lower"
    ylabel = (f"{name} before fine-tuning ({direction} is better)" if finetuned is None else
              f"{name} ({direction} is better)\nfront: before fine-tuning, ◆: after")
    ax.set(xlabel=f"{measure} kept (share of the unpruned model)", ylabel=ylabel,
           title=f"Pareto front: {name.lower()} against {measure} kept")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize="small")
    return figure


def plot_widths(graph, plan, *, ax=None):
    """Original and kept channels of every prunable group, as bars.

    Args:
        graph: the `ChannelGraph` of the unpruned model (a Keras model is traced).
        plan: a `PruningPlan` made for that graph; groups it does not list
            are kept whole.
        ax: a matplotlib `Axes` to draw into, or None for a new figure, whose
            width grows with the number of groups.

    Returns:
        The `matplotlib.figure.Figure` (the figure of ``ax`` when given).

    Raises:
        InvalidPlanError: ``plan`` does not fit ``graph`` (see `PruningPlan.validate`).

    Example:

    ```python
    from keras_biprune.plotting import plot_widths
    graph = kb.trace(model)
    fig = plot_widths(graph, kb.PruningPlan.random(graph, ratio=0.5, seed=0))
    fig.savefig("widths.png")
    ```
    """
    if not isinstance(graph, ChannelGraph):
        graph = trace(graph)
    if not hasattr(plan, "validate") or not hasattr(plan, "keep"):
        raise SearchError(f"plot_widths expects a PruningPlan. Received: plan="
                          f"{type(plan).__name__}. Build one, e.g. kb.PruningPlan.random(graph).")
    plan.validate(graph)
    groups = graph.prunable_groups
    n = len(groups)
    figure, ax = _axes(ax, (max(6.0, min(0.28 * n + 2.0, 40.0)), 4.5), "plot_widths")
    sizes = np.array([g.size for g in groups])
    kept = np.array([len(plan.keep.get(g.id, range(g.size))) for g in groups])
    x = np.arange(n)
    ax.bar(x, sizes, width=0.8, color="#c6dbef", edgecolor="#6baed6", label="original")
    ax.bar(x, kept, width=0.55, color="#08519c", label="kept")
    style = ({"rotation": 90, "fontsize": 8} if n > 12 else
             {"rotation": 45, "ha": "right", "rotation_mode": "anchor", "fontsize": 9})
    ax.set_xticks(x, [g.id for g in groups], **style)
    ax.set_xlim(-0.6, max(n, 1) - 0.4)
    total = int(sizes.sum())
    share = f" ({kept.sum() / total:.0%})" if total else ""
    ax.set(title=f"Kept channels: {int(kept.sum())} of {total}{share}, {n} prunable groups",
           xlabel="Channel group", ylabel="Channels")
    if n == 0:
        ax.text(0.5, 0.5, "no prunable group", ha="center", va="center", transform=ax.transAxes)
    else:
        ax.legend(loc="best", fontsize="small")
    ax.grid(axis="y", alpha=0.3)
    return figure


def plot_search_history(history, *, ax=None):
    """Best and mean fitness per generation, with the evaluations spent.

    Fitness is on the left axis, the cumulative number of evaluated plans on a
    right axis. When the records carry ``hypervolume`` (NSGA-II), it gets a
    second panel below (or, when ``ax`` is given, a dotted line on ``ax``).

    Args:
        history: the list of per-generation records of a search
            (``SearchResult.history``, ``pruner.search_history_``) or a
            `SearchResult`. Each record holds ``generation`` and ``best``,
            optionally ``mean``, ``evaluations`` and ``hypervolume``.
        ax: a matplotlib `Axes` to draw into, or None for a new figure.

    Returns:
        The `matplotlib.figure.Figure` (the figure of ``ax`` when given).

    Raises:
        SearchError: ``history`` is empty or its records are malformed.

    Example:

    ```python
    from keras_biprune.plotting import plot_search_history
    result = kb.search.BiLevelSearch(evaluator, target=0.5, max_accuracy_drop=None).run()
    plot_search_history(result.history).savefig("history.png")
    ```
    """
    records = getattr(history, "history", history)
    if isinstance(records, Mapping) or not hasattr(records, "__iter__"):
        raise SearchError("plot_search_history expects a list of per-generation dicts. Received: "
                          f"history={type(records).__name__}. Pass result.history.")
    records = list(records)
    if not records:
        raise SearchError("plot_search_history needs at least one generation. Received: an "
                          "empty history. Run the search for generations >= 1 first.")
    for record in records:
        if not isinstance(record, Mapping) or "generation" not in record or "best" not in record:
            raise SearchError("Each history record must be a dict with 'generation' and 'best'. "
                              f"Received: {record!r:.100}. Pass SearchResult.history unchanged.")

    def column(key):
        try:
            return np.array([np.nan if r.get(key) is None else float(r[key]) for r in records])
        except (TypeError, ValueError):
            raise SearchError(f"History values must be numbers. Received: {key}="
                              f"{[r.get(key) for r in records][:5]!r:.100}. Pass "
                              "SearchResult.history unchanged.") from None

    generations, best, mean = column("generation"), column("best"), column("mean")
    evaluations, hypervolume = column("evaluations"), column("hypervolume")
    has_hv = bool(np.isfinite(hypervolume).any())
    if ax is None:
        figure = Figure(figsize=(7.0, 6.0 if has_hv else 4.0), layout="tight")
        axes = figure.subplots(2 if has_hv else 1, 1, sharex=True, squeeze=False)[:, 0]
        ax, hv_ax = axes[0], (axes[1] if has_hv else None)
    else:
        figure, ax = _axes(ax, None, "plot_search_history")
        hv_ax = ax if has_hv else None
    ax.plot(generations, best, marker="o", color="tab:blue", label="best fitness")
    if np.isfinite(mean).any():
        ax.plot(generations, mean, marker="s", markersize=4, linestyle="--", color="tab:orange",
                label="mean fitness")
    ax.set_ylabel("Fitness")
    handles, top = [], ax
    if np.isfinite(evaluations).any():
        twin = top = ax.twinx()
        handles += twin.step(generations, evaluations, where="post", color="gray", alpha=0.7,
                             label="plans evaluated")
        twin.set_ylabel("Plans evaluated (cumulative)")
        twin.yaxis.set_major_locator(MaxNLocator(integer=True))
    if hv_ax is not None:
        own = hv_ax is not ax
        hv_ax.plot(generations, hypervolume, marker="^", color="tab:green",
                   linestyle="-" if own else ":", label="front hypervolume")
        if own:
            hv_ax.set_ylabel("Front hypervolume")
            hv_ax.legend(loc="lower right", fontsize="small")
            hv_ax.grid(alpha=0.3)
    bottom = hv_ax if hv_ax is not None else ax
    bottom.set_xlabel("Generation")
    bottom.xaxis.set_major_locator(MaxNLocator(integer=True))
    spent = f", {int(evaluations[-1])} plans evaluated" if np.isfinite(evaluations[-1]) else ""
    ax.set_title(f"Search history: {len(records)} generations{spent}")
    ax.grid(alpha=0.3)
    lines = ax.get_legend_handles_labels()[0] + handles
    top.legend(lines, [line.get_label() for line in lines], loc="best", fontsize="small")
    return figure


def plot_width_history(records, *, end_epoch=None, ax=None):
    """Every channel group's width over an adaptive run, with the MACs kept.

    One step line per group (width against epoch); when the records carry
    MACs, a dashed black line on a right axis shows the share of the
    starting MACs.

    Args:
        records: ``AdaptivePruner.width_history_``: dicts with ``epoch`` and
            ``widths`` ({group_id: width}), optionally ``macs``.
        end_epoch: the epoch the run ended at, to draw the last widths up
            to (``len(pruner.history_.epoch)``), or None.
        ax: a matplotlib `Axes` to draw into, or None for a new figure.

    Returns:
        The `matplotlib.figure.Figure` (the figure of ``ax`` when given).

    Raises:
        SearchError: ``records`` is empty or malformed.

    Example:

    ```python
    from keras_biprune.plotting import plot_width_history
    pruner = kb.AdaptivePruner(model, from_scratch=True)
    pruner.fit(x_train, y_train, epochs=6)
    plot_width_history(pruner.width_history_).savefig("widths_over_time.png")
    ```
    """
    records = list(records) if hasattr(records, "__iter__") and not isinstance(records, Mapping) \
        else None
    if not records or not all(isinstance(r, Mapping) and "epoch" in r and "widths" in r
                              for r in records):
        raise SearchError("plot_width_history expects a non-empty list of dicts with 'epoch' and "
                          "'widths'. Received: "
                          f"{type(records).__name__ if records is not None else 'not a list'}. "
                          "Pass AdaptivePruner.width_history_.")
    figure, ax = _axes(ax, (7.5, 4.5), "plot_width_history")
    changes = len(records) - 1
    if end_epoch is not None and end_epoch > records[-1]["epoch"]:
        records = [*records, {**records[-1], "epoch": end_epoch}]
    epochs = np.array([float(r["epoch"]) for r in records])
    groups = list(dict.fromkeys(g for r in records for g in r["widths"]))
    for group in groups:
        widths = [r["widths"].get(group, np.nan) for r in records]
        ax.step(epochs, widths, where="post", marker=".", label=group)
    ax.set(xlabel="Epoch", ylabel="Channels (width)",
           title=f"Widths over the run: {len(groups)} groups, {changes} changes")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    macs = [r.get("macs") for r in records]
    if all(m is not None for m in macs) and macs[0]:
        twin = ax.twinx()
        twin.step(epochs, np.array(macs, dtype="float64") / macs[0], where="post", color="black",
                  linestyle="--", label="MACs kept")
        twin.set_ylabel("MACs (share of the start)")
        twin.legend(loc="upper right", fontsize="small")
    ax.legend(loc="upper left", fontsize="x-small", ncol=2 if len(groups) > 8 else 1)
    return figure
