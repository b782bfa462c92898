"""quantization_aware_tflite leaves the process as it found it (checked in a fresh process)."""

import importlib.util
import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("tensorflow_model_optimization") is None
    or importlib.util.find_spec("tf_keras") is None,
    reason="needs the tfmot extra",
)

SCRIPT = r"""
import json, os, sys
import numpy as np
import keras
import tensorflow as tf
from keras_biprune.datasets import as_dataset
from keras_biprune.export import quantization_aware_tflite, run_tflite

report = {
    "env_before": os.environ.get("TF_USE_LEGACY_KERAS"),
    # tf.keras resolves lazily on first use: the call below is the first.
    "tf_keras_unresolved_before": repr(vars(tf)["keras"]) == "<KerasLazyLoader>",
}
model = keras.Sequential([
    keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3), keras.layers.BatchNormalization(),
    keras.layers.ReLU(), keras.layers.Flatten(), keras.layers.Dense(3),
])
model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
rng = np.random.default_rng(0)
x, y = rng.random((32, 8, 8, 1), dtype="float32"), rng.integers(0, 3, 32)
flatbuffer = quantization_aware_tflite(model, x, y, epochs=1, batch_size=16)

fresh = tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.Dense(2)])
fresh.compile(optimizer="sgd", loss="mse")
data = as_dataset(np.ones((8, 4), "float32"), np.zeros((8, 2), "float32"), batch_size=8)
history = fresh.fit(data, epochs=1, verbose=0)
report.update(
    env_after=os.environ.get("TF_USE_LEGACY_KERAS"),
    tf_keras_is_keras_3=tf.keras.Model is keras.Model and tf.keras.layers.Dense is keras.layers.Dense,
    tf_keras_module=tf.keras.__name__,
    fresh_is_keras_3=isinstance(fresh, keras.Model),
    fit_steps=len(history.history["loss"]),
    fit_loss_finite=bool(np.isfinite(history.history["loss"][0])),
    tfmot_was_imported="tensorflow_model_optimization" in sys.modules,
    int8_output_shape=list(run_tflite(flatbuffer, x[:2]).shape),
)
print("REPORT " + json.dumps(report))
"""


@pytest.mark.parametrize("env_value", [None, "0"], ids=["unset", "preset-0"])
def test_qat_keeps_tf_keras_on_keras_3_and_restores_the_environment(env_value):
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    if env_value is not None:
        env["TF_USE_LEGACY_KERAS"] = env_value
    done = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                          text=True, timeout=600, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("REPORT ")]
    assert done.returncode == 0 and lines, done.stderr[-3000:]
    report = json.loads(lines[-1][len("REPORT "):])
    assert report == {
        "env_before": env_value,
        "tf_keras_unresolved_before": True,
        "env_after": env_value,
        "tf_keras_is_keras_3": True,
        "tf_keras_module": report["tf_keras_module"],
        "fresh_is_keras_3": True,
        "fit_steps": 1,
        "fit_loss_finite": True,
        "tfmot_was_imported": True,
        "int8_output_shape": [2, 3],
    }
    assert report["tf_keras_module"].startswith("keras."), "tf.keras resolved to tf_keras"
