# SyncAdmin: `make run` to try it, `make test` to test it. Python 3.11, 3.12 or 3.13.

# The interpreter: the newest supported one that runs (PYTHONS, newest first), looked for as
# pythonX.Y on the PATH, then in pyenv's versions. "Runs and says it is X.Y" is the test, not
# "is on the PATH": pyenv puts a shim for every version it has on the PATH, and the shim of a
# version pyenv has not selected fails. `make PYTHON=/path/to/python` takes that one instead;
# `make PYTHONS=3.12` looks for 3.12 only (.ci/run tests each version that way).
PYTHONS ?= 3.13 3.12 3.11
PYENV_ROOT ?= $(HOME)/.pyenv
PY_ASK := import sys; print(sys.executable, sys.version)
ifdef PYTHON
FOUND := $(shell "$(PYTHON)" -c '$(PY_ASK)' 2>/dev/null)
$(if $(FOUND),,$(error PYTHON=$(PYTHON) does not run))
$(if $(filter $(PYTHONS),$(basename $(word 2,$(FOUND)))),,$(warning PYTHON=$(PYTHON) is Python $(word 2,$(FOUND)); this project supports $(PYTHONS)))
PYTHON_FROM := PYTHON=$(PYTHON)
else
FOUND := $(shell for v in $(PYTHONS); do for c in python$$v "$(PYENV_ROOT)"/versions/$$v*/bin/python$$v; do \
	out=$$("$$c" -c '$(PY_ASK)' 2>/dev/null) && case "$$out" in (*" $$v".*) echo "$$out"; exit 0;; esac; done; done)
$(if $(FOUND),,$(error No Python $(PYTHONS) runs here (looked for pythonX.Y on the PATH and in $(PYENV_ROOT)/versions); install one, or name one with PYTHON=))
PYTHON_FROM := the newest of $(PYTHONS) found
endif
PYTHON := $(word 1,$(FOUND))
$(info Python $(word 2,$(FOUND)): $(PYTHON) ($(PYTHON_FROM)))

# The virtualenv follows the interpreter: one made by another Python (or none) is made again.
VENV ?= .venv
PY := $(VENV)/bin/python
VENV_MADE_BY := $(wordlist 2,99,$(shell $(PY) -c '$(PY_ASK)' 2>/dev/null))
ifneq ($(VENV_MADE_BY),$(wordlist 2,99,$(FOUND)))
VENV_STALE := yes
endif
PG_URL ?= postgres://postgres@127.0.0.1:5432/syncadmin
REDIS_URL ?= redis://127.0.0.1:6379/0
# The migration linter reads PostgreSQL's SQL through the server's maintenance database (it runs none).
LINT_PG_URL ?= $(dir $(PG_URL))postgres

.PHONY: run test test-sqlite test-postgres install python lint docs bench chaos chaos-long lock upgrade-deps venv-stale

# requirements-dev.txt pins and hashes everything (runtime, tests, pip itself): pip checks every
# download against the lock's hashes, so nothing floats and nothing is swapped on the way.
$(VENV)/.installed: requirements.txt requirements-dev.txt $(if $(VENV_STALE),venv-stale)
	$(if $(VENV_STALE),rm -rf $(VENV))
	$(if $(VENV_STALE),$(PYTHON) -m venv $(VENV))
	$(PY) -m pip install -q --require-hashes -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed

## Only the line every make starts with: the Python it took, and why.
python:
	@:

## Set up and run the whole hub (SQLite + ORM broker): web server and workers together.
## Plain log lines for a terminal (production's default is JSON); LOG_FORMAT=json make run for JSON.
run: export LOG_FORMAT ?= plain
run: install
	$(PY) manage.py migrate --noinput
	$(PY) manage.py bootstrap
	$(PY) manage.py serve

## Run the whole test suite against SQLite, then against PostgreSQL + Redis.
test: install lint test-sqlite test-postgres

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(PY) manage.py check
	$(PY) manage.py makemigrations --check --dry-run
# A migration that would hold a big table against writes, or break the running code, fails (tests/migration_lint.py).
	DATABASE_URL=$(LINT_PG_URL) $(PY) -m tests.migration_lint
# The docs: a broken link or anchor fails (never add --quiet: it hides the warnings --strict counts).
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

## The docs site (docs/, mkdocs.yml) on http://127.0.0.1:8001/, rebuilt on every change.
docs: install
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs serve -a 127.0.0.1:8001

# The suite runs on every core, up to four (pytest-xdist): one process each, each with its own
# test database (pytest-django) and its own cluster name on the shared Redis (tests/worker_env.py,
# loaded before the settings; `python -m` puts the project on sys.path for it). Most of the suite
# is CPU-bound, and the PostgreSQL pass waits a third of its time on clusters and the chaos suite's
# stacks. `make test TEST_PROCESSES=0` runs it in this one process.
TEST_PROCESSES ?= auto
PYTEST = $(PY) -m pytest -q -p tests.worker_env -n $(TEST_PROCESSES) --maxprocesses=4

test-sqlite: install
	$(PYTEST) $(PYTEST_ARGS)

test-postgres: install
	DATABASE_URL=$(PG_URL) Q_BROKER=$(REDIS_URL) $(PYTEST) $(PYTEST_ARGS)

## Benchmarks (PostgreSQL + Redis on loopback; each prints its figures and a same-run reference).
bench: install
	$(PY) bench/engine.py
	$(PY) bench/engine.py --sqlite
	$(PY) bench/engine_ceiling.py
	DATABASE_URL=$(PG_URL)_soapbench BENCH_Q_BROKER=$(REDIS_URL) $(PY) bench/soap.py
	DATABASE_URL=$(PG_URL) $(PY) bench/console.py
	DATABASE_URL=$(PG_URL) $(PY) bench/api.py
	DATABASE_URL=$(PG_URL) $(PY) bench/reconciliation.py
	$(PY) bench/metrics.py
	$(PY) bench/retention.py
	$(PY) bench/bulk.py
	$(PY) bench/migrations.py
	DATABASE_URL=$(PG_URL) $(PY) bench/pauses.py
	$(PY) bench/pauses.py --sqlite

## The chaos suite alone (its own private PostgreSQL + Redis): short versions, then the long ones.
chaos: install
	$(PY) -m tests.chaos

chaos-long: install
	$(PY) -m tests.chaos --long

## Regenerate requirements.txt and requirements-dev.txt (pinned + hashed) from the hand-written
## requirements*.in after editing them; upgrade-deps also moves every unpinned transitive
## dependency to its newest release. Both need PyPI. One lock serves every supported Python:
## uv resolves it --universal from 3.11 up and keeps the markers (pip-compile resolves for the
## Python it runs on and drops a requirement whose marker is false there, such as legacy-cgi's).
## The lock is made from PyPI only, whatever the machine's configuration adds (wheel folders, mirrors).
UV_COMPILE = env -u UV_INDEX -u UV_INDEX_URL -u UV_DEFAULT_INDEX -u UV_EXTRA_INDEX_URL -u UV_FIND_LINKS \
	$(VENV)/bin/uv pip compile -q --no-config --universal --python-version 3.11 --generate-hashes \
	--index-url https://pypi.org/simple --custom-compile-command "make lock"

lock: install
	$(UV_COMPILE) -o requirements.txt requirements.in
	$(UV_COMPILE) -o requirements-dev.txt requirements-dev.in

upgrade-deps: install
	$(UV_COMPILE) --upgrade -o requirements.txt requirements.in
	$(UV_COMPILE) --upgrade -o requirements-dev.txt requirements-dev.in
