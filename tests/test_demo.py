"""The README's demo runs end to end on offline data."""

import json

import keras

from keras_biprune import demo
from keras_biprune.datasets import load_digits


def test_digits_split_is_reproducible_and_disjoint():
    (a, ya), (b, yb) = load_digits(seed=1)
    (a2, _), _ = load_digits(seed=1)
    assert a.shape[1:] == (8, 8, 1) and len(a) + len(b) == 1797
    assert (a == a2).all() and 0 <= a.min() and a.max() <= 1
    assert set(ya) == set(range(10)) and set(yb) <= set(range(10))


def test_demo_prunes_to_its_flops_and_latency_budgets_and_exports(tmp_path, capsys):
    pruner = demo.run(out=str(tmp_path), data="digits", preset="quick")
    out = capsys.readouterr().out
    assert "CPU latency (ms)" in out and "val accuracy" in out
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["flops_kept"] <= 0.5
    latency = report["latency"]
    assert (latency["runtime"], latency["batch_size"]) == ("tf", demo.BATCH_SIZE)
    assert latency["predicted"] <= demo.TARGET_LATENCY and latency["measured"] > 0
    slim = keras.saving.load_model(tmp_path / "model.keras")
    assert slim.count_params() == report["params"]["pruned"] < report["params"]["original"]
    assert pruner.pruned_model_.count_params() == slim.count_params()
    for name in ("pareto.png", "widths.png", "history.png", "model_int8.tflite", "plan.json"):
        assert (tmp_path / name).stat().st_size > 0
