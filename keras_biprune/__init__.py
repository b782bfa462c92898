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

import sys as _sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:   # for type checkers and mkdocstrings; at run time the names load lazily
    from keras_biprune import (
        criteria,
        datasets,
        distributed,
        errors,
        evaluate,
        export,
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

# Names load on first use (PEP 562), so `import keras_biprune` (and the
# `keras-biprune` command's --help and argument errors) does not import Keras
# or TensorFlow until something needs them.
_SUBMODULES = ("criteria", "datasets", "distributed", "errors", "evaluate", "export",
               "handlers", "layers", "plotting", "report", "search", "training")
_NAMES = {
    "AdaptivePruner": "keras_biprune.adaptive",
    "BiPruneError": "keras_biprune.errors",
    "HandlerError": "keras_biprune.errors",
    "InvalidPlanError": "keras_biprune.errors",
    "PlanMismatchError": "keras_biprune.errors",
    "SearchError": "keras_biprune.errors",
    "UnsupportedModelError": "keras_biprune.errors",
    "Cost": "keras_biprune.evaluate",
    "CostReport": "keras_biprune.evaluate",
    "Evaluator": "keras_biprune.evaluate",
    "cost": "keras_biprune.evaluate",
    "count_params": "keras_biprune.evaluate",
    "ChannelGraph": "keras_biprune.graph",
    "ChannelGroup": "keras_biprune.graph",
    "GroupMember": "keras_biprune.graph",
    "trace": "keras_biprune.graph",
    "LayerHandler": "keras_biprune.handlers",
    "register_handler": "keras_biprune.handlers",
    "BiLevelPruner": "keras_biprune.pruner",
    "PruningPlan": "keras_biprune.plan",
    "apply_plan": "keras_biprune.surgery",
    "masked_model": "keras_biprune.surgery",
}

# Saved pruned models may hold a ChannelSelect layer: register it with Keras
# at once when Keras is loaded already (it costs nothing then), so
# `keras.saving.load_model` finds it; otherwise any use of keras_biprune (or
# `import keras_biprune.layers`) registers it.
if "keras" in _sys.modules:
    from keras_biprune import layers

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
    "distributed",
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
    import importlib

    if name in _SUBMODULES:
        value = importlib.import_module(f"keras_biprune.{name}")
    elif name in _NAMES:
        value = getattr(importlib.import_module(_NAMES[name]), name)
    else:
        raise AttributeError(f"module 'keras_biprune' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
