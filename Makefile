# SyncAdmin: `make run` to try it, `make test` to test it. Needs Python 3.11.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PG_URL ?= postgres://postgres@127.0.0.1:5432/syncadmin
REDIS_URL ?= redis://127.0.0.1:6379/0

.PHONY: run test test-sqlite test-postgres install lint docs bench chaos chaos-long lock upgrade-deps

# requirements-dev.txt pins and hashes everything (runtime, tests, pip itself): pip checks every
# download against the lock's hashes, so nothing floats and nothing is swapped on the way.
$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --require-hashes -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed

## Set up and run the whole hub (SQLite + ORM broker): web server and workers together.
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
# The docs: a broken link or anchor fails (never add --quiet: it hides the warnings --strict counts).
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

## The docs site (docs/, mkdocs.yml) on http://127.0.0.1:8001/, rebuilt on every change.
docs: install
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs serve -a 127.0.0.1:8001

test-sqlite: install
	$(VENV)/bin/pytest -q $(PYTEST_ARGS)

test-postgres: install
	DATABASE_URL=$(PG_URL) Q_BROKER=$(REDIS_URL) $(VENV)/bin/pytest -q $(PYTEST_ARGS)

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

## The chaos suite alone (its own private PostgreSQL + Redis): short versions, then the long ones.
chaos: install
	$(PY) -m tests.chaos

chaos-long: install
	$(PY) -m tests.chaos --long

## Regenerate requirements.txt and requirements-dev.txt (pinned + hashed) from the hand-written
## requirements*.in after editing them; upgrade-deps also moves every unpinned transitive
## dependency to its newest release. Both need PyPI. The lock is made from PyPI only, whatever
## the machine's pip configuration adds (local wheel folders, mirrors).
PIP_COMPILE = env -u PIP_FIND_LINKS -u PIP_EXTRA_INDEX_URL PIP_CONFIG_FILE=/dev/null $(VENV)/bin/pip-compile -q \
	--generate-hashes --allow-unsafe --strip-extras --no-emit-index-url --no-emit-find-links \
	--index-url https://pypi.org/simple

lock: install
	$(PIP_COMPILE) -o requirements.txt requirements.in
	$(PIP_COMPILE) -o requirements-dev.txt requirements-dev.in

upgrade-deps: install
	$(PIP_COMPILE) --upgrade -o requirements.txt requirements.in
	$(PIP_COMPILE) --upgrade -o requirements-dev.txt requirements-dev.in
