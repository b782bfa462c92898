"""Surgery: pruning plans, the rebuild of a smaller model, and growth of a wider one."""

from keras_biprune.surgery.apply import apply_plan, masked_model
from keras_biprune.surgery.grow import grow_model, growable_groups
from keras_biprune.surgery.plan import PruningPlan

__all__ = ["PruningPlan", "apply_plan", "grow_model", "growable_groups", "masked_model"]
