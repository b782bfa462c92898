"""Surgery: the rebuild of a smaller model from a plan, and growth of a wider one."""

from keras_biprune.plan import PruningPlan  # re-exported: plans used to live here
from keras_biprune.surgery.apply import apply_plan, masked_model
from keras_biprune.surgery.grow import grow_model, growable_groups

__all__ = ["PruningPlan", "apply_plan", "grow_model", "growable_groups", "masked_model"]
