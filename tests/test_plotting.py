"""Figures: Pareto front, kept widths, search history; no global matplotlib state touched."""

import os
import pathlib
import subprocess
import sys

import keras
import matplotlib
import numpy as np
import pytest
from matplotlib.collections import PathCollection
from matplotlib.figure import Figure
from zoo import ZOO

import keras_biprune as kb
from keras_biprune.plotting import (
    plot_pareto_front,
    plot_search_history,
    plot_width_history,
    plot_widths,
)


@pytest.fixture(scope="module")
def graph():
    return kb.trace(ZOO["plain_chain"]())


@pytest.fixture(scope="module")
def front(graph):
    solutions = [kb.search.Solution(kb.PruningPlan.random(graph, ratio=r, seed=i), score, cost)
                 for i, (r, score, cost) in enumerate(
                     [(0.8, 0.60, 0.2), (0.5, 0.80, 0.5), (0.2, 0.90, 0.8), (0.5, 0.70, 0.6)])]
    return kb.search.ParetoFront(solutions, greater_is_better=True, measure="flops")


def _history(n=4, hypervolume=False):
    records = []
    for g in range(1, n + 1):
        record = {"generation": g, "best": 0.5 + 0.1 * g, "mean": 0.3 + 0.1 * g,
                  "evaluations": 10 * g, "elapsed": 1.0 * g}
        if hypervolume:
            record.update(front=g, hypervolume=0.1 * g)
        records.append(record)
    return records


def _line(ax, label):
    return next(line for line in ax.get_lines() if line.get_label().startswith(label))


def _saves(figure, tmp_path, name):
    path = tmp_path / name
    figure.savefig(path)
    assert path.stat().st_size > 0 and path.read_bytes()[:4] == b"\x89PNG"


def test_pareto_front_figure(front, tmp_path):
    others = [(0.3, 0.4), (0.7, 0.65), (0.9, 0.5)]
    figure = plot_pareto_front(front, baseline=0.95, selected=front.select(2),
                               chosen=front[1], others=others)
    assert isinstance(figure, Figure)
    (ax,) = figure.axes
    assert len(front) == 3  # the dominated (0.6, 0.70) plan is dropped
    line = _line(ax, "Pareto front")
    np.testing.assert_allclose(line.get_xdata(), front.costs)
    np.testing.assert_allclose(line.get_ydata(), front.scores)
    assert line.get_drawstyle() == "steps-post" and line.get_marker() == "o"
    np.testing.assert_allclose(_line(ax, "unpruned").get_ydata(), [0.95, 0.95])
    clouds = {c.get_label().split(" (")[0]: c.get_offsets() for c in ax.collections
              if isinstance(c, PathCollection)}
    np.testing.assert_allclose(clouds["other plans"], others)
    np.testing.assert_allclose(clouds["selected"], [[0.2, 0.6], [0.8, 0.9]])
    np.testing.assert_allclose(clouds["chosen"], [[0.5, 0.8]])
    assert ax.get_xlabel() == "FLOPs kept (share of the unpruned model)"
    assert "Score" in ax.get_ylabel() and "higher is better" in ax.get_ylabel()
    assert ax.get_title() and ax.get_legend() is not None
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "unpruned" in labels and any(t.startswith("chosen") for t in labels)
    _saves(figure, tmp_path, "front.png")


