"""The one table of criteria by name, and lookup and serialization by name."""

from keras_biprune.criteria.activations import APoZ, HRank, Taylor
from keras_biprune.criteria.base import Criterion
from keras_biprune.criteria.blend import BlendedCriterion
from keras_biprune.criteria.random_criterion import Random
from keras_biprune.criteria.weights import FPGM, L1, L2, BNScale
from keras_biprune.errors import CriterionError

TABLE = {cls.name: cls
         for cls in (L1, L2, FPGM, BNScale, Random, APoZ, Taylor, HRank, BlendedCriterion)}


def get(identifier):
    """A criterion from a name, a `serialize` dict or a criterion.

    Args:
        identifier: a name in ``TABLE`` (``"l1"``, ``"l2"``, ``"fpgm"``,
            ``"bn_scale"``, ``"random"``, ``"apoz"``, ``"taylor"``,
            ``"hrank"``, ``"blend"``; case-insensitive) for the default instance, a dict
            ``{"name": ..., "config": {...}}`` from `serialize`, or a
            `Criterion` instance (returned as is).

    Returns:
        A `Criterion`.

    Example:

    ```python
    import keras_biprune as kb
    fpgm = kb.criteria.get("fpgm")
    same = kb.criteria.get(kb.criteria.serialize(kb.criteria.Random(seed=3)))
    ```
    """
    if isinstance(identifier, Criterion):
        return identifier
    if isinstance(identifier, dict) and set(identifier) == {"name", "config"}:
        return _lookup(identifier["name"]).from_config(identifier["config"])
    if isinstance(identifier, str):
        return _lookup(identifier)()
    raise CriterionError(
        "A criterion is a name, a dict from kb.criteria.serialize or a "
        f"kb.criteria.Criterion. Received: {identifier!r}. Valid names: {sorted(TABLE)}."
    )


def serialize(criterion):
    """``{"name": ..., "config": ...}`` of a criterion, for `get` to rebuild it.

    Example:

    ```python
    kb.criteria.serialize(kb.criteria.BNScale())
    # {'name': 'bn_scale', 'config': {'fallback': 'l1'}}
    ```
    """
    criterion = get(criterion)
    return {"name": criterion.name, "config": criterion.get_config()}


def _lookup(name):
    cls = TABLE.get(str(name).lower())
    if cls is None:
        raise CriterionError(
            f"Unknown criterion. Received: {name!r}. Valid names: {sorted(TABLE)}."
        )
    return cls
