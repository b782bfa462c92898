"""save_keras, save_saved_model, save_plan and save_report round trips."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from export_models import images, pruned_chain

import keras_biprune as kb
from keras_biprune.export import (
    InvalidExportError,
    save_keras,
    save_plan,
    save_report,
    save_saved_model,
)


@pytest.fixture(scope="module")
def pruned():
    return pruned_chain()


def test_keras_archive_round_trip_keeps_outputs(pruned, tmp_path):
    slim = pruned[2]
    path = save_keras(slim, tmp_path / "slim.keras")
    assert path == str(tmp_path / "slim.keras")
    reloaded = keras.saving.load_model(path)
    x = images()
    np.testing.assert_allclose(reloaded.predict(x, verbose=0), slim.predict(x, verbose=0),
                               rtol=0, atol=1e-5)


def test_keras_archive_needs_the_keras_suffix(pruned, tmp_path):
    with pytest.raises(InvalidExportError, match=r"Received: path=.*slim\.h5"):
        save_keras(pruned[2], tmp_path / "slim.h5")


def test_saved_model_reloads_with_tf_and_as_tfsm_layer(pruned, tmp_path):
    slim = pruned[2]
    directory = save_saved_model(slim, tmp_path / "saved")
    x = images()
    expected = slim(x, training=False).numpy()
    loaded = tf.saved_model.load(directory)  # keep a reference: it owns the variables
    np.testing.assert_allclose(loaded.serve(tf.constant(x)).numpy(), expected, rtol=0, atol=1e-5)
    layer = keras.layers.TFSMLayer(directory, call_endpoint="serve")
    np.testing.assert_allclose(np.asarray(layer(x)), expected, rtol=0, atol=1e-5)


def test_plan_json_replays_to_the_same_slim_model(pruned, tmp_path):
    original, plan, slim = pruned
    path = save_plan(plan, tmp_path / "plan.json")
    with open(path, encoding="utf-8") as f:
        replayed = kb.apply_plan(original, kb.PruningPlan.from_json(f.read()))
    x = images()
    np.testing.assert_allclose(replayed(x).numpy(), slim(x).numpy(), rtol=0, atol=1e-6)


def test_save_plan_rejects_other_objects(tmp_path):
    with pytest.raises(InvalidExportError, match="Received: plan of type dict"):
        save_plan({"conv1": [0]}, tmp_path / "plan.json")


def test_report_converts_numpy_values(tmp_path):
    report = {
        "accuracy": np.float32(0.5),
        "kept": np.arange(3),
        "flops": np.int64(10),
        "ok": np.bool_(True),
        "shape": (2, 3),
        "names": {"b", "a"},
        "path": tmp_path,
        "per_group": {np.int64(1): [np.float64(0.25)]},
        "none": None,
    }
    with open(save_report(report, tmp_path / "report.json"), encoding="utf-8") as f:
        data = json.load(f)
    assert data == {
        "accuracy": 0.5, "kept": [0, 1, 2], "flops": 10, "ok": True, "shape": [2, 3],
        "names": ["a", "b"], "path": str(tmp_path), "per_group": {"1": [0.25]}, "none": None,
    }


def test_report_names_a_value_json_cannot_hold(tmp_path):
    with pytest.raises(InvalidExportError, match=r"report\['model'\] of type object"):
        save_report({"model": object()}, tmp_path / "report.json")
    with pytest.raises(InvalidExportError, match="Received: report of type list"):
        save_report([1, 2], tmp_path / "report.json")
