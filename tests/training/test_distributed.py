"""Fine-tuning on several devices: a tf.distribute strategy (TensorFlow), a keras.distribution
(JAX), each over two CPU devices split in a fresh process (the split precedes the backend's
start)."""

import importlib.util
import json
import os
import pathlib
import subprocess
import sys

import keras
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]

# The pruner on a small digits CNN: the original trained before any distribution, the
# fine-tuning distilled from it. A probe callback records what the trained model runs on.
COMMON = r"""
import json
import keras
import numpy as np
from sklearn.datasets import load_digits
import keras_biprune as kb

digits = load_digits()
x = (digits.images[..., None] / 16.0).astype("float32")
y = digits.target
(x_train, y_train), validation = (x[:640], y[:640]), (x[1200:1501], y[1200:1501])


def build():
    inputs = keras.Input((8, 8, 1))
    h = keras.layers.Conv2D(12, 3, padding="same", name="c1")(inputs)
    h = keras.layers.BatchNormalization(name="bn1")(h)
    h = keras.layers.ReLU()(h)
    h = keras.layers.Conv2D(16, 3, padding="same", name="c2")(h)
    h = keras.layers.ReLU()(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    model = keras.Model(inputs, keras.layers.Dense(10, name="fc")(h), name="digits")
    model.compile(keras.optimizers.Adam(3e-3),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model


SEEN = {}


class Probe(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        SEEN["trained"] = type(self.model).__name__
        SEEN["student"] = describe(self.model.student.get_layer("c1").kernel)
        SEEN["teacher"] = describe(self.model.teacher.get_layer("c1").kernel)


def fit(model):
    pruner = kb.BiLevelPruner(model, target_flops=0.5, max_accuracy_drop=None,
                              search_kwargs={"generations": 2, "population_size": 4},
                              eval_size=128, calibration_size=64, random_state=0, verbose=0)
    history = pruner.fit(x_train, y_train, validation_data=validation, epochs=3,
                         batch_size=32, callbacks=[Probe()], distill=True)
    fresh = kb.apply_plan(model, pruner.plan_).get_layer("c2").kernel
    tuned = pruner.pruned_model_.get_layer("c2").kernel
    return {"loss": history.history["loss"], "seen": dict(SEEN),
            "pruned": describe(pruner.pruned_model_.get_layer("c1").kernel),
            "validated": sorted(pruner.report_["validation"]),
            "weights_changed": bool(np.abs(keras.ops.convert_to_numpy(fresh)
                                           - keras.ops.convert_to_numpy(tuned)).max() > 1e-4)}
"""

TENSORFLOW = r"""
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
""" + COMMON + r"""

def describe(variable):
    value = variable.value
    return {"type": type(value).__name__,
            "devices": sorted({v.device for v in getattr(value, "values", [value])})}


keras.utils.set_random_seed(0)
original = build()
original.fit(x_train, y_train, epochs=2, verbose=0)
before = [w.copy() for w in original.get_weights()]
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
with strategy.scope():                                  # the user's open scope
    report = {"open_scope": fit(original)}
report["original_untouched"] = all(
    np.array_equal(a, b) for a, b in zip(before, original.get_weights()))
with strategy.scope():                                  # an original built under the strategy
    keras.utils.set_random_seed(0)
    mirrored = build()
slim = kb.apply_plan(mirrored, kb.PruningPlan({"c1": list(range(6))},
                                              signature=kb.trace(mirrored).signature))
kb.training.finetune(slim, mirrored, x_train, y_train, epochs=1, batch_size=32, verbose=0,
                     teacher=mirrored, callbacks=[Probe()])
report["built_under_strategy"] = {"replicas": slim.distribute_strategy.num_replicas_in_sync,
                                  "seen": dict(SEEN)}
print("REPORT " + json.dumps(report))
"""

JAX = r"""
import jax
""" + COMMON + r"""

def describe(variable):
    return {"devices": len(variable.value.sharding.device_set)}


keras.utils.set_random_seed(0)
original = build()                                      # before the distribution: one device
original.fit(x_train, y_train, epochs=2, verbose=0)
distribution = keras.distribution.DataParallel(devices=jax.devices())
keras.distribution.set_distribution(distribution)
report = fit(original)
report["devices"] = len(jax.devices())
report["distribution_kept"] = keras.distribution.distribution() is distribution
print("REPORT " + json.dumps(report))
"""


def _run(script, **env):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])), **env}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=900, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("REPORT ")]
    assert done.returncode == 0 and lines, done.stderr[-4000:]
    return json.loads(lines[-1][len("REPORT "):])


@pytest.mark.tensorflow
def test_a_mirrored_strategy_over_two_cpus_trains_the_pruned_model_and_its_teacher():
    report = _run(TENSORFLOW, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3")
    mirrored = {"type": "MirroredVariable",
                "devices": ["/job:localhost/replica:0/task:0/device:CPU:0",
                            "/job:localhost/replica:0/task:0/device:CPU:1"]}
    fitted = report["open_scope"]
    # Fit, inside the scope, built the pruned model, the teacher's copy and the distiller
    # under the strategy: every variable mirrored on both CPUs.
    assert fitted["seen"] == {"trained": "Distiller", "student": mirrored, "teacher": mirrored}
    assert fitted["pruned"] == mirrored
    assert fitted["loss"][-1] < fitted["loss"][0] and fitted["weights_changed"]
    assert fitted["validated"] == ["original", "pruned"]
    assert report["original_untouched"]
    # Outside any scope, a model built under the strategy is rebuilt and trained under it.
    assert report["built_under_strategy"] == {
        "replicas": 2, "seen": {"trained": "Distiller", "student": mirrored,
                                "teacher": mirrored}}


@pytest.mark.skipif(keras.backend.backend() != "jax" or importlib.util.find_spec("jax") is None,
                    reason="a keras.distribution runs on the JAX backend (KERAS_BACKEND=jax, "
                           "make test-backends)")
@pytest.mark.backends
def test_data_parallel_over_two_host_devices_trains_the_pruned_model_and_its_teacher():
    report = _run(JAX, KERAS_BACKEND="jax",
                  XLA_FLAGS="--xla_force_host_platform_device_count=2")
    assert report["devices"] == 2
    # The pruned model and the teacher's copy are laid out on both devices; the original,
    # built before the distribution, is still evaluated (on its own device) for the report;
    # 301 validation samples in batches of 32 are cut so that both devices share each batch.
    assert report["seen"] == {"trained": "Distiller", "student": {"devices": 2},
                              "teacher": {"devices": 2}}
    assert report["pruned"] == {"devices": 2}
    assert report["loss"][-1] < report["loss"][0] and report["weights_changed"]
    assert report["validated"] == ["original", "pruned"]
    assert report["distribution_kept"]
