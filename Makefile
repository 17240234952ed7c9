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

.PHONY: test-long
test-long: check-backends ## The long forms: full counts and the large figures (1,000 draws, 100,000 experts, crash runs)
	SUPERVISION_TEST_LONG=1 PROPTEST_CASES=$${PROPTEST_CASES:-512} $(CARGO) nextest run --workspace --no-fail-fast --run-ignored all --release

.PHONY: bench
bench: check-backends ## Performance (issue 12, docs/performance.md): supbench scenarios and baselines on SQLite and PostgreSQL + Redis, processes' memory and start-up, criterion micro-benchmarks (release)
	$(CARGO) build --release --bins -p supervision-registry -p supervision-recruitment -p supervision-dispatch -p supervision-finance
	$(CARGO) build --release -p supervision-bench
	target/release/supbench run --backend both $(BENCH_ARGS)
	target/release/supbench procs --backend both --bin-dir target/release
	$(CARGO) bench -p supervision-bench --bench micro

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
