# The README's two set-up commands live here: `make demo` and `make test`.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.offnet-installed

.PHONY: demo test lint venv clean

venv: $(STAMP)

# torch is installed first and pinned: 2.13.0 is the CPU build available locally; any
# other spec would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev,export]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/offnet demo

# pytest exits 5 when it collects no test: that is a failure here, not a pass.
test: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .ruff_cache
