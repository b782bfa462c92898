"""The one table of criteria by name: classes list themselves (`register`); lookup and
serialization by name.

The registry knows no criterion class; each criterion module imports it and
decorates its classes, so a criterion that looks others up by name (a blend,
BN-scale's fallback) imports the registry without an import cycle.
"""

from keras_biprune.criteria.base import Criterion
from keras_biprune.errors import CriterionError

TABLE = {}
"""``{name: Criterion subclass}`` of every criterion `get` knows: ``"l1"``, ``"l2"``,
``"fpgm"``, ``"bn_scale"``, ``"random"``, ``"apoz"``, ``"taylor"``, ``"hrank"``, ``"blend"``
(filled by `register` when ``keras_biprune.criteria`` is imported)."""


def register(cls):
    """Class decorator: lists a `Criterion` subclass in ``TABLE`` under its ``name``."""
    if not (isinstance(cls, type) and issubclass(cls, Criterion) and isinstance(cls.name, str)):
        raise CriterionError(f"register takes a Criterion subclass with a name. Received: "
                             f"{cls!r}. Give the class a name = '...' attribute.")
    if TABLE.setdefault(cls.name, cls) is not cls:
        raise CriterionError(f"The criterion name {cls.name!r} is taken by "
                             f"{TABLE[cls.name].__name__}. Received: {cls.__name__} with the "
                             "same name. Choose another name.")
    return cls


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
