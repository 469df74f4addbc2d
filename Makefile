# Two commands: `make run` and `make test`. Everything they need is
# installed and started by scripts/services.sh (OS packages, data in .data/).
SHELL := /bin/bash
GO ?= go
PKGS := ./...
# Tests start their own Postgres/Redis unless DATABASE_URL / REDIS_URL are given.
SERVICES = if [ -z "$${DATABASE_URL:-}" ] || [ -z "$${REDIS_URL:-}" ]; then \
	  eval "$$(scripts/services.sh start)" || exit 1; fi

.PHONY: run test build vet fmt bench agent-image services-stop tidy

## run: start private Postgres and Redis, apply migrations, serve on :8080
run:
	@$(SERVICES); \
	export DATABASE_URL="$${DATABASE_URL%/postgres?*}/molecule?sslmode=disable"; \
	psql "$${DATABASE_URL%/molecule?*}/postgres?sslmode=disable" -qtAc \
	  "SELECT 1 FROM pg_database WHERE datname='molecule'" | grep -q 1 || \
	  psql "$${DATABASE_URL%/molecule?*}/postgres?sslmode=disable" -qc "CREATE DATABASE molecule"; \
	if docker info >/dev/null 2>&1 && ! docker image inspect molecule/workspace-agent:latest >/dev/null 2>&1; then \
	  echo "molecule: building the agent image (first run with Docker)"; mkdir -p .data; workspace-template/build.sh > .data/agent-image.log 2>&1 || { cat .data/agent-image.log; exit 1; }; fi; \
	mkdir -p bin && $(GO) build -o bin/molecule-server ./cmd/server && \
	echo "molecule: admin token file: $${MOLECULE_DATA_DIR:-./.data}/admin_token (unless ADMIN_TOKEN is set)"; \
	LOG_FORMAT=$${LOG_FORMAT:-text} exec ./bin/molecule-server

## test: vet, then every test against real Postgres, Redis and Docker
test:
	@$(SERVICES); \
	echo "go vet"; $(GO) vet $(PKGS) && \
	test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || { echo "gofmt needed:"; gofmt -l .; exit 1; }; \
	$(GO) test -race -count=1 -timeout 30m $(PKGS)

## bench: the hot-path benchmarks (heartbeat, A2A proxy, auth, fan-out, memory)
bench:
	@$(SERVICES); $(GO) test -run '^$$' -bench . -benchmem -benchtime 2s $(PKGS)

build:
	$(GO) build -o bin/molecule-server ./cmd/server
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/molecule-agent ./cmd/molecule-agent

## agent-image: build molecule/workspace-agent:latest offline (FROM scratch)
agent-image:
	workspace-template/build.sh

vet:
	$(GO) vet $(PKGS)

fmt:
	gofmt -w $$(git ls-files '*.go')

services-stop:
	scripts/services.sh stop
