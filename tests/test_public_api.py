"""Every public name is documented with an example."""

import inspect

import pytest

import keras_biprune as kb

MODULES = [kb, kb.criteria, kb.search, kb.training, kb.evaluate, kb.export, kb.distributed]
PUBLIC = [(m.__name__, name) for m in MODULES for name in m.__all__
          if inspect.isclass(getattr(m, name)) or inspect.isfunction(getattr(m, name))]


@pytest.mark.parametrize("module, name", PUBLIC)
def test_public_names_have_a_docstring_with_an_example(module, name):
    obj = getattr(__import__(module, fromlist=[name]), name)
    if issubclass_safe(obj, Exception):
        assert obj.__doc__
        return
    assert "Example" in (obj.__doc__ or ""), f"{module}.{name} has no example in its docstring"


def issubclass_safe(obj, cls):
    return inspect.isclass(obj) and issubclass(obj, cls)
