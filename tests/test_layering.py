"""The packages import one way (docs/contributing.md): no import points up."""

import ast
import pathlib

import pytest

import keras_biprune

ROOT = pathlib.Path(keras_biprune.__file__).parent

# What each package may import besides errors, layers and the private top-level modules.
ALLOWED = {
    "handlers": set(),
    "graph": {"handlers"},
    "plan": {"handlers"},
    "surgery": {"handlers", "graph", "plan"},
    "evaluate": {"handlers", "graph", "plan", "surgery"},
    "criteria": {"handlers", "graph", "plan"},
    "search": {"handlers", "graph", "plan", "criteria", "evaluate"},
    "training": {"handlers", "graph", "plan"},
    "export": {"plan"},
    "distributed": {"handlers", "graph", "plan", "evaluate"},
}
ANYWHERE = {"errors", "layers"}


def _imported_units(package):
    units = set()
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = ([node.module] if node.module != "keras_biprune"
                         else [f"keras_biprune.{a.name}" for a in node.names])
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            units.update(n.split(".")[1] for n in names
                         if n.startswith("keras_biprune.") and n.split(".")[1] != package)
    return {u for u in units if not u.startswith("_")} - ANYWHERE


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_imports_point_one_way(package):
    assert _imported_units(package) <= ALLOWED[package]


def _imports(path):
    """``(module, names)`` of every ``from keras_biprune... import names`` in a file."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(
                "keras_biprune."):
            yield node.module, [a.name for a in node.names]


@pytest.mark.parametrize("path", sorted(ROOT.rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_private_name_crosses_a_package(path):
    unit = path.relative_to(ROOT).parts[0].removesuffix(".py")
    crossing = []
    for module, names in _imports(path):
        parts = module.split(".")
        if parts[1] == unit or parts[1].startswith("_"):
            continue                    # its own package, or a private top-level module
        crossing += [f"{module}: {n}" for n in names if n.startswith("_")]
        crossing += [module for part in parts[2:] if part.startswith("_")]
    assert not crossing


@pytest.mark.parametrize("estimator", ["adaptive.py", "pruner.py", "cli.py"])
def test_estimators_take_what_the_packages_export(estimator):
    deep = [module for module, _ in _imports(ROOT / estimator)
            if module.count(".") > 1 and module.split(".")[1] in ALLOWED]
    assert not deep
