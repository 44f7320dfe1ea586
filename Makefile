# Ripple's front door. `make` lists the targets; `make dev` and `make test` are the two that matter.
#
# AWS endpoints: when AWS_ENDPOINT_URL is already set (LocalStack you run yourself, or a real
# account's endpoint), dev, test, bench and invoke use it and start nothing. Otherwise they start
# the local emulators (tests/emulator/emulator.sh) and point every SDK at them.
#
# Everything a target needs is installed into the project (.venv for Python tools, .emulator for
# DynamoDB Local) on first use; a target that cannot install something says so and fails.

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

VENV     := .venv
EMULATOR := tests/emulator/emulator.sh
ARGS     ?=

# The fault soak (ripple soak). `make test` runs a short one with a fixed seed, so a failure there
# reruns with the same command; `make soak` a long one with a fresh seed (printed), or ARGS='--seed N'.
# SOAK_PROFILE=local-release runs the long soak on the optimised build (as make bench does).
SOAK_PROFILE     ?= dev
SOAK             := cargo run -q -p ripple --profile $(SOAK_PROFILE) -- soak
TEST_SOAK_ORDERS ?= 500
TEST_SOAK_SEED   ?= 20261201
SOAK_ORDERS      ?= 10000
# Generated cases over all property tests (the `proptests` modules) in `make soak`; `make test`
# runs proptest's default of 256 per test.
SOAK_PROPTEST_CASES ?= 1000000

# Python-packaged tools (cfn-lint, SAM CLI, cargo-lambda; moto for the emulator), locked with the
# sha256 of every file pip may fetch (requirements/*.txt, made from requirements/*.in by
# `make requirements`): a release replaced or tampered with fails the install instead of running.
# Each lock file is the tool's whole dependency closure, so pip installs exactly it (--no-deps).
PIP_INSTALL := $(VENV)/bin/pip install -q --disable-pip-version-check --require-hashes --no-deps
# cargo-deny, installed with cargo (its Cargo.lock) when missing.
CARGO_DENY_VERSION := 0.20.2

# `cargo lambda` and `sam` find the venv's tools (cargo-lambda, zig) on PATH.
WITH_VENV := PATH="$(CURDIR)/$(VENV)/bin:$$PATH"
export SAM_CLI_TELEMETRY := 0
# template.yaml says each consumer's queue, DLQ, policies, subscription and alarm once, with
# Fn::ForEach of AWS::LanguageExtensions; SAM CLI expands it locally only when asked.
export SAM_CLI_ENABLE_LANGUAGE_EXTENSIONS := 1

.PHONY: help dev load test soak schemas emulator-up emulator-down emulator-status lint deny requirements build invoke stack-down deploy bench bench-figures clean-emulator

help: ## List the targets
	@echo "Ripple: event-driven order pipeline on AWS Lambda in Rust. The two commands: make dev, make test."
	@echo
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | grep -v '^help:' \
		| awk -F':.*## ' '{ printf "  make %-16s %s\n", $$1, $$2 }'

# ----------------------------------------------------------------------------------------------
# The two commands
# ----------------------------------------------------------------------------------------------
dev: ## Run the whole system locally (ARGS='--orders 100 --json'); leaves the emulator up
	@$(EMULATOR) run --keep -- cargo run -p ripple -- dev $(ARGS)

load: ## Orders at a rate through the local pipeline: latency, invariants, AWS requests and cost per order (ARGS='--orders 1000 --rate 20')
	@$(EMULATOR) run -- cargo run -p ripple -- load $(ARGS)

test: ## All tests: unit, doc, adapter, property, end-to-end (in both ordering modes), and a seeded fault soak of 500 orders
	@$(EMULATOR) run -- bash -c 'cargo test --workspace \
	  && echo "make test: the end-to-end suite again with the template parameter Ordering=fifo" \
	  && RIPPLE_PARAMETER_OVERRIDES="$${RIPPLE_PARAMETER_OVERRIDES:-} Ordering=fifo" cargo test -p ripple-e2e \
	  && $(SOAK) --orders $(TEST_SOAK_ORDERS) --seed $(TEST_SOAK_SEED)'

