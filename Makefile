# Herald's everyday commands. `make help` lists them.
SHELL := /bin/bash

# Secrets for the docker compose services, written by `make services`: when present, every
# target uses them (Herald's settings and the tests' service URLs are in it).
ifneq (,$(wildcard .env))
include .env
export
endif

GO        ?= go
BIN       ?= bin/herald
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X main.version=$(VERSION)

.PHONY: help build run test test-unit test-bench test-fuzz test-faults check vet fmt bench services clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

build: ## Build bin/herald
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/herald

run: build ## Migrate the database and run everything in one process (herald all)
	$(BIN) all --migrate

test: check test-unit test-bench test-fuzz test-faults ## Everything CI runs: vet, formatting, tests, one pass of each benchmark, fuzzing, the fault suite

test-unit: ## Unit, integration and end-to-end tests (integration suites need PostgreSQL and RabbitMQ)
	$(GO) test -race -count=1 -timeout 20m ./...

test-bench: ## Run each Go benchmark once, so that none of them rots (figures: make bench)
	$(GO) test -count=1 -run='^$$' -bench=. -benchtime=1x ./...

BENCHTIME ?= 1s
bench: ## The Go benchmarks of the hot paths, with their figures (docs/benchmarks.md)
	$(GO) test -count=1 -run='^$$' -bench=. -benchmem -benchtime=$(BENCHTIME) ./...

FUZZTIME ?= 20s
test-fuzz: ## Fuzz the request decoder, the whole send path and the template renderer, FUZZTIME each
	$(GO) test -count=1 -run='^$$' -fuzz='^FuzzDecodeSend$$' -fuzztime=$(FUZZTIME) ./http/
	$(GO) test -count=1 -run='^$$' -fuzz='^FuzzSendEndToEnd$$' -fuzztime=$(FUZZTIME) ./http/
	$(GO) test -count=1 -run='^$$' -fuzz='^FuzzRender$$' -fuzztime=$(FUZZTIME) ./templates/

test-faults: ## The fault suite: kills and restarts processes, RabbitMQ (a private node) and connections
	$(GO) test -tags faults -count=1 -v -timeout 15m -run '^TestFaults$$' ./e2e/

check: vet fmt

vet: ## go vet, the fault suite included
	$(GO) vet ./...
	$(GO) vet -tags faults ./e2e/

fmt: ## Fail if any file needs gofmt
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

services: .env ## Start PostgreSQL and RabbitMQ with docker compose (secrets in .env)
	docker compose up -d --wait postgres rabbitmq

# .env holds fresh random secrets, made once: no credentials are built in anywhere.
.env:
	@pg=$$(openssl rand -hex 16); mq=$$(openssl rand -hex 16); umask 077; { \
	  echo "POSTGRES_PASSWORD=$$pg"; \
	  echo "RABBITMQ_USER=herald"; \
	  echo "RABBITMQ_PASSWORD=$$mq"; \
	  echo "HERALD_DATABASE_URL=postgres://postgres:$$pg@127.0.0.1:5432/herald?sslmode=disable"; \
	  echo "HERALD_AMQP_URL=amqp://herald:$$mq@127.0.0.1:5672/"; \
	  echo "HERALD_TEST_DATABASE_URL=postgres://postgres:$$pg@127.0.0.1:5432/postgres?sslmode=disable"; \
	  echo "HERALD_TEST_AMQP_URL=amqp://herald:$$mq@127.0.0.1:5672/"; \
	  echo "HERALD_TEST_RABBITMQ_API=http://herald:$$mq@127.0.0.1:15672"; \
	} > .env; echo "wrote .env with fresh secrets"

clean: ## Remove build output
	rm -rf bin