def test_pareto_front_says_accuracy_and_draws_target_and_finetuned(front):
    figure = plot_pareto_front(front, baseline=0.95, chosen=front[1], metric="accuracy",
                               target=0.5, finetuned=(0.48, 0.93))
    (ax,) = figure.axes
    assert ax.get_ylabel() == ("Accuracy (higher is better)\n"
                               "front: before fine-tuning, ◆: after")
    assert "score" not in ax.get_ylabel().lower() and "accuracy" in ax.get_title()
    target = _line(ax, "target")
    np.testing.assert_allclose(target.get_xdata(), [0.5, 0.5])
    assert tuple(target.get_ydata()) == (0, 1) and target.get_transform() is not ax.transData
    assert target.get_linestyle() == ":"
    clouds = {c.get_label().split(" (")[0]: c for c in ax.collections
              if isinstance(c, PathCollection)}
    np.testing.assert_allclose(clouds["after fine-tuning"].get_offsets(), [[0.48, 0.93]])
    np.testing.assert_allclose(clouds["chosen"].get_offsets(), [[0.5, 0.8]])
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "target (50% kept)" in labels
    assert "after fine-tuning (48% kept, accuracy 0.93)" in labels
    assert "chosen (50% kept, accuracy 0.8)" in labels
    names = plot_pareto_front(front, metric="top_5_accuracy").axes[0].get_ylabel()
    assert names.startswith("Top 5 accuracy before fine-tuning")


def test_pareto_front_without_the_new_arguments_draws_no_target_or_finetuned(front):
    ax = plot_pareto_front(front, chosen=front[1], metric="accuracy").axes[0]
    assert ax.get_ylabel() == "Accuracy before fine-tuning (higher is better)"
    assert not [line for line in ax.get_lines() if line.get_label().startswith("target")]
    assert [c.get_label().split(" (")[0] for c in ax.collections] == ["chosen"]
    with pytest.raises(kb.SearchError, match="target must be a number.*Received: target='half'"):
        plot_pareto_front(front, target="half")
    with pytest.raises(kb.SearchError, match="metric must be the name"):
        plot_pareto_front(front, metric=3)
    with pytest.raises(kb.SearchError, match="finetuned must hold"):
        plot_pareto_front(front, finetuned=("a", "b"))


def test_pareto_front_measure_and_minimal(front):
    params = kb.search.ParetoFront(front.solutions, greater_is_better=False, measure="params")
    ax = plot_pareto_front(params).axes[0]
    assert ax.get_xlabel().startswith("Parameters kept") and "lower" in ax.get_ylabel()
    assert not ax.collections  # no cloud, selection or star unless asked


def test_pareto_front_into_given_axes(front):
    figure = Figure()
    left, right = figure.subplots(1, 2)
    assert plot_pareto_front(front, ax=right) is figure
    assert not left.get_lines() and _line(right, "Pareto front") is not None
    assert len(figure.axes) == 2


def test_pareto_front_bad_inputs(front):
    with pytest.raises(kb.SearchError, match="at least one solution.*Received: an empty"):
        plot_pareto_front(kb.search.ParetoFront([]))
    with pytest.raises(kb.SearchError, match="expects a ParetoFront. Received: front=list"):
        plot_pareto_front([(0.5, 0.9)])
    result = kb.search.SearchResult(front[0], front, [], 3)
    with pytest.raises(ValueError, match="pass result.front"):
        plot_pareto_front(result)
    with pytest.raises(kb.SearchError, match="others must hold.*Received: an item 'x'"):
        plot_pareto_front(front, others=["x"])
    with pytest.raises(kb.SearchError, match="baseline must be a number"):
        plot_pareto_front(front, baseline="high")
    with pytest.raises(kb.SearchError, match="Received: ax=str"):
        plot_pareto_front(front, ax="ax")


def test_widths_figure(graph, tmp_path):
    plan = kb.PruningPlan.random(graph, ratio=0.5, seed=0)
    figure = plot_widths(graph, plan)
    assert isinstance(figure, Figure)
    (ax,) = figure.axes
    groups = graph.prunable_groups
    assert len(ax.patches) == 2 * len(groups)
    original, kept = ax.containers
    assert [b.get_height() for b in original] == [g.size for g in groups]
    assert [b.get_height() for b in kept] == [len(plan.keep[g.id]) for g in groups]
    assert [t.get_text() for t in ax.get_xticklabels()] == [g.id for g in groups]
    total_kept = sum(len(plan.keep[g.id]) for g in groups)
    assert f"Kept channels: {total_kept} of {sum(g.size for g in groups)}" in ax.get_title()
    assert ax.get_ylabel() == "Channels" and ax.get_legend() is not None
    _saves(figure, tmp_path, "widths.png")


