# tickcast: two commands do all set-up on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
TICKCAST := $(VENV)/bin/tickcast
PYTHON ?= python3

.PHONY: deps venv system-deps kafka-jars console-assets airflow-env qlib-env demo test test-unit lint up down doctor clean

deps: system-deps venv kafka-jars console-assets airflow-env qlib-env

system-deps:
	@bash scripts/install-system-deps.sh

$(VENV)/.installed: pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PIP) install -q --upgrade pip
	@$(PIP) install -q -c constraints.txt -e '.[dev]'
	@touch $@

venv: $(VENV)/.installed

kafka-jars:
	@bash infra/kafka/kafka.sh fetch

# The console's chart library from npm (pinned by serving/console/package-lock.json).
console-assets:
	@bash serving/console/build_assets.sh

# Apache Airflow in a virtualenv of its own (pinned by infra/airflow/constraints-*.txt, built
# once into .tickcast/): tests/integration/test_airflow_dag.py loads the DAG with its DagBag.
airflow-env: venv
	@$(PY) -m devtools.airflow_env >/dev/null

# Qlib's expression engine (pyqlib, pinned by devtools/constraints-pyqlib-*.txt) in a
# virtualenv of its own: tests/unit/indicators/alpha158/test_qlib.py compares Alpha158 with it.
qlib-env: venv
	@$(PY) -m devtools.qlib_env >/dev/null

up: deps
	@$(TICKCAST) up

down:
	@$(TICKCAST) down

doctor:
	@$(TICKCAST) doctor

demo: deps
	@$(TICKCAST) up
	@$(TICKCAST) demo

# The whole suite on the real components; pytest's exit code 5 (no tests collected) is a failure
# only when tests were expected, so it is mapped explicitly rather than hidden.
test: deps
	@$(TICKCAST) up
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/mypy .
	@$(VENV)/bin/lint-imports
	@set +e; $(VENV)/bin/pytest -q -p no:cacheprovider --durations=30 $(PYTEST_ARGS); rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no tests"; exit 1; fi; exit $$rc

test-unit: venv
	@$(VENV)/bin/pytest -q tests/unit

lint: venv
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/ruff format --check .
	@$(VENV)/bin/mypy .
	@$(VENV)/bin/lint-imports

clean: down
	rm -rf .tickcast
