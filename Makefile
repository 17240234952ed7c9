# The front door of the project. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

CARGO ?= cargo
NEXTEST := $(shell $(CARGO) nextest --version >/dev/null 2>&1 && echo yes)

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

.PHONY: run
run: ## Run the system embedded: SQLite and dev keys under ./data, services on 127.0.0.1:50051..
	scripts/run-dev.sh

.PHONY: build
build: ## Build every crate and test
	$(CARGO) build --workspace --all-targets

.PHONY: test
test: check-backends ## Run every test: unit, and integration on SQLite and on PostgreSQL + Redis
ifeq ($(NEXTEST),yes)
	$(CARGO) nextest run --workspace --no-fail-fast
else
	$(CARGO) test --workspace --no-fail-fast
endif

.PHONY: check-backends
check-backends: ## Fail with instructions when the test PostgreSQL or Redis is unreachable
	@scripts/check-backends.sh

.PHONY: lint
lint: lint-proto ## rustfmt check, clippy with warnings as errors, and buf on the contracts
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

.PHONY: lint-proto
lint-proto: ## buf lint and format check of proto/ (installs buf from npm once)
	scripts/lint-proto.sh

.PHONY: fmt
fmt: ## Format the code
	$(CARGO) fmt --all
