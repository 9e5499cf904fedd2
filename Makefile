# conveyor — see README.md. Every target works on a fresh Debian machine as root.
GO      ?= go
BIN     := bin
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
# Integration tests bring the stack up themselves when it is not up.
TESTFLAGS ?= -count=1 -timeout 80m

.PHONY: all deps tools bin up up-openstack down status demo images test lint clean bench-migration bench-promotion bench-pipelines bench-telemetry bench-replay

all: bin

deps: ## Debian packages the stack runs (containerd, runc, CNI, registry, nginx, busybox)
	tools/deps.sh

tools: deps ## pinned builds of temporal, buildkitd, etcd, Kubernetes and kwok, cached in ~/.cache/conveyor
	tools/build.sh all

bin: ## the conveyor CLI and the worker
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/conveyor ./starter
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/conveyor-worker ./workers

up: tools bin ## start the local stack (idempotent)
	$(BIN)/conveyor dev up

up-openstack: tools bin ## the local stack plus its two-region OpenStack (regions eqiad1, eqiad2)
	$(BIN)/conveyor dev up --with openstack

down: bin ## stop what `make up` started
	$(BIN)/conveyor dev down

status: bin
	$(BIN)/conveyor dev status

demo: up ## the main job on the local stack
	tools/demo.sh

images: up ## conveyor's own images (.pipeline/blubber.yaml), built on the stack and pushed as localhost:5000/conveyor/conveyor{,-worker}:$(VERSION) and :latest
	$(BIN)/conveyor dev up --with debian
	VERSION=$(VERSION) tools/images.sh

test: tools ## unit tests + integration tests on the real stack
	$(GO) test $(TESTFLAGS) ./...

bench-migration: tools ## the migration's scale benchmark: 10,000 VMs in 1,000 projects, stubbed activities (BENCHFLAGS to change)
	$(GO) run ./bench/migration $(BENCHFLAGS)

bench-promotion: up ## approval -> 100 % in both production clusters through the Promotion workflow, against helm upgrade --wait (BENCHFLAGS to change)
	tools/build.sh helm
	$(GO) run ./bench/promotion $(BENCHFLAGS)

bench-pipelines: ## P5: 1,000 stubbed pipelines in flight on the production Temporal (PostgreSQL) and the dev server, against a trivial workflow; needs `conveyor dev up --with temporal-postgres` (BENCHFLAGS to change)
	$(GO) run ./bench/pipelines $(BENCHFLAGS)

lint:
	gofmt -l . | (! grep .)
	$(GO) vet ./...

clean:
	rm -rf $(BIN)

bench-telemetry: bin ## what metrics + tracing cost: 1,000 stubbed pipelines bare and instrumented, then the real pipeline traced and untraced; needs `make up`
	$(GO) run ./bench/pipelines -only dev -overhead $(BENCHFLAGS)
	$(GO) run ./bench/pipeline -tracing -runs 4

bench-replay: bin ## `conveyor history replay --recent 500` on the stack's server: wall time, CPU and peak RSS (BENCHFLAGS to change)
	$(GO) run ./bench/replay $(BENCHFLAGS)