def test_widths_keep_all_model_and_given_axes():
    ax = Figure().add_subplot()
    figure = plot_widths(ZOO["plain_chain"](), kb.PruningPlan({}), ax=ax)  # a model is traced; {} keeps all
    assert figure is ax.figure
    original, kept = ax.containers
    assert [b.get_height() for b in kept] == [b.get_height() for b in original]


def test_widths_figure_grows_with_groups(graph):
    small = plot_widths(graph, kb.PruningPlan.keep_all(graph)).get_figwidth()
    x = inputs = keras.Input((4, 4, 1))
    for i in range(60):
        x = keras.layers.Conv2D(2 + i % 3, 1, name=f"block{i:02d}_conv")(x)
    deep = kb.trace(keras.Model(inputs, keras.layers.Dense(2)(x)))
    assert len(deep.prunable_groups) == 60
    figure = plot_widths(deep, kb.PruningPlan.random(deep, ratio=0.5, seed=0))
    ax = figure.axes[0]
    assert figure.get_figwidth() > 2 * small and len(ax.patches) == 120
    assert {t.get_rotation() for t in ax.get_xticklabels()} == {90.0}


def test_widths_bad_plan(graph):
    other = kb.trace(ZOO["residual"]())
    with pytest.raises(kb.PlanMismatchError, match="another model"):
        plot_widths(graph, kb.PruningPlan.random(other, seed=0))
    with pytest.raises(kb.InvalidPlanError, match="Received: index 99"):
        plot_widths(graph, kb.PruningPlan({graph.prunable_groups[0].id: [0, 99]}))
    with pytest.raises(kb.SearchError, match="expects a PruningPlan. Received: plan=dict"):
        plot_widths(graph, {"conv2d": [0]})


def test_history_figure(tmp_path):
    history = _history()
    figure = plot_search_history(history)
    assert isinstance(figure, Figure)
    ax, twin = figure.axes
    np.testing.assert_allclose(_line(ax, "best").get_ydata(), [r["best"] for r in history])
    np.testing.assert_allclose(_line(ax, "mean").get_ydata(), [r["mean"] for r in history])
    np.testing.assert_allclose(_line(twin, "plans").get_ydata(), [10, 20, 30, 40])
    np.testing.assert_allclose(_line(ax, "best").get_xdata(), [1, 2, 3, 4])
    assert ax.get_xlabel() == "Generation" and ax.get_ylabel() == "Fitness"
    assert twin.get_ylabel() == "Plans evaluated (cumulative)"
    assert "4 generations, 40 plans evaluated" in ax.get_title()
    legend = twin.get_legend() or ax.get_legend()
    assert {t.get_text() for t in legend.get_texts()} == {
        "best fitness", "mean fitness", "plans evaluated"}
    _saves(figure, tmp_path, "history.png")


def test_history_hypervolume_panel_and_result():
    history = _history(3, hypervolume=True)
    result = kb.search.SearchResult(None, kb.search.ParetoFront([]), history, 30)
    figure = plot_search_history(result)
    ax, hv_ax, _twin = figure.axes
    np.testing.assert_allclose(_line(hv_ax, "front hypervolume").get_ydata(), [0.1, 0.2, 0.3])
    assert hv_ax.get_xlabel() == "Generation" and hv_ax.get_ylabel() == "Front hypervolume"
    ax = Figure().add_subplot()
    plot_search_history(history, ax=ax)  # one panel: hypervolume joins the fitness axes
    assert _line(ax, "front hypervolume").get_linestyle() == ":"


