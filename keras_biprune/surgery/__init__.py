"""Surgery: the rebuild of a smaller model from a plan, and growth of a wider one."""

from keras_biprune.plan import PruningPlan  # re-exported: plans used to live here
from keras_biprune.surgery.apply import apply_plan, masked_model
from keras_biprune.surgery.apply import rebuild as rebuild
from keras_biprune.surgery.grow import grow as grow
from keras_biprune.surgery.grow import grow_model, growable_groups

__all__ = ["PruningPlan", "apply_plan", "grow_model", "growable_groups", "masked_model"]
# Also exported, for the estimators and not public API (the `x as x` imports): `rebuild` and
# `grow`, surgery that returns its rebuilder too, so an optimizer's state can follow it
# (`keras_biprune.training.map_optimizer_state`).