soak: ## The property tests at over a million cases, then the fault soak: 10,000 orders, every fault on (ARGS='--seed N ...')
	@cases=$$(cargo test -q --workspace proptests -- --list 2>/dev/null | grep -c ': test$$'); \
	per_test=$$(( ($(SOAK_PROPTEST_CASES) + cases - 1) / cases )); \
	echo "soak: $$cases property tests x $$per_test cases"; \
	PROPTEST_CASES=$$per_test cargo test -q --workspace proptests
	@$(EMULATOR) run -- $(SOAK) --orders $(SOAK_ORDERS) $(ARGS)

schemas: ## Regenerate the event contracts (shared/domain/schemas) from the event types
	UPDATE_SCHEMAS=1 cargo test -p domain --lib contracts

# ----------------------------------------------------------------------------------------------
# Emulator
# ----------------------------------------------------------------------------------------------
emulator-up: ## Start the emulators (LocalStack with Docker; moto + DynamoDB Local without)
	@$(EMULATOR) up
	@$(EMULATOR) status

emulator-down: ## Stop what emulator-up started
	@$(EMULATOR) down

emulator-status: ## Show what runs where
	@$(EMULATOR) status || true

clean-emulator: ## Stop the emulators and delete .emulator/ (logs, DynamoDB Local install)
	@$(EMULATOR) clean

# ----------------------------------------------------------------------------------------------
# Quality
# ----------------------------------------------------------------------------------------------
lint: $(VENV)/bin/cfn-lint $(VENV)/bin/sam deny ## rustfmt, clippy, the kit's features/docs/package, cargo deny, cfn-lint, sam validate
	@command -v cargo >/dev/null || { echo "lint: cargo not found (install Rust with rustup)"; exit 1; }
	@cargo fmt --version >/dev/null 2>&1 || { echo "lint: rustfmt is missing (rustup component add rustfmt)"; exit 1; }
	@cargo clippy --version >/dev/null 2>&1 || { echo "lint: clippy is missing (rustup component add clippy)"; exit 1; }
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings
	@# The kit: each capability feature compiles alone, its docs are complete, and it packages
	@# and builds from its packaged files alone (what crates.io would get).
	for features in "" store-dynamodb idempotency-dynamodb publish-sns redelivery-sqs quarantine-sqs test-support json-schema; do \
		cargo clippy -p ripple-kit --lib --no-default-features --features "$$features" -- -D warnings; \
	done
	RUSTDOCFLAGS="-D warnings" cargo doc -p ripple-kit --no-deps --all-features
	cargo publish --dry-run -p ripple-kit --allow-dirty
	$(VENV)/bin/cfn-lint template.yaml
	$(VENV)/bin/sam validate --lint --region us-east-1
	$(VENV)/bin/sam validate --region us-east-1

# Supply chain (deny.toml): licences, banned crates and sources always; RustSec advisories when
# the advisory database (a git repository on GitHub) can be fetched, and said so when it cannot.
deny: ## cargo deny: licences, bans, sources, and advisories when the database is reachable
	@command -v cargo-deny >/dev/null || { \
		echo "installing cargo-deny $(CARGO_DENY_VERSION) with cargo install --locked"; \
		cargo install --locked cargo-deny@$(CARGO_DENY_VERSION) \
			|| { echo "deny: cannot install cargo-deny (is crates.io reachable?)"; exit 1; }; }
	cargo deny check --hide-inclusion-graph licenses bans sources
	@if timeout 120 cargo deny fetch db >/dev/null 2>&1; then \
		cargo deny check --disable-fetch advisories; \
	else \
		echo "deny: the RustSec advisory database cannot be fetched from here; advisories NOT checked"; \
	fi

# Re-resolves requirements/*.txt from requirements/*.in (all tools together, then each tool's
# subset at the same versions), with the hashes of every file of each pinned release.
requirements: ## Re-lock the Python tools (requirements/*.txt) with their hashes
	@python3 -m venv .venv-requirements
	@.venv-requirements/bin/pip install -q --disable-pip-version-check pip-tools==7.6.2
	cd requirements && for lock in all cfn-lint sam cargo-lambda moto bench; do \
		../.venv-requirements/bin/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras \
			--no-emit-index-url --no-emit-find-links --upgrade --output-file $$lock.txt $$lock.in; \
	done

$(VENV)/bin/python:
	@command -v python3 >/dev/null || { echo "python3 not found: install Python 3.9+"; exit 1; }
	@echo "creating the project venv in $(VENV)"
	@python3 -m venv $(VENV) || { echo "python3 -m venv failed (on Debian: apt-get install python3-venv)"; exit 1; }

