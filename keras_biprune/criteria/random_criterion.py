"""Random scores: the baseline every criterion must beat."""

import zlib

import numpy as np

from keras_biprune.criteria.base import Criterion
from keras_biprune.criteria.registry import register


@register
class Random(Criterion):
    """Uniform random scores in [0, 1).

    With a ``seed``, a group's scores depend only on the seed and the group's
    id: scoring one group or all of them gives the same numbers, on every
    call. Without one, every call draws fresh scores.

    Args:
        seed: int seed, or None for fresh randomness.

    Example:

    ```python
    random = kb.criteria.Random(seed=0)
    assert (random(graph, group, model) == random(graph, group, model)).all()
    ```
    """

    name = "random"

    def __init__(self, seed=None):
        self.seed = seed

    def get_config(self):
        return {"seed": self.seed}

    def score_groups(self, graph, groups, model, data=None):
        result = {}
        for group in groups:
            if self.seed is None:
                rng = np.random.default_rng()
            else:
                rng = np.random.default_rng([self.seed, zlib.crc32(group.id.encode())])
            result[group.id] = rng.random(group.size)
        return result
