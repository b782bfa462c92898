"""The documentation site: it builds with ``mkdocs build --strict``, and its API
reference documents every public name."""

import inspect
import os
import pathlib
import re
import subprocess
import sys

import keras_biprune as kb

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _public_names():
    """``{public path: object}``: ``kb.__all__`` and the ``__all__`` of its public modules."""
    names = {}
    for name in kb.__all__:
        obj = getattr(kb, name)
        names[f"keras_biprune.{name}"] = obj
        if inspect.ismodule(obj):
            names.update({f"{obj.__name__}.{sub}": getattr(obj, sub)
                          for sub in getattr(obj, "__all__", ())})
    return names


def _anchors(obj, paths):
    """Every anchor the API pages may give ``obj``: its public paths and where it is defined."""
    found = set(paths)
    if inspect.ismodule(obj):
        found.add(obj.__name__)
    elif hasattr(obj, "__qualname__") and hasattr(obj, "__module__"):
        found.add(f"{obj.__module__}.{obj.__qualname__}")
    return found


def test_api_overview_lists_every_public_name():
    overview = (ROOT / "docs" / "api" / "index.md").read_text()
    assert not [name for name in kb.__all__ if f"`kb.{name}`" not in overview]


def test_mkdocs_builds_strict_and_documents_every_public_name(tmp_path):
    site = tmp_path / "site"
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    run = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    for page in ["index.html", "comparison/index.html", "benchmarks/index.html"]:
        assert (site / page).is_file(), page

    anchors = set()
    for page in (site / "api").glob("**/*.html"):
        anchors |= set(re.findall(r'id="(keras_biprune[^"]*)"', page.read_text()))
    names = _public_names()
    paths_of = {}
    for path, obj in names.items():
        paths_of.setdefault(id(obj), set()).add(path)
    missing = [path for path, obj in names.items()
               if not _anchors(obj, paths_of[id(obj)]) & anchors]
    assert not missing, f"public names without an entry in the API reference: {missing}"
