"""keras_biprune: structural pruning of Keras 3 CNNs by evolutionary search.

Example:

```python
import keras_biprune as kb
graph = kb.trace(model)                                  # channel groups
plan = kb.PruningPlan.random(graph, ratio=0.3, seed=0)   # which channels stay
slim = kb.apply_plan(model, plan)                        # a new, smaller model
evaluator = kb.Evaluator(model, (x_val, y_val))          # scores plans fast
best = kb.search.BiLevelSearch(evaluator, target=0.5, max_accuracy_drop=None).run().best
```
"""

from keras_biprune import (
    criteria,
    datasets,
    errors,
    evaluate,
    handlers,
    layers,
    plotting,
    search,
    training,
)
from keras_biprune.adaptive import AdaptivePruner
from keras_biprune.errors import (
    BiPruneError,
    HandlerError,
    InvalidPlanError,
    PlanMismatchError,
    SearchError,
    UnsupportedModelError,
)
from keras_biprune.evaluate import Cost, CostReport, Evaluator, cost, count_params
from keras_biprune.graph import ChannelGraph, ChannelGroup, GroupMember, trace
from keras_biprune.handlers import LayerHandler, register_handler
from keras_biprune.plan import PruningPlan
from keras_biprune.pruner import BiLevelPruner
from keras_biprune.surgery import apply_plan, masked_model

__version__ = "0.1.0"

__all__ = [
    "AdaptivePruner",
    "BiLevelPruner",
    "BiPruneError",
    "ChannelGraph",
    "ChannelGroup",
    "Cost",
    "CostReport",
    "Evaluator",
    "GroupMember",
    "HandlerError",
    "InvalidPlanError",
    "LayerHandler",
    "PlanMismatchError",
    "PruningPlan",
    "SearchError",
    "UnsupportedModelError",
    "apply_plan",
    "cost",
    "count_params",
    "criteria",
    "datasets",
    "errors",
    "evaluate",
    "export",
    "handlers",
    "layers",
    "masked_model",
    "plotting",
    "register_handler",
    "search",
    "trace",
    "training",
]


def __getattr__(name):
    # kb.export imports TensorFlow; load it only when asked for.
    if name == "export":
        import importlib

        return importlib.import_module("keras_biprune.export")
    raise AttributeError(f"module 'keras_biprune' has no attribute {name!r}")
