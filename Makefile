# Heard: `make up` starts the platform, `make test` runs every test tier. Both install what is missing.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PROFILE ?= dev
STAMP := $(VENV)/.installed
PACKAGES := shared services/intake services/routing services/notify services/analytics services/web .
REQUIREMENTS := requirements-dev.txt shared/requirements.txt $(wildcard services/*/requirements.txt)

.PHONY: up down logs status watch staff-token translations install install-browser venv test lint typecheck unit contract rules integration e2e schemas bench clean

$(STAMP): $(REQUIREMENTS) $(wildcard */pyproject.toml services/*/pyproject.toml) pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation $(addprefix -e ,$(PACKAGES))
	$(PY) -m heard_notify.i18n compile
	touch $(STAMP)

venv: $(STAMP)

install: venv
	$(PY) -m heard_devstack install

# The page tests also need Debian's Chromium (make up does not).
install-browser: venv
	$(PY) -m heard_devstack install --browser

up: install
	$(PY) -m heard_devstack up --profile $(PROFILE)

down: venv
	$(PY) -m heard_devstack down --profile $(PROFILE)

status: venv
	$(PY) -m heard_devstack status --profile $(PROFILE)

logs: venv
	$(PY) -m heard_devstack logs --profile $(PROFILE)

# A staff account for the console of `make up`: make staff-token NAME="Officer Diaz" ROLE=unit_member UNIT=north-patrol
staff-token: venv
	$(PY) -m heard_devstack issue-token --profile $(PROFILE) --name "$(NAME)" --role "$(ROLE)" $(if $(UNIT),--unit "$(UNIT)")

# Extracts the web pages' messages and merges them into each language's catalogue (then translate what is new).
translations: venv
	$(PY) -m heard_web.catalog update

# Prints every event on every topic as it passes (Ctrl-C to stop).
watch: venv
	$(PY) -m heard_devstack watch --profile $(PROFILE)

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: venv
	$(VENV)/bin/mypy shared/heard_shared services/*/heard_* devstack/heard_devstack tests $(shell find bench -name '*.py')

rules: install
	promtool check rules deploy/prometheus/rules/*.yml
	promtool test rules deploy/prometheus/tests/*.yml

unit: venv
	$(PY) -m pytest -q tests/unit

contract: install
	$(PY) -m pytest -q tests/contract

integration: install
	$(PY) -m pytest -q tests/integration

e2e: install
	$(PY) -m pytest -q tests/e2e

# Everything the tests need, then every tier; stops at the first failing tier.
test: install install-browser lint typecheck rules
	$(PY) -m pytest -q -p no:cacheprovider tests

schemas: venv
	$(PY) -m heard_shared.contract write
	$(PY) -m heard_intake.openapi write

# Benchmarks print figures; they are not tests. Each can also be run on its own (see its docstring).
bench: install
	$(PY) bench/severity/evaluate.py --quiet
	$(PY) bench/escalation/run.py
	$(PY) bench/intake/run.py
	$(PY) bench/web/run.py
	$(PY) bench/notify/run.py

clean: down
	rm -rf .heard $(VENV)
