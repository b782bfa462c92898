"""Criteria computed from weights alone: L1, L2, FPGM and BN-scale."""

import keras
import numpy as np

from keras_biprune.criteria.base import Criterion, combine
from keras_biprune.criteria.registry import get, register
from keras_biprune.errors import CriterionError
from keras_biprune.handlers import lookup


def kernel_columns(layer):
    """A layer's output-channel weights as a 2-D array ``(weights per channel, channels)``,
    or None (see `LayerHandler.kernel_columns`)."""
    return lookup(layer).kernel_columns(layer)


def input_magnitudes(layer):
    """``|weights|`` linking each input channel entry to each filter: ``(inputs, filters)``
    (see `LayerHandler.input_magnitudes`)."""
    return lookup(layer).input_magnitudes(layer)


def _rows(index_map, columns):
    """The positions a member carries and one row of weights per position.

    A position with several entries (a depthwise multiplier, a grouped conv's
    copies) gets the weights of all its entries in one row.
    """
    positions = np.unique(index_map[index_map >= 0])
    rows = np.stack([columns[:, index_map == p].T.ravel() for p in positions])
    return positions, rows.astype("float64")


class WeightCriterion(Criterion):
    """Base of criteria that score the weights of a group's producers.

    The producers are the group's members that output its channels and own a
    kernel: ``Conv*``, ``Conv*Transpose``, ``Dense``, ``DepthwiseConv*`` (its
    outputs are its input channels) and ``SeparableConv*`` (its pointwise
    filters). Subclasses implement `score_rows`.

    Example:

    ```python
    import numpy as np
    import keras_biprune as kb

    class LInf(kb.criteria.WeightCriterion):    # largest |weight| of each filter
        name = "linf"
        def score_rows(self, rows):                 # (positions, weights per position)
            return np.abs(rows).max(axis=1)

    graph = kb.trace(model)
    plan = kb.criteria.select(graph, model, 0.5, LInf())
    ```
    """

    def sources(self, group, records):
        """Yields ``(index_map, columns)`` for each weighted member of ``group``."""
        for member in group.members:
            op = records[member.layer].op
            if member.role.startswith("output"):
                columns = kernel_columns(op)
            elif member.role.startswith("internal"):
                columns = lookup(op).internal_columns(op, member.role.split(" ", 1)[1])
            else:
                continue
            if columns is not None:
                yield member.index_map, columns

    def score_rows(self, rows):
        """Scores of the rows of ``rows`` (one row of weights per position)."""
        raise NotImplementedError

    def score_groups(self, graph, groups, model, data=None):
        records = {record.path: record for record in graph.records}
        result = {}
        for group in groups:
            parts = []
            for index_map, columns in self.sources(group, records):
                positions, rows = _rows(index_map, columns)
                parts.append((positions, self.score_rows(rows)))
            if not parts:
                result[group.id] = self.score_unweighted(graph, group, model, data)
            else:
                result[group.id] = combine(group.size, parts)
        return result

    def score_unweighted(self, graph, group, model, data):
        """Scores a group none of whose members has weights this criterion reads."""
        raise CriterionError(
            f"{type(self).__name__} found no weights to score in group {group.id!r}. "
            f"Received: a group made by {list(group.producers)}, none of which is a conv, "
            "dense, depthwise or separable layer. Score it with a data criterion "
            "('apoz', 'taylor', 'hrank') or 'random'."
        )


@register
class L1(WeightCriterion):
    """Sum of absolute kernel weights of each filter (Li et al., 2017).

    Example:

    ```python
    scores = kb.criteria.L1()(graph, graph.prunable_groups[0], model)
    ```
    """

    name = "l1"

    def score_rows(self, rows):
        return np.abs(rows).sum(axis=1)


@register
class L2(WeightCriterion):
    """Euclidean norm of each filter's kernel weights.

    Example:

    ```python
    scores = kb.criteria.L2()(graph, graph.prunable_groups[0], model)
    ```
    """

    name = "l2"

    def score_rows(self, rows):
        return np.sqrt((rows**2).sum(axis=1))


@register
class FPGM(WeightCriterion):
    """Filter pruning via geometric median (He et al., 2019).

    A filter's score is the sum of its Euclidean distances to the other
    filters of its layer. The filters nearest the layer's geometric median
    (which minimizes that sum) score lowest: the others can stand in for them.

    Example:

    ```python
    scores = kb.criteria.FPGM()(graph, graph.prunable_groups[0], model)
    ```
    """

    name = "fpgm"

    def score_rows(self, rows):
        squares = (rows**2).sum(axis=1)
        distances = squares[:, None] + squares[None, :] - 2 * rows @ rows.T
        return np.sqrt(np.maximum(distances, 0)).sum(axis=1)


@register
class BNScale(WeightCriterion):
    """Absolute ``gamma`` of the ``BatchNormalization`` layers reading the channels
    (network slimming, Liu et al., 2017).

    Every ``BatchNormalization`` with a ``gamma`` (``scale=True``) among the
    group's members counts; a residual group usually has several.

    Args:
        fallback: the criterion (name) that scores groups without any such
            layer, ``"l1"`` by default; None raises `CriterionError` instead.

    Example:

    ```python
    scores = kb.criteria.BNScale(fallback=None)(graph, graph.prunable_groups[0], model)
    ```
    """

    name = "bn_scale"

    def __init__(self, fallback="l1"):
        if fallback is not None:
            get(fallback)
        self.fallback = fallback

    def get_config(self):
        return {"fallback": self.fallback}

    def sources(self, group, records):
        for member in group.members:
            layer = records[member.layer].op
            if (
                member.role == "input 0"
                and isinstance(layer, keras.layers.BatchNormalization)
                and layer.scale
            ):
                yield member.index_map, keras.ops.convert_to_numpy(layer.gamma)[None, :]

    def score_rows(self, rows):
        return np.abs(rows).sum(axis=1)

    def score_unweighted(self, graph, group, model, data):
        if self.fallback is None:
            raise CriterionError(
                f"BNScale found no BatchNormalization with a gamma in group {group.id!r}. "
                "Received: fallback=None. Pass fallback='l1' (or another criterion) to "
                "score such groups, or use a criterion that does not need batch norm."
            )
        return get(self.fallback).score_groups(graph, [group], model, data)[group.id]
