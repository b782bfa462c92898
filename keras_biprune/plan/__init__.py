"""Pruning plans and what every reader of one needs.

A `PruningPlan` is plain data: the channels each group keeps, plus lower-level
input and kernel masks. This package sits above ``handlers`` and below every
reader of a plan (``surgery``, ``evaluate``, ``criteria``, ``search``): it
validates a plan against a graph (`checked_plan`) and says what it keeps at
one layer (`node_io`, `kernel_mask`, `takes_input_mask`, `takes_kernel_mask`);
`compose` writes two plans applied in turn as one; ``plan.steps`` says which
widths a group may keep in steps of ``round_to`` (for the searches and the
latency model).
"""

from keras_biprune.plan.compose import compose
from keras_biprune.plan.per_layer import kernel_mask, node_io, takes_input_mask, takes_kernel_mask
from keras_biprune.plan.pruning_plan import PruningPlan, checked_plan

__all__ = [
    "PruningPlan",
    "checked_plan",
    "compose",
    "kernel_mask",
    "node_io",
    "takes_input_mask",
    "takes_kernel_mask",
]
