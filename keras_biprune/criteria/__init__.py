"""Channel importance criteria: which channels of a group matter most.

Each criterion scores the positions of a channel group (higher = more
important): from weights (`L1`, `L2`, `FPGM`, `BNScale`), at random
(`Random`), or by running the model on a few batches of data (`APoZ`,
`Taylor`, `HRank`); `BlendedCriterion` blends the ranks of several, and
`cluster_criteria` finds which of them agree. `select` turns per-group keep counts into a `PruningPlan`
that keeps the best channels.

Example:

```python
import keras_biprune as kb
graph = kb.trace(model)
plan = kb.criteria.select(graph, model, keep=0.5, criterion="fpgm")
slim = kb.apply_plan(model, plan)
```
"""

from keras_biprune.criteria.activations import ActivationCriterion, APoZ, HRank, Taylor
from keras_biprune.criteria.base import Criterion, combine
from keras_biprune.criteria.blend import BlendedCriterion, CriteriaClusters, cluster_criteria
from keras_biprune.criteria.random_criterion import Random
from keras_biprune.criteria.registry import TABLE, get, serialize
from keras_biprune.criteria.selection import keep_counts, plan_from_scores, scores, select
from keras_biprune.criteria.weights import FPGM, L1, L2, BNScale, WeightCriterion
from keras_biprune.errors import CriterionError

__all__ = [
    "FPGM",
    "L1",
    "L2",
    "TABLE",
    "APoZ",
    "ActivationCriterion",
    "BNScale",
    "BlendedCriterion",
    "CriteriaClusters",
    "Criterion",
    "CriterionError",
    "HRank",
    "Random",
    "Taylor",
    "WeightCriterion",
    "cluster_criteria",
    "combine",
    "get",
    "keep_counts",
    "plan_from_scores",
    "scores",
    "select",
    "serialize",
]
