# Herald's everyday commands. `make help` lists them.

GO        ?= go
BIN       ?= bin/herald
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X main.version=$(VERSION)

.PHONY: help build run test check vet fmt services clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

build: ## Build bin/herald
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/herald

run: build ## Migrate the database and run everything in one process (herald all)
	$(BIN) all --migrate

test: check ## Vet, check formatting and run every test (integration suites need PostgreSQL and RabbitMQ)
	$(GO) test -race -count=1 -timeout 20m ./...

check: vet fmt

vet: ## go vet
	$(GO) vet ./...

fmt: ## Fail if any file needs gofmt
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

services: ## Start PostgreSQL and RabbitMQ with docker compose
	docker compose up -d --wait postgres rabbitmq

clean: ## Remove build output
	rm -rf bin
