"""Checks of arguments, with one policy for the whole library.

- An int is a `numbers.Integral` that is not a bool: ``np.int64(3)`` passes,
  ``True`` and ``3.0`` do not. A number is a `numbers.Real` that is not a bool.
- A wrong value raises the error class of the component that received it
  (``error``: `SearchError`, `TrainingError`, …; every one a `BiPruneError`
  and a ``ValueError``). Something that is not a Keras model where one is
  expected raises `UnsupportedModelError` (a ``TypeError``), whoever
  received it.
- Messages say what was expected, ``Received: name=value``, and the fix.

(`keras_biprune._checks` checks *data* against a model and its loss; this
module checks arguments.)
"""

import math
import numbers

import keras

from keras_biprune.errors import UnsupportedModelError


def is_int(value):
    """True for an int (`numbers.Integral`, NumPy's included), not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_number(value):
    """True for a real number (`numbers.Real`, NumPy's included), not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_int(name, value, low, error, fix="", expected=None):
    """Raises ``error`` unless ``value`` is an int ``>= low``.

    ``expected`` words what the value must be in the caller's terms (``"a
    positive int of images"``) instead of ``"an int >= low"``; ``fix`` ends
    the message.
    """
    if not is_int(value) or value < low:
        raise error(f"{name} must be {expected or f'an int >= {low}'}. Received: "
                    f"{name}={value!r}.{_fix(fix)}")


def check_number(name, value, error, low=-math.inf, high=math.inf, *, open_low=False,
                 open_high=False, fix="", expected=None):
    """Raises ``error`` unless ``value`` is a number between ``low`` and ``high``.

    The bounds are included unless ``open_low`` or ``open_high``; the message
    writes the range as an interval (``(0, 1]``) or a bound (``> 1``), or
    ``expected`` as in `check_int`.
    """
    inside = is_number(value) and (value > low if open_low else value >= low) and (
        value < high if open_high else value <= high)
    if not inside:
        expected = expected or f"a number {_range(low, high, open_low, open_high)}"
        raise error(f"{name} must be {expected}. Received: {name}={value!r}.{_fix(fix)}")


def check_bool(name, value, error, fix=""):
    """Raises ``error`` unless ``value`` is True or False (a bool, not 0 or 1)."""
    if not isinstance(value, bool):
        raise error(f"{name} must be True or False. Received: {name}={value!r}.{_fix(fix)}")


def check_choice(name, value, choices, error, fix=""):
    """Raises ``error`` unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise error(f"{name} must be one of {choices}. Received: {name}={value!r}.{_fix(fix)}")


def check_executor(executor, error):
    """Returns ``executor`` unless it is neither None nor an executor; then raises ``error``.

    An executor scores an evaluator's plans elsewhere: ``start(evaluator)``
    (ships what its workers need) and ``score(evaluator, plans)`` (one score
    per plan, in order), as `keras_biprune.distributed.RayExecutor`.
    """
    if executor is not None and not all(callable(getattr(executor, method, None))
                                        for method in ("start", "score")):
        raise error(
            "executor must be None (score in this process) or an executor with start and "
            f"score methods. Received: executor={executor!r}. Use e.g. "
            "kb.distributed.RayExecutor(num_actors=2).")
    return executor


def check_model(model, who):
    """Raises `UnsupportedModelError` unless ``model`` is a ``keras.Model``.

    Args:
        model: what was passed as the model.
        who: what needs it, for the message (``"BiLevelPruner"``, ``"trace"``).
    """
    if not isinstance(model, keras.Model):
        raise UnsupportedModelError(
            f"{who} expects a keras.Model (functional or Sequential). Received: model of type "
            f"{type(model).__name__}. Build a Keras 3 model first, e.g. "
            "keras.Model(inputs, outputs).")


def _range(low, high, open_low, open_high):
    if high == math.inf:
        return f"{'>' if open_low else '>='} {low:g}"
    if low == -math.inf:
        return f"{'<' if open_high else '<='} {high:g}"
    return f"in {'(' if open_low else '['}{low:g}, {high:g}{')' if open_high else ']'}"


def _fix(fix):
    return f" {fix}" if fix else ""
