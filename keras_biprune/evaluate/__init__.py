"""Evaluating pruned models: the analytic cost model, the population evaluator, racing, latency
(measured, and predicted by a latency model of a runtime)."""

from keras_biprune.evaluate.cost_model import Cost, CostReport, cost, count_params
from keras_biprune.evaluate.evaluator import Evaluator
from keras_biprune.evaluate.latency_model import LatencyModel
from keras_biprune.evaluate.racing import Racing
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
