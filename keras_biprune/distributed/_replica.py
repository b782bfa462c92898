"""The worker's side of an executor: one replica of the model and its evaluator.

The model travels as the bytes of a ``.keras`` file, the evaluator as
`Evaluator.executor_state` (its settings and drawn subsets) and plans as
their ``get_config``: plain data any worker rebuilds the same.
"""

import os
import re
import tempfile

import keras

from keras_biprune import layers  # noqa: F401  (registers ChannelSelect for load_model)
from keras_biprune.evaluate import Evaluator
from keras_biprune.plan import PruningPlan

_OUT_OF_MEMORY = re.compile(r"out of memory|low on memory|\bOOM\b|ResourceExhausted",
                            re.IGNORECASE)


def model_bytes(model):
    """The ``.keras`` file of ``model``, as bytes."""
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "model.keras")
        model.save(path)
        with open(path, "rb") as f:
            return f.read()


def load_model(data):
    """The model saved in ``data`` (from `model_bytes`)."""
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "model.keras")
        with open(path, "wb") as f:
            f.write(data)
        return keras.saving.load_model(path, compile=False)


def probe(model, x):
    """The model's outputs on the first samples of ``x`` (a list of input arrays)."""
    inputs = [a[:8] for a in x]
    return keras.ops.convert_to_numpy(model(inputs[0] if len(inputs) == 1 else inputs,
                                            training=False))


def out_of_memory(error):
    """True when ``error`` says a process ran out of (host or device) memory."""
    return isinstance(error, MemoryError) or bool(
        _OUT_OF_MEMORY.search(f"{type(error).__name__}: {error}"))


class Replica:
    """Holds one evaluator rebuilt from what the driver sent; scores plan configs."""

    def __init__(self):
        self.evaluator = None

    def load(self, state):
        """Rebuilds the model and evaluator; returns its engine, group size and probe."""
        model = load_model(state["model"])
        self.evaluator = Evaluator.from_executor_state(model, state["evaluator"])
        return {"engine": self.evaluator.engine, "group_size": self.evaluator.group_size,
                "probe": probe(model, self.evaluator.x_eval)}

    def score(self, configs):
        """``{"scores": [...]}`` of the plans, or ``{"out_of_memory": message}``."""
        plans = [PruningPlan.from_config(c) for c in configs]
        try:
            return {"scores": self.evaluator.evaluate(plans)}
        except Exception as error:
            if out_of_memory(error):
                return {"out_of_memory": f"{type(error).__name__}: {error}"}
            raise
