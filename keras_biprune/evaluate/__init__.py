"""Evaluating pruned models: the analytic cost model, the population evaluator, racing, latency
(measured, and predicted by a latency model of a runtime)."""

from keras_biprune.evaluate.cost_model import Cost, CostReport, cost, count_params
from keras_biprune.evaluate.evaluator import Evaluator
from keras_biprune.evaluate.latency_model import LatencyModel
from keras_biprune.evaluate.racing import Racing
from keras_biprune.evaluate.runtimes import check_runtime as check_runtime
from keras_biprune.evaluate.runtimes import forward_call as forward_call
from keras_biprune.evaluate.runtimes import paired as paired
from keras_biprune.evaluate.timing import latency

__all__ = [
    "Cost",
    "CostReport",
    "Evaluator",
    "LatencyModel",
    "Racing",
    "cost",
    "count_params",
    "latency",
]
# Also exported, for the pruner and not public API (the `x as x` imports): `check_runtime`,
# `forward_call` and `paired`, the calls on a runtime its latency check times in turn.
