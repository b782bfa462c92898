"""The documentation site: it builds with ``mkdocs build --strict``, and its API
reference covers every public name."""

import inspect
import os
import pathlib
import re
import subprocess
import sys

import keras_biprune as kb

ROOT = pathlib.Path(__file__).resolve().parents[1]
API = ROOT / "docs" / "api"


def _directives():
    """``{identifier: members or None}`` of every ``::: identifier`` in the API pages."""
    found = {}
    for page in API.glob("*.md"):
        text = page.read_text()
        for match in re.finditer(r"^::: (\S+)\n((?:    .*\n)*)", text, re.MULTILINE):
            members = re.search(r"members: \[(.*)\]", match.group(2))
            found[match.group(1)] = (None if members is None
                                     else {m.strip() for m in members.group(1).split(",")})
    return found


def test_api_reference_documents_every_public_name():
    directives = _directives()
    missing = []
    for name in kb.__all__:
        obj = getattr(kb, name)
        if f"keras_biprune.{name}" in directives:
            continue
        home = obj.__name__ if inspect.ismodule(obj) else getattr(obj, "__module__", "")
        if directives.get(home, ()) is None:       # its module, rendered whole
            continue
        missing.append(name)
    assert not missing, f"not in docs/api/*.md: {missing}"


def test_api_overview_lists_every_public_name():
    overview = (API / "index.md").read_text()
    assert not [name for name in kb.__all__ if f"`kb.{name}`" not in overview]


def test_mkdocs_builds_strict(tmp_path):
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    run = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    for page in ["index.html", "api/pruner/index.html", "comparison/index.html",
                 "benchmarks/index.html"]:
        assert (tmp_path / "site" / page).is_file(), page
    pruner_page = (tmp_path / "site" / "api" / "pruner" / "index.html").read_text()
    assert "keras_biprune.BiLevelPruner" in pruner_page and "target_flops" in pruner_page
