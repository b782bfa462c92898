# keras_biprune developer tasks.  `make test` works on a clean clone: it creates
# .venv and installs the package with its test extras before running pytest.
# Every install takes the exact versions of constraints.txt (setup.cfg only
# states compatible ranges); `make demo` installs the package alone.

PY ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_STAMP := $(VENV)/.installed-demo
CONSTRAINTS := constraints.txt

# oneDNN is on by default only on some CPUs; without it TensorFlow has no channels_first
# (NCHW) Conv2D on the CPU, which the channels_first models of the test zoo need.
PYTEST_ENV := TF_CPP_MIN_LOG_LEVEL=2 TF_ENABLE_ONEDNN_OPTS=1
PYTEST_ARGS := -n 2 -q

export PIP_DISABLE_PIP_VERSION_CHECK := 1

.DEFAULT_GOAL := help
.PHONY: help venv test test-slow test-backends test-backends-short demo docs lint clean

help:
	@echo "Targets:"
	@echo "  venv       create .venv and pip install -e '.[test]' -c constraints.txt"
	@echo "  test       run the fast test suite (pytest -n 2)"
	@echo "  test-slow  run only tests marked slow (RUN_SLOW=1 -m slow)"
	@echo "  test-backends  run the core tests on Keras's JAX and PyTorch backends, in"
	@echo "             .venv-backends (no TensorFlow); long (an hour and more), for manual runs"
	@echo "  test-backends-short  run the tests marked backends (parity, surgery, evaluator,"
	@echo "             one search of each kind, a short fit) on JAX and PyTorch; .ci/run runs it"
	@echo "  demo       run keras-biprune demo (train, prune, export a small CNN offline);"
	@echo "             installs only the package and its requirements"
	@echo "  docs       build the documentation site into site/ (mkdocs build --strict)"
	@echo "  lint       ruff check keras_biprune tests"
	@echo "  clean      remove .venv, build artifacts and caches"

venv: $(STAMP)

# Reinstall whenever the package metadata or the pinned versions change.
$(STAMP): setup.cfg pyproject.toml $(CONSTRAINTS)
	@test -x $(VPY) || $(PY) -m venv $(VENV)
	$(VPY) -m pip install --upgrade pip
	$(VPY) -m pip install -e ".[test]" -c $(CONSTRAINTS)
	@touch $@

# The demo needs the package and its install_requires only (no PyTorch, MkDocs, pytest).
$(DEMO_STAMP): setup.cfg pyproject.toml $(CONSTRAINTS)
	@test -x $(VPY) || $(PY) -m venv $(VENV)
	$(VPY) -m pip install --upgrade pip
	$(VPY) -m pip install -e . -c $(CONSTRAINTS)
	@touch $@

# pytest exit code 5 means "no tests collected": report it, but do not fail.
define run_pytest
	@$(1) $(VPY) -m pytest $(PYTEST_ARGS) $(2); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "no tests collected"; exit 0; fi; \
	exit $$rc
endef

# The core suite on the other Keras backends, in its own environment without TensorFlow
# (the library's core needs none); export and TensorFlow-only features are not core.
BACKENDS_VENV := .venv-backends
BACKENDS_STAMP := $(BACKENDS_VENV)/.installed
BACKENDS := jax torch
CORE_TESTS := tests/graph tests/handlers tests/surgery tests/criteria tests/evaluate \
	tests/search tests/test_pruner.py

$(BACKENDS_STAMP): setup.cfg pyproject.toml $(CONSTRAINTS)
	@test -x $(BACKENDS_VENV)/bin/python || $(PY) -m venv $(BACKENDS_VENV)
	$(BACKENDS_VENV)/bin/python -m pip install -c $(CONSTRAINTS) keras numpy pygad matplotlib \
	    scikit-learn pytest torch "jax[cpu]"
	$(BACKENDS_VENV)/bin/python -m pip install --no-deps -e .
	@touch $@

test-backends: $(BACKENDS_STAMP)
	@for backend in $(BACKENDS); do \
	    echo "== KERAS_BACKEND=$$backend"; \
	    KERAS_BACKEND=$$backend $(BACKENDS_VENV)/bin/python -m pytest -q $(CORE_TESTS) || exit $$?; \
	done

# The sample of the core marked `backends`, a few minutes a backend: what CI runs.
test-backends-short: $(BACKENDS_STAMP)
	@for backend in $(BACKENDS); do \
	    echo "== KERAS_BACKEND=$$backend (-m backends)"; \
	    KERAS_BACKEND=$$backend $(BACKENDS_VENV)/bin/python -m pytest -q -m backends \
	        $(CORE_TESTS) tests/training tests/test_backend_parity.py || exit $$?; \
	done

test: venv
	$(call run_pytest,$(PYTEST_ENV),)

test-slow: venv
	$(call run_pytest,RUN_SLOW=1 $(PYTEST_ENV),-m slow)

demo: $(DEMO_STAMP)
	$(VENV)/bin/keras-biprune demo

docs: venv
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir site

lint: venv
	$(VENV)/bin/ruff check keras_biprune tests

clean:
	rm -rf $(VENV) $(BACKENDS_VENV) build dist *.egg-info .pytest_cache .ruff_cache site docs/_build
	find . -path ./.git -prune -o -type d -name __pycache__ -prune -exec rm -rf {} +
	find . -path ./.git -prune -o -type f -name '*.py[co]' -exec rm -f {} +
