"""Exports a (pruned) model: ``.keras``, SavedModel, TFLite float and int8, plan and report.

The only package of keras_biprune that imports TensorFlow, inside the functions
that need it: SavedModel and TFLite export need Keras on the TensorFlow backend
(elsewhere they raise `BackendError`); ``.keras``, plan and report files are
written on any backend. The quantization-aware path (`quantization_aware_tflite`)
also needs the ``tfmot`` extra.

Example:

```python
from keras_biprune.export import export_model, quantization_aware_tflite, run_tflite
paths = export_model("slim_export", slim_model, plan=plan, representative_data=x_train[:200])
int8_bytes = quantization_aware_tflite(slim_model, x_train, y_train, epochs=1)
accuracy = (run_tflite(int8_bytes, x_test).argmax(-1) == y_test).mean()
```
"""

from keras_biprune.errors import (
    BackendError,
    ExportError,
    InvalidExportError,
    MissingDependencyError,
    QuantizationError,
)
from keras_biprune.export.bundle import ARTIFACTS, export_model
from keras_biprune.export.formats import save_keras, save_plan, save_report, save_saved_model
from keras_biprune.export.qat import quantization_aware_tflite
from keras_biprune.export.tflite import run_tflite, to_tflite

__all__ = [
    "ARTIFACTS",
    "BackendError",
    "ExportError",
    "InvalidExportError",
    "MissingDependencyError",
    "QuantizationError",
    "export_model",
    "quantization_aware_tflite",
    "run_tflite",
    "save_keras",
    "save_plan",
    "save_report",
    "save_saved_model",
    "to_tflite",
]
