"""Evaluating pruned models: the analytic cost model."""

from keras_biprune.evaluate.cost import Cost, CostReport, cost, count_params

__all__ = ["Cost", "CostReport", "cost", "count_params"]
