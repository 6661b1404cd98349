# Herald's everyday commands. `make help` lists them.
SHELL := /bin/bash

# Secrets of the services, written by `make services` once they are up with them: when present,
# every target uses them (Herald's settings and the tests' service URLs are in it).
ifneq (,$(wildcard .env))
include .env
export
endif

GO        ?= go
BIN       ?= bin/herald
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X main.version=$(VERSION)

.PHONY: help build run apikey test test-unit test-bench test-fuzz test-faults test-scale check vet fmt bench services clean

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

build: ## Build bin/herald
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/herald

run: build ## Migrate the database and run everything in one process (herald all)
	$(BIN) all --migrate

KEY_NAME ?= dev
apikey: build ## Make an API key with send, read and operate, named KEY_NAME (dev); it is printed once
	$(BIN) apikeys create --name $(KEY_NAME) --scopes send,read,operate

test: check test-unit test-bench test-fuzz test-faults test-scale ## Everything CI runs: vet, formatting, tests, one pass of each benchmark, fuzzing, the fault and scale suites

test-unit: ## Unit, integration and end-to-end tests (integration suites need PostgreSQL and RabbitMQ)
	$(GO) test -race -count=1 -timeout 20m ./...

test-bench: ## Run each Go benchmark once, at -short sizes, so that none of them rots (figures: make bench)
	$(GO) test -short -count=1 -run='^$$' -bench=. -benchtime=1x ./...

BENCHTIME ?= 1s
bench: ## The Go benchmarks of the hot paths, with their figures (docs/benchmarks.md)
	$(GO) test -count=1 -run='^$$' -bench=. -benchmem -benchtime=$(BENCHTIME) ./...

# A count of executions, not a duration: go1.26's fuzzing coordinator can fail a duration-bounded
# run with a bare "context deadline exceeded" at its end, with no input at fault (go.dev/issue/75804).
FUZZTIME ?= 50000x
test-fuzz: ## Fuzz the request decoder, the whole send path, the template renderers and the bounce report parser, FUZZTIME each
	$(GO) test -count=1 -run='^$$' -fuzz='^FuzzDecodeSend$$' -fuzztime=$(FUZZTIME) ./http/
	$(GO) test -count=1 -run='^$$' -fuzz='^FuzzSendEndToEnd$$' -fuzztime=$(FUZZTIME) ./http/
	$(GO) test -count=1 -run='^$$' -fuzz='^FuzzRender$$' -fuzztime=$(FUZZTIME) ./templates/
	$(GO) test -count=1 -run='^$$' -fuzz='^FuzzRenderHTML$$' -fuzztime=$(FUZZTIME) ./templates/
	$(GO) test -count=1 -run='^$$' -fuzz='^FuzzParse$$' -fuzztime=$(FUZZTIME) ./bounces/

test-faults: ## The fault suite: kills and restarts processes, RabbitMQ (a private node) and connections
	$(GO) test -tags faults -count=1 -v -timeout 15m -run '^TestFaults$$' ./e2e/

test-scale: ## The scale suite: a 3-node RabbitMQ cluster and a PostgreSQL primary with a standby, each losing a node under load
	$(GO) test -tags scale -count=1 -v -timeout 25m -run '^TestScale$$' ./e2e/

check: vet fmt

vet: ## go vet, the fault and scale suites included
	$(GO) vet ./...
	$(GO) vet -tags faults ./e2e/
	$(GO) vet -tags scale ./e2e/

fmt: ## Fail if any file needs gofmt
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

services: ## Set up PostgreSQL and RabbitMQ (running ones, docker compose, or Debian packages) and write .env
	@scripts/services.sh

clean: ## Remove build output
	rm -rf bin
