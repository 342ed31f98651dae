# ShopSwift Ops. `make help` lists the targets.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)
ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help run test bench manage install clean-data

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(VPY) || $(PY) -m venv $(VENV)
	$(VPY) -m pip install --quiet --disable-pip-version-check '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP) ## Create .venv and install the pinned dependencies

run: $(STAMP) ## Start PostgreSQL, Redis, Daphne, Celery worker + beat and the simulator; Ctrl-C stops all
	$(VPY) -m shopswift_ops.launcher run $(ARGS)

test: $(STAMP) ## Run the whole test suite against real PostgreSQL and Redis (ARGS are passed to pytest)
	$(VPY) -m shopswift_ops.launcher test $(ARGS)

bench: $(STAMP) ## Run the benchmarks; one JSON object per line (ARGS: benchmark names)
	$(VPY) -m shopswift_ops.launcher bench $(ARGS)

manage: $(STAMP) ## Run a manage.py command against .data's servers, e.g. make manage ARGS="create_api_token ci --scopes events:write"
	$(VPY) -m shopswift_ops.launcher manage $(ARGS)

clean-data: ## Delete .data/ (all local data: database, Redis, demo logins and token)
	rm -rf .data
