"""Quiet, plain logs: progress without ANSI codes, integer counts, a silent TFLite converter."""

import io
import subprocess
import sys

import keras
import numpy as np

from keras_biprune._progress import Progress, format_value
from keras_biprune.report import format_report

RECORD = {"best": 0.8125, "mean": 0.70312, "evaluations": 28, "elapsed": 3.0}


def test_progress_in_a_log_file_is_plain_lines_with_integer_counts(capsys):
    progress = Progress(3, 1, ("best", "mean", "evaluations"))
    for generation in (1, 2, 3):
        progress.update(generation, RECORD | {"evaluations": 10 * generation})
    progress.close(3)
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\r" not in out and "\b" not in out
    lines = out.splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("generation 1/3 - ") and "best: 0.8125" in lines[0]
    assert lines[2].endswith("evaluations: 30")


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_on_a_terminal_redraws_one_line_without_ansi(monkeypatch):
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    progress = Progress(4, 1, ("best", "evaluations"))
    progress.update(1, RECORD)
    progress.update(2, RECORD)
    progress.close(2)                           # stopped early: the line is ended
    text = terminal.getvalue()
    assert "\x1b" not in text and text.count("\r") == 2 and text.endswith("\n")
    assert "evaluations: 28" in text and "28.0000" not in text


def test_progress_is_silent_at_verbose_0(capsys):
    Progress(2, 0, ("best",)).update(1, RECORD)
    assert capsys.readouterr().out == ""


def test_values_format():
    assert format_value(28) == "28" and format_value(np.int64(7)) == "7"
    assert format_value(0.5) == "0.5000" and format_value(1e-5) == "1.0000e-05"


def test_tflite_converter_is_silent(capfd):
    from keras_biprune.export import to_tflite

    model = keras.Sequential([keras.Input((6, 6, 1)), keras.layers.Conv2D(4, 3),
                              keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2)])
    capfd.readouterr()
    to_tflite(model)
    to_tflite(model, quantize="int8",
              representative_data=np.random.default_rng(0).random((8, 6, 6, 1), "float32"))
    err = capfd.readouterr().err
    assert "fully_quantize" not in err and "Ignored output_format" not in err, err


def test_import_does_not_load_tensorflow_but_registers_layers_when_keras_is_loaded():
    code = ("import sys, keras_biprune as kb; assert 'tensorflow' not in sys.modules, 'tf'; "
            "assert 'keras' not in sys.modules, 'keras'; assert kb.BiLevelPruner; "
            "assert kb.errors.DataError and kb.search.BiLevelSearch; "
            "import keras; "
            "assert keras.saving.get_registered_object('keras_biprune>ChannelSelect')")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)
    code = ("import keras, keras_biprune; "
            "assert keras.saving.get_registered_object('keras_biprune>ChannelSelect')")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)


REPORT = {
    "params": {"original": 2514, "pruned": 682, "pruned_nonzero": 682},
    "macs": {"original": 156704, "pruned": 41488, "pruned_sparse": 41488},
    "flops_kept": 0.2648, "sparse_flops_kept": 0.2648, "target_flops": 0.5,
    "widths": {"c1": [16, 8], "c2": [16, 8]},
    "validation": {"original": {"accuracy": 0.6333, "loss": 0.6608},
                   "pruned": {"accuracy": 0.7, "loss": 0.6712}},
    "search": {"method": "bilevel", "evaluations": 27, "seconds": 4.2},
    "finetune_seconds": 1.3,
}


def test_report_shows_the_target_the_achieved_ratio_and_the_accuracy_change():
    text = format_report(REPORT, title="T")
    assert text.splitlines()[0] == "T"
    assert "FLOPs kept: 26.5% of the original; target: at most 50.0% (met)" in text
    assert "val accuracy" in text and "+6.67 pt" in text and "+0.0104" in text
    assert "27 plans" in text and "  c1: 16 -> 8" in text
    missed = format_report(REPORT | {"flops_kept": 0.6, "sparse_flops_kept": 0.6})
    assert "(missed)" in missed
    assert "parameters" in format_report({"params": REPORT["params"]})     # partial reports


def test_report_shows_the_predicted_and_measured_latency_ratios():
    latency = {"runtime": "tflite", "batch_size": 64, "target": 0.5, "predicted": 0.48,
               "measured": 0.52, "original_ms": 10.0, "pruned_ms": 5.2}
    text = format_report(REPORT | {"latency": latency})
    assert ("latency (tflite, batch 64): predicted 48.0%, measured 52.0% of the original's "
            "(10.000 -> 5.200 ms); target: at most 50.0% (missed as measured)") in text
    assert "latency" not in format_report(REPORT)
