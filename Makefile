# Quick start: `make demo` and `make test`. Each creates the venv and installs on first use;
# `make test` also installs Debian's Chromium for the browser test when it can.
#
# Another Python or Django: each combination in its own venv, e.g.
#   make test PYTHON=/root/.pyenv/versions/3.13.0/bin/python VENV=.venv-py313 DJANGO="Django>=6.1,<6.2"
# DJANGO is a pip requirement; empty means the newest release pyproject.toml allows for PYTHON.
PYTHON ?= python3
VENV ?= .venv
DJANGO ?=
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
CHROMIUM := /usr/bin/chromium
# Fail `make test` under this line coverage of django_inngest/ (measured in this process only:
# code that runs inside the integration tests' qcluster subprocesses is not counted).
COVERAGE_MIN ?= 90

.PHONY: demo test lint chromium bench clean

# The stamp records the DJANGO requirement it was installed with; asking for another one
# reinstalls (an empty DJANGO accepts whatever the venv has).
ifneq ($(DJANGO),)
ifneq ($(DJANGO),$(file <$(STAMP)))
.PHONY: $(STAMP)
endif
endif

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]" $(if $(DJANGO),"$(DJANGO)")
	printf '%s' '$(DJANGO)' > $(STAMP)

demo: $(STAMP)
	rm -f example_project/db.sqlite3 example_project/db.sqlite3-wal example_project/db.sqlite3-shm
	cd example_project && ../$(BIN)/python manage.py migrate --noinput -v 0
	cd example_project && ../$(BIN)/python manage.py run_demo

# Debian's Chromium, for the browser test (Playwright never downloads a browser here). Without
# root or passwordless sudo this only says so: the browser test then fails, naming the command.
chromium:
	@if [ -x $(CHROMIUM) ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then sudo=""; \
	elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo="sudo"; \
	else echo "$(CHROMIUM) is missing and installing it needs root:" \
	  "sudo apt-get update && sudo apt-get install -y chromium (the browser test will fail)"; \
	  exit 0; fi; \
	echo "Installing Debian's Chromium for the browser test"; \
	$$sudo apt-get update -qq && \
	DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq chromium >/dev/null

test: $(STAMP) chromium
	@$(BIN)/python -c "import sys, django; print(f'Python {sys.version.split()[0]}, Django {django.get_version()}')"
	$(BIN)/python -m pytest --cov=django_inngest --cov-report=term:skip-covered \
		--cov-fail-under=$(COVERAGE_MIN)

# mypy keeps a cache per venv: each venv has its own Django, which the django-stubs plugin loads.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy --cache-dir $(VENV)/.mypy_cache

clean:
	rm -rf .venv .venv-* .test-db*.sqlite3* .coverage .coverage.* example_project/db.sqlite3*
