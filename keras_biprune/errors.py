"""Error classes of keras_biprune.

Every error the library raises on bad input is one of these. Each also
subclasses the matching built-in (``ValueError`` or ``TypeError``), so code that
catches the built-in keeps working.
"""


class BiPruneError(Exception):
    """Base class of every keras_biprune error."""


class UnsupportedModelError(BiPruneError, TypeError):
    """The object is not a Keras 3 functional or Sequential model we can trace."""


class InvalidPlanError(BiPruneError, ValueError):
    """A pruning plan is malformed: unknown group, bad or duplicate indices, empty group."""


class PlanMismatchError(InvalidPlanError):
    """A pruning plan was made for a different model (a different channel graph)."""


class HandlerError(BiPruneError, TypeError):
    """A layer handler is missing or does not implement the handler interface."""


class CriterionError(BiPruneError, ValueError):
    """A criterion cannot score: unknown name, bad settings, nothing to score."""


class DataError(BiPruneError, ValueError):
    """Data cannot be read for the model: empty, wrongly shaped, or of an unknown kind."""


class EvaluationError(BiPruneError, ValueError):
    """Candidates cannot be scored: a bad metric, no plans, an unsupported model output."""


class SearchError(BiPruneError, ValueError):
    """A search was configured with bad settings, or cannot resume from a checkpoint."""


class TrainingError(BiPruneError, ValueError):
    """Fine-tuning cannot start: no loss to train with, or bad training settings."""


class ExportError(BiPruneError, FileExistsError):
    """An export would overwrite files: the target directory exists and is not empty."""


class InvalidExportError(BiPruneError, ValueError):
    """An export argument is invalid: an unknown option, a figure name or a value JSON lacks."""


class QuantizationError(BiPruneError, ValueError):
    """A model cannot be quantized as asked: its Keras 2 rebuild computes otherwise."""


class BackendError(BiPruneError, RuntimeError):
    """A TensorFlow-only feature (SavedModel and TFLite export) was asked of another backend."""


class MissingDependencyError(BiPruneError, ImportError):
    """An optional dependency is not installed; the message names the extra to install."""
