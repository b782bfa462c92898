"""Criteria list themselves in the registry by their class."""

import ast
import pathlib

import pytest

import keras_biprune as kb
from keras_biprune.criteria.registry import TABLE, register

CRITERIA = pathlib.Path(kb.criteria.__file__).parent


def test_every_builtin_criterion_is_registered_by_its_class():
    assert sorted(TABLE) == ["apoz", "blend", "bn_scale", "fpgm", "hrank", "l1", "l2",
                             "random", "taylor"]
    assert all(TABLE[name].name == name for name in TABLE)


def test_the_registry_imports_no_criterion_module():
    tree = ast.parse((CRITERIA / "registry.py").read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert imported <= {"keras_biprune.criteria.base", "keras_biprune.errors"}


def test_a_taken_name_or_a_non_criterion_is_refused():
    class Other(kb.criteria.WeightCriterion):
        name = "l1"

    with pytest.raises(kb.criteria.CriterionError, match="'l1' is taken by L1"):
        register(Other)
    with pytest.raises(kb.criteria.CriterionError, match="Criterion subclass"):
        register(int)
    assert TABLE["l1"] is kb.criteria.L1
