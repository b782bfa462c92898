"""The keras-biprune command, run as a user runs it: in a subprocess."""

import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest

COMMAND = str(pathlib.Path(sys.executable).parent / "keras-biprune")


def _run(*args, cwd):
    env = os.environ | {"TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([COMMAND, *args], check=False, cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A compiled tiny model saved as .keras and an npz archive of data for it."""
    root = tmp_path_factory.mktemp("cli")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 8, 8, 1)).astype("float32")
    y = (x[:, :4].mean(axis=(1, 2, 3)) > 0).astype("int64")
    np.savez(root / "data.npz", x_train=x[:240], y_train=y[:240], x_test=x[240:], y_test=y[240:])
    inputs = keras.Input((8, 8, 1))
    h = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="c1")(inputs)
    h = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="c2")(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    model = keras.Model(inputs, keras.layers.Dense(2, name="fc")(h))
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.fit(x, y, epochs=2, verbose=0)
    model.save(root / "model.keras")
    return root


def test_prune_then_report(saved):
    result = _run("prune", "model.keras", "--data", "npz:data.npz", "--target-flops", "0.5",
                  "--generations", "1", "--population", "4", "--epochs", "1", "--verbose", "0",
                  "--out", "out", cwd=saved)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Exported to out" in result.stdout
    for name in ("model.keras", "model.tflite", "plan.json", "report.json", "pareto.png"):
        assert (saved / "out" / name).exists()
    shown = _run("report", "out", cwd=saved)
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert "parameters" in shown.stdout and "MACs" in shown.stdout
    again = _run("prune", "model.keras", "--data", "npz:data.npz", "--out", "out", cwd=saved)
    assert again.returncode != 0 and "--overwrite" in again.stderr


def test_bad_arguments_say_what_is_wrong(saved):
    result = _run("prune", "model.keras", "--data", "mnist", "--out", "x", cwd=saved)
    assert result.returncode != 0 and "--data must be one of" in result.stderr
    result = _run("report", "nowhere", cwd=saved)
    assert result.returncode != 0 and "no report.json" in result.stderr
    result = _run("frobnicate", cwd=saved)
    assert result.returncode == 2 and "invalid choice" in result.stderr
