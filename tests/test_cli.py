"""The keras-biprune command, run as a user runs it: in a subprocess."""

import inspect
import json
import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_biprune import _defaults

COMMAND = str(pathlib.Path(sys.executable).parent / "keras-biprune")

# Runs the command in-process and reports its exit status and what it imported.
_WRAPPER = """
import json, sys
from keras_biprune import cli
try:
    status = cli.main(sys.argv[1:])
except SystemExit as stop:
    status = stop.code
print(json.dumps({"status": status, "tensorflow": "tensorflow" in sys.modules,
                  "keras": "keras" in sys.modules}))
"""


def _run(*args, cwd, env=None):
    env = os.environ | {"TF_CPP_MIN_LOG_LEVEL": "3"} | (env or {})
    return subprocess.run([COMMAND, *args], check=False, cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


def _wrapped(*args, cwd):
    result = subprocess.run([sys.executable, "-c", _WRAPPER, *args], check=False, cwd=cwd,
                            capture_output=True, text=True, timeout=300)
    return json.loads(result.stdout.splitlines()[-1]), result


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A compiled tiny model saved as .keras and an npz archive of data for it."""
    root = tmp_path_factory.mktemp("cli")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 8, 8, 1)).astype("float32")
    y = (x[:, :4].mean(axis=(1, 2, 3)) > 0).astype("int64")
    np.savez(root / "data.npz", x_train=x[:240], y_train=y[:240], x_test=x[240:], y_test=y[240:])
    np.savez(root / "bad_labels.npz", x_train=x[:240], y_train=y[:240] + 10, x_test=x[240:],
             y_test=y[240:])
    np.savez(root / "partial.npz", x_train=x[:240], y_train=y[:240])
    inputs = keras.Input((8, 8, 1))
    h = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="c1")(inputs)
    h = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="c2")(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    model = keras.Model(inputs, keras.layers.Dense(2, name="fc")(h))
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.fit(x, y, epochs=2, verbose=0)
    model.save(root / "model.keras")
    (root / "text.keras").write_text("not a model")
    (root / "a_file").write_text("")
    (root / "full").mkdir()
    (root / "full" / "something").write_text("")
    return root


def test_prune_then_report(saved):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run(
        [COMMAND, "prune", "model.keras", "--data", "npz:data.npz", "--target-flops", "0.5",
         "--generations", "1", "--population", "4", "--epochs", "1", "--out", "out"],
        check=False, cwd=saved, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Exported to out" in result.stdout
    for name in ("model.keras", "model.tflite", "plan.json", "report.json", "pareto.png"):
        assert (saved / "out" / name).exists()
    logs = result.stdout + result.stderr
    assert "\x1b" not in logs                                  # no ANSI codes in a log file
    for noise in ("cudart_stub", "cuInit", "absl::InitializeLog", "fully_quantize"):
        assert noise not in logs, logs[-3000:]
    for phase in ("] loading data", "] search: bilevel, at most 50% of the FLOPs",
                  "] race: 4 finalists, 100 optimizer steps a round (search took",
                  "] fine-tuning: up to 1 epoch(s), distilled from the original (race took",
                  "] export:", "] done:"):
        assert phase in result.stdout, result.stdout[-3000:]
    assert "evaluations: " in result.stdout and ".0000 " not in result.stdout.split(
        "evaluations: ")[1][:8]
    shown = _run("report", "out", cwd=saved)
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert "parameters" in shown.stdout and "MACs" in shown.stdout
    assert "target: at most 50.0%" in shown.stdout and "val accuracy" in shown.stdout
    assert " pt" in shown.stdout                               # the accuracy change
    again = _run("prune", "model.keras", "--data", "npz:data.npz", "--out", "out", cwd=saved)
    assert again.returncode == 2 and "--overwrite" in again.stderr


def test_help_answers_without_importing_tensorflow(saved):
    for args in (["--help"], ["prune", "--help"], ["report", "--help"], ["demo", "--help"]):
        state, _ = _wrapped(*args, cwd=saved)
        assert state == {"status": 0, "tensorflow": False, "keras": False}, args


def test_every_prune_flag_shows_its_default(saved):
    _, result = _wrapped("prune", "--help", cwd=saved)
    text = " ".join(result.stdout.split())
    for flag in ("--target-flops R", "--method", "--max-accuracy-drop D", "--granularity",
                 "--round-to N", "--criteria NAME", "--generations N", "--population N",
                 "--max-evaluations N", "--epochs N", "--batch-size N", "--distill",
                 "--steps K", "--seed N", "--verbose", "--target-latency R", "--runtime",
                 "--latency-batch-size N"):
        assert flag in text
    assert "share of the FLOPs to keep, in (0, 1], or none" in text and "(default: 0.5)" in text
    assert "(default: None)" in text and "(default: tflite)" in text
    assert "(default: 0.01)" in text and "(default: bilevel)" in text and "(default: l1)" in text


BAD = [
    (["--target-flops", "1.5"], "--target-flops: expected a value (0, 1]"),
    (["--target-flops", "0"], "--target-flops: expected a value (0, 1]"),
    (["--target-flops", "half"], "--target-flops: expected a number"),
    (["--target-latency", "1.5"], "--target-latency: expected a value (0, 1]"),
    (["--runtime", "onnx"], "invalid choice"),
    (["--latency-batch-size", "0"], "--latency-batch-size: expected a value >= 1"),
    (["--max-accuracy-drop", "-0.1"], "--max-accuracy-drop: expected a value >= 0"),
    (["--method", "random"], "invalid choice"),
    (["--granularity", "pixel"], "invalid choice"),
    (["--criteria", "l3"], "invalid choice"),
    (["--round-to", "0"], "--round-to: expected a value >= 1"),
    (["--generations", "0"], "--generations: expected a value >= 1"),
    (["--population", "1"], "--population: expected a value >= 2"),
    (["--max-evaluations", "0"], "--max-evaluations"),
    (["--epochs", "-1"], "--epochs"),
    (["--batch-size", "0"], "--batch-size"),
    (["--verbose", "3"], "--verbose"),
    (["--seed", "-2"], "--seed"),
    (["--bogus"], "unrecognized arguments: --bogus"),
    (["--data", "mnist"], "--data must be one of"),
    (["--data", "npz:missing.npz"], "no such file: missing.npz"),
    (["--data", "npz:partial.npz"], "lacks arrays ['x_test', 'y_test']"),
    (["--out", "a_file"], "--out a_file is a file"),
    (["--out", "a_file/sub"], "is a file, so the directory cannot be made"),
    (["--out", "full"], "--out full is not empty; pass --overwrite"),
    (["--model", "missing.keras"], "no such file: missing.keras"),
    (["--model", "text.keras"], "text.keras is not a Keras model"),
    (["--model", "full"], "is a directory, not a Keras model file"),
    (["--model", "data.npz"], "is not a Keras model file"),
]


@pytest.mark.parametrize("change, message", BAD, ids=[" ".join(c) for c, _ in BAD])
def test_a_bad_argument_is_one_line_before_any_work(saved, change, message):
    args = {"--model": "model.keras", "--data": "npz:data.npz", "--out": "new_out"}
    extra = []
    for i, item in enumerate(change):
        if item in args and i + 1 < len(change):
            args[item] = change[i + 1]
        elif i == 0 or change[i - 1] not in args:
            extra.append(item)
    argv = ["prune", args.pop("--model"), *[a for kv in args.items() for a in kv], *extra]
    state, result = _wrapped(*argv, cwd=saved)
    assert state["status"] == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "error: " in lines[0] and message in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    assert not state["tensorflow"] and not state["keras"]             # no work started
    assert not (saved / "new_out").exists()


@pytest.mark.parametrize("args, message", [
    (["--out", "a_file"], "--out a_file is a file"),
    (["--target-flops", "2"], "--target-flops: expected a value (0, 1]"),
    (["--preset", "huge"], "invalid choice"),
    (["--data", "mnist"], "invalid choice"),
])
def test_a_bad_demo_argument_is_one_line_before_any_work(saved, args, message):
    state, result = _wrapped("demo", *args, cwd=saved)
    assert state["status"] == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert not state["tensorflow"] and not state["keras"]             # no work started


def test_a_text_file_named_model_keras_is_not_reported_missing(saved, tmp_path):
    (tmp_path / "model.keras").write_text("hello")
    (tmp_path / "data.npz").write_bytes((saved / "data.npz").read_bytes())
    state, result = _wrapped("prune", "model.keras", "--data", "npz:data.npz", "--out", "o",
                             cwd=tmp_path)
    assert state["status"] == 2
    assert "model.keras is not a Keras model" in result.stderr
    assert "no such file" not in result.stderr.lower() and "not found" not in result.stderr


def test_report_arguments(saved):
    for args, message in ((["report", "nowhere"], "no such directory: nowhere"),
                          (["report", "a_file"], "a_file is a file"),
                          (["report", "full"], "no report.json in full")):
        state, result = _wrapped(*args, cwd=saved)
        assert state["status"] == 2 and message in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    result = _run("frobnicate", cwd=saved)
    assert result.returncode == 2 and "invalid choice" in result.stderr


def test_a_library_error_is_one_line_and_debug_keeps_the_traceback(saved):
    # Labels 10..11 for a 2-class model: the library's DataError, before the search.
    args = ["prune", "model.keras", "--data", "npz:bad_labels.npz", "--out", "bad_out",
            "--verbose", "0"]
    result = _run(*args, cwd=saved)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("keras-biprune prune: error: "), lines
    assert "labels 0 to 1" in lines[0] and "from 10 to 11" in lines[0]
    debug = _run(*args, "--debug", cwd=saved)
    assert debug.returncode != 0 and "Traceback" in debug.stderr and "DataError" in debug.stderr
    assert not (saved / "bad_out").exists()


def test_defaults_table_matches_the_python_signatures():
    import keras_biprune as kb
    from keras_biprune.criteria import registry
    from keras_biprune.search.base import Search

    pruner = {name: p.default for name, p in
              inspect.signature(kb.BiLevelPruner.__init__).parameters.items()
              if name not in ("self", "model")}
    assert pruner == _defaults.PRUNER
    bilevel = inspect.signature(kb.search.BiLevelSearch.__init__).parameters
    base = inspect.signature(Search.__init__).parameters
    nsga2 = inspect.signature(kb.search.NSGA2Search.__init__).parameters
    for method, params in (("bilevel", bilevel), ("nsga2", nsga2)):
        for key, value in _defaults.SEARCH[method].items():
            default = (params[key] if key in params else base[key]).default
            assert default == value, (method, key)
    assert set(_defaults.CRITERIA) == set(registry.TABLE)
    assert set(_defaults.METHODS) == set(kb.pruner.METHODS)
    assert _defaults.RUNTIMES == kb.evaluate.runtimes.RUNTIMES
