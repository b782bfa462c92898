"""`export_model`: every artifact of a pruned model in one directory."""

import logging
import os
import pathlib
import shutil

from keras_biprune import _backend
from keras_biprune.errors import ExportError, InvalidExportError
from keras_biprune.export.formats import (
    jsonable,
    save_keras,
    save_plan,
    save_report,
    save_saved_model,
)
from keras_biprune.export.tflite import to_tflite
from keras_biprune.plan import PruningPlan

logger = logging.getLogger(__name__)

ARTIFACTS = {
    "keras": "model.keras",
    "saved_model": "saved_model",
    "tflite": "model.tflite",
    "tflite_int8": "model_int8.tflite",
    "plan": "plan.json",
    "report": "report.json",
}
"""File names `export_model` writes, by the keys of the dict it returns."""

FIGURE_DPI = 120


def export_model(
    directory,
    model,
    *,
    plan=None,
    report=None,
    figures=None,
    representative_data=None,
    overwrite=False,
):
    """Writes a model in every deployable format, with its plan, report and figures.

    The directory receives ``model.keras``, ``saved_model/`` (TensorFlow
    SavedModel, endpoint ``serve``), ``model.tflite`` (float32),
    ``model_int8.tflite`` (full-integer post-training quantization, float
    input and output; only with ``representative_data``), ``plan.json``
    (replay with ``PruningPlan.from_json``), ``report.json`` and one
    ``<name>.png`` per figure. Everything is checked and converted before the
    first file is written; ``model`` is not changed.

    Args:
        directory: where to write; created if missing.
        model: the (pruned) Keras 3 model.
        plan: the `PruningPlan` that made ``model`` from the original, or None.
        report: a dict of results (NumPy values allowed), or None.
        figures: ``{name: matplotlib Figure}`` saved as ``name.png`` (120 dpi).
        representative_data: sample inputs that calibrate the int8 model
            (see `to_tflite`); without it no int8 model is written.
        overwrite: replace the files this function writes when ``directory``
            already holds files (other files stay); otherwise refuse.

    Returns:
        ``{"keras": path, "saved_model": path, "tflite": path, ...}`` for the
        artifacts written (keys as in `ARTIFACTS`), plus ``"figures":
        {name: path}`` when figures were given.

    Raises:
        ExportError: ``directory`` exists and is not empty, and ``overwrite``
            is False.
        BackendError: Keras does not run on TensorFlow; export from a process
            with ``KERAS_BACKEND=tensorflow`` (``save_keras`` works on any backend).

    Example:

    ```python
    from keras_biprune.export import export_model
    paths = export_model("slim_export", pruner.pruned_model_, plan=pruner.plan_,
                         report=pruner.report_, figures={"pareto": fig},
                         representative_data=x_train[:200])
    paths["tflite_int8"]   # 'slim_export/model_int8.tflite'
    ```
    """
    _backend.require_tensorflow("export_model (SavedModel and TFLite)")
    directory = pathlib.Path(directory)
    figures = _checked_figures(figures)
    if plan is not None and not isinstance(plan, PruningPlan):
        raise InvalidExportError(
            f"plan must be the keras_biprune.PruningPlan of the model. Received: plan of "
            f"type {type(plan).__name__}. Pass e.g. plan=pruner.plan_, or plan=None."
        )
    if report is not None:
        jsonable(report)
    _check_target(directory, overwrite)
    flatbuffers = {"tflite": to_tflite(model)}
    if representative_data is not None:
        flatbuffers["tflite_int8"] = to_tflite(
            model, quantize="int8", representative_data=representative_data
        )

    _clear(directory)
    paths = {
        "keras": save_keras(model, directory / ARTIFACTS["keras"]),
        "saved_model": save_saved_model(model, directory / ARTIFACTS["saved_model"]),
    }
    for key, flatbuffer in flatbuffers.items():
        path = directory / ARTIFACTS[key]
        path.write_bytes(flatbuffer)
        paths[key] = os.fspath(path)
    if plan is not None:
        paths["plan"] = save_plan(plan, directory / ARTIFACTS["plan"])
    if report is not None:
        paths["report"] = save_report(report, directory / ARTIFACTS["report"])
    if figures:
        paths["figures"] = {}
        for name, figure in figures.items():
            path = directory / f"{name}.png"
            figure.savefig(path, dpi=FIGURE_DPI)
            paths["figures"][name] = os.fspath(path)
    logger.info("Exported %s to %s", ", ".join(paths), directory)
    return paths


def _checked_figures(figures):
    if figures is None:
        return {}
    if not isinstance(figures, dict):
        raise InvalidExportError(
            f"figures maps file names to matplotlib figures. Received: figures of type "
            f"{type(figures).__name__}. Pass e.g. figures={{'pareto': fig}}."
        )
    for name, figure in figures.items():
        if (
            not isinstance(name, str)
            or name in ("", ".", "..")
            or pathlib.PurePath(name).name != name
            or "/" in name
            or "\\" in name
        ):
            raise InvalidExportError(
                f"Figure names become file names (name.png) in the export directory. "
                f"Received: name {name!r}. Use a plain name such as 'pareto_front'."
            )
        if not callable(getattr(figure, "savefig", None)):
            raise InvalidExportError(
                f"figures[{name!r}] must be a matplotlib Figure. Received: an object of "
                f"type {type(figure).__name__}. Pass e.g. the figure plt.subplots() returned."
            )
    return figures


def _check_target(directory, overwrite):
    if directory.exists() and not directory.is_dir():
        raise ExportError(
            f"export_model writes into a directory. Received: directory={str(directory)!r}, "
            "which is a file. Choose another path."
        )
    if directory.is_dir() and any(directory.iterdir()) and not overwrite:
        raise ExportError(
            f"The export directory must be new or empty. Received: "
            f"directory={str(directory)!r}, which holds files. Pass overwrite=True to "
            "replace the exported files, or choose another directory."
        )


def _clear(directory):
    """Creates ``directory``, removing what an earlier export wrote there."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in ARTIFACTS.values():
        path = directory / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
