"""The benchmark comparison's quick mode, end to end: CI's smoke test of `benchmarks.compare`."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from benchmarks.compare import GLOBAL, METHODS, OURS, TORCH, UNIFORM

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("compare") / "compare"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    subprocess.run([sys.executable, "-m", "benchmarks.compare", "--quick", "--out", str(out)],
                   cwd=ROOT, env=env, check=True, timeout=1800)
    with open(f"{out}.json") as f:
        return out, json.load(f)["rows"]


def test_every_method_has_a_row_under_the_budget(quick):
    _, rows = quick
    expected = {*OURS, "bilevel-layer+kd", *UNIFORM, *GLOBAL, *TORCH}
    assert {r["method"] for r in rows} == expected == set(METHODS)
    for r in rows:
        flops = r["sparse_flops"] if r["method"] == "bilevel-filter" else r["flops"]
        assert 0 < flops <= r["budget"] + 1e-9, r["method"]
        assert 0 <= r["accuracy_before"] <= 1 and 0 <= r["accuracy_after"] <= 1
        assert all(len(pair) == 2 and min(pair) > 0 for pair in r["latency_ms"].values())
    assert next(r for r in rows if r["method"] == "bilevel-filter")["plan"]["kernels"]
    assert not next(r for r in rows if r["method"] == "pruner")["plan"]["inputs"]  # no gathers


def test_widths_are_multiples_of_round_to(quick):
    _, rows = quick
    for r in rows:
        widths = r["widths"].values() if isinstance(r["widths"], dict) else r["widths"]
        assert all(w % 8 == 0 for w in widths), (r["method"], r["widths"])


def test_report_redraws_from_the_json_without_running(quick):
    out, rows = quick
    for suffix in ("_accuracy.png", "_latency.png"):
        os.remove(f"{out}{suffix}")
    result = subprocess.run([sys.executable, "-m", "benchmarks.compare", "--report", "--out",
                             str(out)], cwd=ROOT, capture_output=True, text=True, check=True,
                            timeout=300)
    assert "| 0.50 | bilevel-layer | 1 |" in result.stdout
    assert all(os.path.getsize(f"{out}{s}") > 0 for s in ("_accuracy.png", "_latency.png"))
    with open(f"{out}.json") as f:
        assert json.load(f)["rows"] == rows


@pytest.mark.parametrize("dataset", ["cifar10", "cifar100"])
def test_cifar_loads_through_keras_datasets(dataset, monkeypatch):
    from benchmarks import models

    x = np.zeros((4, 32, 32, 3), "uint8")
    offline = lambda *args: ((x, np.arange(4)[:, None]), (x[:2], np.arange(2)[:, None]))
    monkeypatch.setattr(getattr(keras.datasets, dataset), "load_data", offline)
    (x_train, y_train), (x_test, _) = models.load_data(dataset)
    assert x_train.shape == (4, 32, 32, 3) and x_test.shape == (2, 32, 32, 3)
    assert y_train.tolist() == [0, 1, 2, 3]
    assert models.default_epochs("resnet20", dataset) == 30
