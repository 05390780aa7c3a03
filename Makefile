# Entry points for developers and CI (.ci/run runs `make test`).
#
#   make venv         .venv with the project and its dev tools (re-run when pyproject.toml changes)
#   make system-deps  Debian packages the tests need (prometheus; postgresql's server)
#   make stack        start the local Kafka broker + schema registry (deploy/local.py up)
#   make stack-down   stop it
#   make lint         ruff check, ruff format --check, mypy
#   make test         venv + system-deps + lint + the whole pytest suite (starts its own stack)
#   make demo         run the demo (deploy/demo.py)

SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-from-pyproject
# Newest python3 >= 3.11 on PATH (override with `make PYTHON=/path/to/python3.12 venv`).
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
	2>/dev/null && { command -v $$p; break; }; done)
# deploy/local.py is stdlib-only; it uses confluent-kafka for its readiness probe when the
# venv exists.
STACK_PY = $(if $(wildcard $(VPY)),$(VPY),python3)
STATE_DIR ?= var/local

.PHONY: help venv system-deps fetch stack stack-down stack-status lint test demo

help:
	@sed -n 's/^#   //p' $(firstword $(MAKEFILE_LIST))

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "make venv: no python3 >= 3.11 on PATH" >&2; exit 1; }
	@$(VPY) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
		|| { rm -rf $(VENV) && echo "creating $(VENV) with $(PYTHON)" && $(PYTHON) -m venv $(VENV); }
	$(VPY) -m pip install --disable-pip-version-check -q -e '.[dev]'
	@touch $@

system-deps:
	@missing=; \
	command -v promtool >/dev/null 2>&1 || missing="$$missing prometheus"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	if [ -z "$$missing" ]; then \
		echo "system-deps: promtool and PostgreSQL's server binaries present"; \
	else \
		sudo=; [ "$$(id -u)" -eq 0 ] || sudo=sudo; \
		echo "system-deps: installing$$missing with apt-get"; \
		$$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q \
		&& $$sudo env DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -q --no-install-recommends $$missing; \
	fi

fetch:
	$(STACK_PY) deploy/local.py fetch

stack:
	$(STACK_PY) deploy/local.py up --state-dir $(STATE_DIR)

stack-down:
	$(STACK_PY) deploy/local.py down --state-dir $(STATE_DIR)

stack-status:
	$(STACK_PY) deploy/local.py status --state-dir $(STATE_DIR)

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/mypy --strict deploy/local.py
	$(VENV)/bin/mypy --strict --explicit-package-bases deploy/bench deploy/faults deploy/demo.py deploy/settings_table.py

test: venv system-deps lint
	$(VENV)/bin/pytest -q tests

demo: venv
	$(VPY) deploy/demo.py
