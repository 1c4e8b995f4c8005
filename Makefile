# Two commands do all set-up on a fresh machine with only python3:
#   make demo   - the offline quickstart against the built-in Anthropic-compatible server
#   make test   - the test suite
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean browser browser-deps redis-deps

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) scripts/demo.py

test: $(STAMP) browser-deps redis-deps lint
	$(PY) -m pytest -q

# ruff (style, imports, common bugs) and mypy (types) over the whole package; make test runs it first.
lint: $(STAMP)
	$(VENV)/bin/ruff check claude_force_nb tests benchmarks scripts
	$(VENV)/bin/mypy

# Debian's chromium for tests/test_browser.py (Playwright drives it; nothing is downloaded at test
# time). Never fails: without root or apt-get the browser test is skipped.
browser-deps:
	@if [ -x /usr/bin/chromium ] || command -v chromium >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "browser-deps: installing chromium and chromium-driver with apt-get"; \
		log=$$(mktemp); \
		if ! (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver) >"$$log" 2>&1; then \
			tail -n 5 "$$log"; echo "browser-deps: apt-get failed; tests/test_browser.py will be skipped"; \
		fi; \
		rm -f "$$log"; \
	else echo "browser-deps: no chromium (needs root and apt-get to install); tests/test_browser.py will be skipped"; fi

# Debian's redis-server for tests/test_redis_*.py (each test starts its own on a free loopback port).
# Never fails: without root or apt-get those tests are skipped, except on CI (CI=true), where a
# missing redis-server fails them, as a missing browser fails the browser test.
redis-deps:
	@if command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "redis-deps: installing redis-server with apt-get"; \
		log=$$(mktemp); \
		if ! (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server) >"$$log" 2>&1; then \
			tail -n 5 "$$log"; echo "redis-deps: apt-get failed; tests/test_redis_*.py will be skipped"; \
		fi; \
		rm -f "$$log"; \
	else echo "redis-deps: no redis-server (needs root and apt-get to install); tests/test_redis_*.py will be skipped"; fi

browser: $(STAMP) browser-deps
	$(PY) -m pytest -q tests/test_browser.py

bench: $(STAMP)
	$(PY) benchmarks/orchestrator.py
	$(PY) benchmarks/cache.py
	$(PY) benchmarks/kernel.py
	$(PY) benchmarks/rate_limits.py
	$(PY) benchmarks/tool_loop.py
	$(PY) benchmarks/redis_tier.py
	$(PY) benchmarks/workflows.py
	$(PY) benchmarks/data_scale.py

clean:
	rm -rf $(VENV) build *.egg-info