$(VENV)/bin/cfn-lint: requirements/cfn-lint.txt | $(VENV)/bin/python
	@echo "installing cfn-lint (requirements/cfn-lint.txt, hashes checked) into $(VENV)"
	@$(PIP_INSTALL) -r requirements/cfn-lint.txt \
		|| { echo "could not install requirements/cfn-lint.txt with pip"; exit 1; }
	@touch $@

$(VENV)/bin/sam: requirements/sam.txt | $(VENV)/bin/python
	@echo "installing the SAM CLI (requirements/sam.txt, hashes checked) into $(VENV)"
	@$(PIP_INSTALL) -r requirements/sam.txt \
		|| { echo "could not install requirements/sam.txt with pip"; exit 1; }
	@touch $@

$(VENV)/bin/cargo-lambda: requirements/cargo-lambda.txt | $(VENV)/bin/python
	@echo "installing cargo-lambda, with zig for cross-compiling (requirements/cargo-lambda.txt, hashes checked) into $(VENV)"
	@$(PIP_INSTALL) -r requirements/cargo-lambda.txt \
		|| { echo "could not install requirements/cargo-lambda.txt with pip"; exit 1; }
	@touch $@

# ----------------------------------------------------------------------------------------------
# Lambda packages
# ----------------------------------------------------------------------------------------------
ARM64_TARGET := aarch64-unknown-linux-gnu
# The Lambda functions: every crate under functions/ (the ripple CLI and tests are not deployed).
FUNCTION_PACKAGES := $(notdir $(wildcard functions/*))

build: $(VENV)/bin/cargo-lambda ## Build every function for Lambda (arm64, release) into target/lambda/
	@if ! rustup target list --installed 2>/dev/null | grep -qx '$(ARM64_TARGET)'; then \
		echo "adding the Rust target $(ARM64_TARGET) with rustup"; \
		rustup target add $(ARM64_TARGET) || { \
			echo "build: cannot add the Rust target $(ARM64_TARGET); install it with 'rustup target add $(ARM64_TARGET)' where the Rust distribution server is reachable"; \
			exit 1; }; \
	fi
	$(WITH_VENV) cargo lambda build --release --arm64 $(addprefix -p ,$(FUNCTION_PACKAGES))
	@ls -l $(foreach f,$(FUNCTION_PACKAGES),target/lambda/$(f)/bootstrap)

# ----------------------------------------------------------------------------------------------
# One function on one event
# ----------------------------------------------------------------------------------------------
# FN is a function's binary (or logical id); EVENT defaults to its sample in events/ (for
# orders-api, the POST /orders one). payments and order-saga act on an order the event store
# must hold: GIVEN defaults for them to the sample order, appended to the store first; orders-api
# prices its sample from the catalog, so GIVEN defaults for it to the sample sku's price. STACK
# is provisioned if it does not exist; `make dev ARGS=--keep` leaves one under the same name.
FN       ?=
EVENT    ?= $(firstword $(wildcard events/$(FN)-post-*.json events/$(FN)-*.json))
GIVEN    ?= $(if $(filter payments order-saga,$(FN)),events/inventory-order-placed.json,$(if $(filter orders-api,$(FN)),events/catalog-sku-1-priced.json))
STACK    ?= ripple
TEMPLATE ?= template.yaml
RIPPLE   ?= cargo run -q --bin ripple --

invoke: ## One function's binary on a sample event, with its template environment: FN=orders-api [EVENT=...] [STACK=ripple]
	@test -n "$(FN)" || { echo "invoke: say which function, e.g. make invoke FN=orders-api (the functions: $(FUNCTION_PACKAGES))"; exit 1; }
	@test -f "$(EVENT)" || { echo "invoke: no event file '$(EVENT)'; pass EVENT=events/<file>.json"; exit 1; }
	@$(EMULATOR) run --keep -- $(RIPPLE) invoke $(FN) --event $(EVENT) $(if $(GIVEN),--given $(GIVEN)) \
		--stack $(STACK) --template $(TEMPLATE) $(INVOKE_ARGS)

stack-down: ## Delete the stack make invoke or make dev ARGS=--keep left: [STACK=ripple]
	@$(EMULATOR) run --keep -- $(RIPPLE) down --stack $(STACK) --template $(TEMPLATE)

deploy: $(VENV)/bin/sam $(VENV)/bin/cargo-lambda ## sam build && sam deploy (guided the first time)
	$(WITH_VENV) $(VENV)/bin/sam build --beta-features
	@if [ -f samconfig.toml ]; then \
		$(WITH_VENV) $(VENV)/bin/sam deploy; \
	elif [ -t 0 ]; then \
		$(WITH_VENV) $(VENV)/bin/sam deploy --guided; \
	else \
		echo "deploy: the first deploy is guided (it asks for the stack name, region and confirms IAM roles);"; \
		echo "        run 'make deploy' in a terminal once, which saves samconfig.toml for the next ones"; \
		exit 1; \
	fi

# ----------------------------------------------------------------------------------------------
# Figures
# ----------------------------------------------------------------------------------------------
# Batches of 10 records each consumer benchmark times (after one to warm up), on either side.
BENCH_BATCHES ?= 50
# Cold starts timed of the Powertools handler (fresh interpreters) and of each function.
BENCH_COLD_RUNS ?= 10

bench: $(VENV)/.bench-installed ## Ripple beside Powertools for Python: cost per record, cold start, memory, CPU; snapshots; 200 orders (optimised builds, the arm64 bootstraps of make build); one table, target/bench/bench.json
	@mkdir -p target/bench && rm -f target/bench/*.json target/bench/*.jsonl
	@# The bootstraps as deployed (arm64, the release profile): the table gives their size.
	@$(MAKE) --no-print-directory build
	@# One emulator for every figure, started once: each side meets the same warm JVM.
	@$(EMULATOR) run -- $(MAKE) --no-print-directory bench-figures
	@echo
	@$(VENV)/bin/python tests/bench/report.py

# make bench's measurements, against the emulator it started (or AWS_ENDPOINT_URL's endpoint;
# run alone, each step starts and stops one of its own).
bench-figures: $(VENV)/.bench-installed
	@# The timed figures first; the stock histories (up to 100 000 events) last, counted not
	@# timed: once DynamoDB Local has held them it answers more slowly (inventory's first
	@# invocation took 0.6 s after them, 0.05 s on a fresh emulator).
	@$(EMULATOR) run -- cargo run -p ripple --profile local-release -- dev --orders 200 --json | tee target/bench/dev.json
	@# The same consumer job on both sides, on the same emulator in one run (stdout: the kit's EMF lines).
	@cargo build -q -p ripple-kit --profile local-release --example consumer_bench
	@$(EMULATOR) run -- bash -c 'target/local-release/examples/consumer_bench cost --batches $(BENCH_BATCHES) >/dev/null \
		&& $(VENV)/bin/python tests/bench/powertools/bench.py cost --batches $(BENCH_BATCHES) \
		&& $(VENV)/bin/python tests/bench/powertools/bench.py cold-start --runs $(BENCH_COLD_RUNS)'
	@# Each function's optimised binary, started cold on its sample event against a local Runtime
	@# API, as many times as the Powertools handler (the table gives the medians).
	@: > target/bench/cold-start.jsonl
	@for fn in $(FUNCTION_PACKAGES); do for run in $$(seq $(BENCH_COLD_RUNS)); do \
		$(MAKE) --no-print-directory invoke FN=$$fn STACK=ripple-bench \
			INVOKE_ARGS='--profile local-release --cold-start --quiet' >> target/bench/cold-start.jsonl || exit 1; \
	done; done
	@python3 tests/bench/cold_start.py target/bench/cold-start.jsonl
	@$(MAKE) --no-print-directory stack-down STACK=ripple-bench
	@if command -v valgrind >/dev/null; then tests/bench/cpu_per_record.sh; \
	else echo "bench: valgrind not found (apt-get install valgrind): instructions per record left out"; fi
	@$(EMULATOR) run -- cargo run -p ripple-e2e --profile local-release --example stock_history -- 10 1000 10000 100000

$(VENV)/.bench-installed: requirements/bench.txt | $(VENV)/bin/python
	@echo "installing Powertools for AWS Lambda (Python), for the side-by-side (requirements/bench.txt, hashes checked) into $(VENV)"
	@$(PIP_INSTALL) -r requirements/bench.txt \
		|| { echo "could not install requirements/bench.txt with pip"; exit 1; }
	@touch $@
