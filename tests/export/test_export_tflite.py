"""to_tflite (float and int8) and run_tflite."""

import numpy as np
import pytest
import tensorflow as tf
from export_models import accuracy, images, pruned_chain, trained_digits

from keras_biprune.datasets import as_dataset
from keras_biprune.errors import DataError
from keras_biprune.export import InvalidExportError, run_tflite, to_tflite

# The tests call tf.lite directly too; the library silences these two itself.
pytestmark = [
    pytest.mark.filterwarnings("ignore:.*tf.lite.Interpreter is deprecated:UserWarning"),
    pytest.mark.filterwarnings("ignore:Statistics for quantized inputs:UserWarning"),
]


def test_float_tflite_matches_the_keras_model(tmp_path):
    slim = pruned_chain()[2]
    path = tmp_path / "slim.tflite"
    flatbuffer = to_tflite(slim, path)
    assert path.read_bytes() == flatbuffer
    x = images(7)
    expected = slim.predict(x, verbose=0)
    # 7 samples in batches of 3: the interpreter is resized for the last, smaller batch.
    for model in (flatbuffer, path, str(path)):
        np.testing.assert_allclose(run_tflite(model, x, batch_size=3), expected, rtol=0, atol=1e-4)


@pytest.mark.parametrize("form", ["array", "tuple", "dataset"])
def test_int8_tflite_agrees_with_the_float_model(form):
    model, (x_train, y_train), (x_test, _) = trained_digits()
    data = {
        "array": x_train,
        "tuple": (x_train, y_train),
        "dataset": as_dataset(x_train, y_train, batch_size=16),
    }[form]
    flatbuffer = to_tflite(model, quantize="int8", representative_data=data, num_calibration=50)
    interpreter = tf.lite.Interpreter(model_content=flatbuffer)
    kernels = [d for d in interpreter.get_tensor_details() if d["dtype"] == np.int8]
    assert kernels, "the model holds no int8 tensor"
    assert interpreter.get_input_details()[0]["dtype"] == np.float32
    float_logits = model.predict(x_test, verbose=0)
    agreement = accuracy(run_tflite(flatbuffer, x_test), np.argmax(float_logits, -1))
    assert agreement >= 0.9


def test_run_tflite_handles_integer_input_and_output():
    model, (x_train, _), (x_test, _) = trained_digits()
    archive = tf.lite.TFLiteConverter.from_keras_model(model)
    archive.optimizations = [tf.lite.Optimize.DEFAULT]
    archive.representative_dataset = lambda: ([x_train[i : i + 1]] for i in range(50))
    archive.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    archive.inference_input_type = archive.inference_output_type = tf.int8
    flatbuffer = archive.convert()
    assert tf.lite.Interpreter(model_content=flatbuffer).get_input_details()[0]["dtype"] == np.int8
    logits = run_tflite(flatbuffer, x_test)
    assert logits.dtype == np.float32
    agreement = accuracy(logits, np.argmax(model.predict(x_test, verbose=0), -1))
    assert agreement >= 0.9


def test_int8_needs_representative_data():
    with pytest.raises(DataError, match="representative_data=None"):
        to_tflite(pruned_chain()[2], quantize="int8")


@pytest.mark.parametrize("kwargs, match", [
    ({"quantize": "int4"}, "Received: quantize='int4'"),
    ({"quantize": "int8", "representative_data": images(), "num_calibration": 0},
     "Received: num_calibration=0"),
])
def test_bad_options_are_refused(kwargs, match):
    with pytest.raises(InvalidExportError, match=match):
        to_tflite(pruned_chain()[2], **kwargs)


def test_representative_data_must_fit_the_model():
    with pytest.raises(DataError, match=r"samples of shape \(8, 8, 3\)"):
        to_tflite(pruned_chain()[2], quantize="int8", representative_data=np.zeros((4, 8, 8)))


def test_run_tflite_refuses_what_is_not_a_model(tmp_path):
    with pytest.raises(InvalidExportError, match="bytes or as the path"):
        run_tflite(tmp_path / "missing.tflite", images())
