"""Evaluating pruned models: the analytic cost model and the population evaluator."""

from keras_biprune.evaluate.cost import Cost, CostReport, cost, count_params
from keras_biprune.evaluate.evaluator import Evaluator

__all__ = ["Cost", "CostReport", "Evaluator", "cost", "count_params"]
