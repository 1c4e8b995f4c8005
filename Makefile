# Two commands do all set-up on a fresh machine with only python3:
#   make demo   - the offline quickstart against the built-in Anthropic-compatible server
#   make test   - the test suite
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) scripts/demo.py

test: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) benchmarks/orchestrator.py
	$(PY) benchmarks/cache.py

clean:
	rm -rf $(VENV) build *.egg-info
