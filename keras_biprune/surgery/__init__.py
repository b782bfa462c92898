"""Surgery: pruning plans and the rebuild of a smaller model."""

from keras_biprune.surgery.apply import apply_plan, masked_model
from keras_biprune.surgery.plan import PruningPlan

__all__ = ["PruningPlan", "apply_plan", "masked_model"]