def test_history_bad_inputs():
    with pytest.raises(kb.SearchError, match="at least one generation. Received: an empty"):
        plot_search_history([])
    with pytest.raises(kb.SearchError, match="'generation' and 'best'. Received: {'gen': 1}"):
        plot_search_history([{"gen": 1}])
    with pytest.raises(kb.SearchError, match=r"numbers. Received: best=\['high'\]"):
        plot_search_history([{"generation": 1, "best": "high"}])
    with pytest.raises(kb.SearchError, match="Received: history=dict"):
        plot_search_history({"generation": 1, "best": 0.5})


def _draw_all(graph, path):
    plan = kb.PruningPlan.random(graph, ratio=0.5, seed=0)
    front = kb.search.ParetoFront([kb.search.Solution(plan, 0.8, 0.5)])
    history = [{"generation": 1, "best": 0.5, "mean": 0.4, "evaluations": 8, "hypervolume": 0.1}]
    figures = [plot_pareto_front(front, baseline=0.9, chosen=front[0], others=[(0.3, 0.2)]),
               plot_widths(graph, plan), plot_search_history(history)]
    for i, figure in enumerate(figures):
        figure.savefig(pathlib.Path(path) / f"figure{i}.png")


def test_global_matplotlib_state_unchanged_in_process(graph, tmp_path):
    backend, rc = matplotlib.get_backend(), dict(matplotlib.rcParams.copy())
    _draw_all(graph, tmp_path)
    assert matplotlib.get_backend() == backend
    assert dict(matplotlib.rcParams.copy()) == rc


_SUBPROCESS = """
import sys
import matplotlib

class NoPyplot:  # Keras imports pyplot itself when it can: make it absent for everyone
    attempts = 0

    def find_spec(self, name, path=None, target=None):
        if name == "matplotlib.pyplot":
            NoPyplot.attempts += 1
            raise ImportError("pyplot is blocked in this test")

sys.meta_path.insert(0, NoPyplot())
matplotlib.use("svg")  # the user's own choice of backend
backend, rc = matplotlib.get_backend(), dict(matplotlib.rcParams.copy())
import keras_biprune as kb
import test_plotting
before = NoPyplot.attempts
test_plotting._draw_all(kb.trace(test_plotting.ZOO["plain_chain"]()), sys.argv[1])
assert NoPyplot.attempts == before, "keras_biprune.plotting tried to import pyplot"
assert "matplotlib.pyplot" not in sys.modules
assert matplotlib.get_backend() == backend, matplotlib.get_backend()
assert dict(matplotlib.rcParams.copy()) == rc, "rcParams changed"
print("clean")
"""


def test_global_matplotlib_state_unchanged_in_fresh_process(tmp_path):
    """No backend switch, no rcParams change, and pyplot never imported (nor needed)."""
    tests = pathlib.Path(__file__).parent
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": os.pathsep.join(
        [str(tests), str(tests.parent), os.environ.get("PYTHONPATH", "")])}
    env.pop("MPLBACKEND", None)
    out = subprocess.run([sys.executable, "-c", _SUBPROCESS, str(tmp_path)], check=False,
                         capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0 and "clean" in out.stdout, out.stderr[-3000:]
    assert len(list(tmp_path.glob("figure*.png"))) == 3


def test_width_history_draws_a_line_per_group_up_to_the_end_of_the_run():
    records = [{"epoch": 0, "widths": {"a": 8, "b": 16}, "macs": 100},
               {"epoch": 1, "widths": {"a": 6, "b": 20}, "macs": 90},
               {"epoch": 2, "widths": {"a": 6, "b": 24}, "macs": 95}]
    figure = plot_width_history(records, end_epoch=4)
    ax, twin = figure.axes
    assert [line.get_label() for line in ax.get_lines()] == ["a", "b"]
    assert list(ax.get_lines()[1].get_ydata()) == [16, 20, 24, 24]
    assert list(twin.get_lines()[0].get_xdata()) == [0, 1, 2, 4]
    assert "2 changes" in ax.get_title()
    with pytest.raises(kb.SearchError, match="non-empty list"):
        plot_width_history([])
    with pytest.raises(kb.SearchError, match="'epoch'"):
        plot_width_history([{"widths": {}}])
