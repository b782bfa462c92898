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
    "evaluate": {"handlers", "graph", "plan"},
    "criteria": {"handlers", "graph", "plan"},
    "search": {"handlers", "graph", "plan", "criteria", "evaluate"},
    "training": {"handlers", "graph", "plan"},
    "export": {"plan"},
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
