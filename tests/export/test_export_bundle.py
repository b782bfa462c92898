"""export_model: every artifact in one directory, and refusal to overwrite."""

import json

import keras
import numpy as np
import pytest
from equivalence import weights_snapshot
from export_models import images, pruned_chain
from matplotlib.figure import Figure

import keras_biprune as kb
from keras_biprune.export import ExportError, InvalidExportError, export_model, run_tflite


@pytest.fixture(scope="module")
def slim():
    return pruned_chain()[2]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    original, plan, slim = pruned_chain()
    config, weights = slim.get_config(), weights_snapshot(slim)
    figure = Figure(figsize=(2, 2))
    figure.add_subplot().plot([0, 1], [1, 0])
    directory = tmp_path_factory.mktemp("bundle") / "slim"
    paths = export_model(
        directory, slim, plan=plan, report={"accuracy": np.float32(0.75)},
        figures={"pareto_front": figure}, representative_data=images(16),
    )
    assert slim.get_config() == config, "export_model changed the model's config"
    for before, after in zip(weights, slim.get_weights()):
        np.testing.assert_array_equal(before, after)
    return original, plan, slim, directory, paths


def test_every_artifact_is_written(exported):
    directory, paths = exported[3], exported[4]
    assert sorted(p.name for p in directory.iterdir()) == [
        "model.keras", "model.tflite", "model_int8.tflite", "pareto_front.png", "plan.json",
        "report.json", "saved_model",
    ]
    assert paths["figures"] == {"pareto_front": str(directory / "pareto_front.png")}
    assert {k: v for k, v in paths.items() if k != "figures"} == {
        "keras": str(directory / "model.keras"),
        "saved_model": str(directory / "saved_model"),
        "tflite": str(directory / "model.tflite"),
        "tflite_int8": str(directory / "model_int8.tflite"),
        "plan": str(directory / "plan.json"),
        "report": str(directory / "report.json"),
    }
    assert json.loads((directory / "report.json").read_text()) == {"accuracy": 0.75}
    assert (directory / "pareto_front.png").read_bytes().startswith(b"\x89PNG")


def test_artifacts_reload_to_the_same_model(exported):
    original, _, slim, _, paths = exported
    x = images()
    expected = slim.predict(x, verbose=0)
    reloaded = keras.saving.load_model(paths["keras"])
    np.testing.assert_allclose(reloaded.predict(x, verbose=0), expected, rtol=0, atol=1e-5)
    served = keras.layers.TFSMLayer(paths["saved_model"], call_endpoint="serve")
    np.testing.assert_allclose(np.asarray(served(x)), expected, rtol=0, atol=1e-5)
    np.testing.assert_allclose(run_tflite(paths["tflite"], x), expected, rtol=0, atol=1e-4)
    assert run_tflite(paths["tflite_int8"], x).shape == expected.shape
    with open(paths["plan"], encoding="utf-8") as f:
        replayed = kb.apply_plan(original, kb.PruningPlan.from_json(f.read()))
    np.testing.assert_allclose(replayed.predict(x, verbose=0), expected, rtol=0, atol=1e-6)


def test_a_directory_with_files_is_refused_unless_overwrite(slim, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "plan.json").write_text("stale")
    with pytest.raises(ExportError, match="Pass overwrite=True") as error:
        export_model(tmp_path, slim)
    assert isinstance(error.value, FileExistsError)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", "plan.json"]

    paths = export_model(tmp_path, slim, overwrite=True)
    assert sorted(paths) == ["keras", "saved_model", "tflite"]
    # Files of the earlier export go; the user's own files stay.
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "model.keras", "model.tflite", "notes.txt", "saved_model",
    ]


def test_an_empty_directory_is_used(slim, tmp_path):
    assert sorted(export_model(tmp_path, slim)) == ["keras", "saved_model", "tflite"]


@pytest.mark.parametrize("kwargs, match", [
    ({"figures": {"../up": None}}, "Received: name '../up'"),
    ({"figures": {"front": "not a figure"}}, "Received: an object of type str"),
    ({"plan": {"conv1": [0]}}, "Received: plan of type dict"),
    ({"report": {"model": object()}}, r"report\['model'\]"),
])
def test_bad_arguments_are_refused_before_writing(slim, tmp_path, kwargs, match):
    directory = tmp_path / "out"
    with pytest.raises(InvalidExportError, match=match):
        export_model(directory, slim, **kwargs)
    assert not directory.exists()


def test_another_backend_is_refused_before_writing(slim, tmp_path, monkeypatch):
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    for export in (lambda: export_model(tmp_path / "slim", slim),
                   lambda: kb.export.to_tflite(slim),
                   lambda: kb.export.save_saved_model(slim, tmp_path / "saved")):
        with pytest.raises(kb.errors.BackendError,
                           match=r"TensorFlow backend. Received: KERAS_BACKEND='jax'"):
            export()
    assert not list(tmp_path.iterdir())
    kb.export.save_keras(slim, tmp_path / "slim.keras")     # .keras is every backend's
    assert (tmp_path / "slim.keras").is_file()
