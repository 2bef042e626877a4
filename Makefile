# xenft — the first two commands on a fresh machine are `make run` and `make test`.
GO       ?= go
BIN      := bin/xenft
# FUZZSCALE sets how long make fuzz runs: 1 is about 10 s a target here.
# Budgets are execution counts, not durations: with -fuzztime 10s, Go 1.26's
# fuzz coordinator can fail a run with a bare "context deadline exceeded"
# and no failing input (golang/go#75804, fixed in Go 1.27; seen in CI on
# FuzzApply at 11 s).
FUZZSCALE ?= 3

.PHONY: build run test test-short e2e soak bench lint fuzz xen-e2e clean

build:
	$(GO) build -o $(BIN) ./cmd/xenft

## run: the demo on an embedded NATS server (data under ./.xenft; Ctrl-C stops it);
## make run ARGS="--chaos" crashes a host now and then
run: build
	./$(BIN) up $(ARGS)

## test: every test, with the race detector, against real embedded NATS servers
test:
	$(GO) test -race -timeout 30m ./...

test-short:
	$(GO) test -race -short ./...

## e2e: the chaos suite (e2e/doc.go): separate processes (3 NATS servers, 2 supervisors,
## 2 detectors, 4 agents on the fake xl), one fault per scenario (about 4 min; the partition needs root)
e2e:
	$(GO) test -race -tags e2e -timeout 25m -count=1 -v ./e2e

## soak: the stress and soak lane (docs/soak.md): the e2e cluster under seeded random faults
## (CPU starvation, frozen agents, slow and cut links, stalled disks, NATS restarts) and host
## crashes, for SOAK (default 5m) at SOAK_TIMING=default|demo; SOAK_SEED=n replays a run's choices.
## Its last line is the JSON summary (bin/soak/result.json; findings, events and logs beside it)
SOAK        ?= 5m
SOAK_TIMING ?= default
soak:
	GO=$(GO) SOAK=$(SOAK) SOAK_TIMING=$(SOAK_TIMING) SOAK_SEED=$(SOAK_SEED) bash e2e/soak.sh

## bench: every benchmark in quick mode; writes bench/RESULTS.md
bench:
	bash bench/run.sh

## lint: go vet and gofmt
lint:
	$(GO) vet ./...
	$(GO) vet -tags e2e ./e2e
	@out="$$(gofmt -l $$(git ls-files '*.go'))"; if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

## fuzz: a short run of every fuzz target (FUZZSCALE=6 for about a minute each);
## internal/fuzzwired fails when a Fuzz function is missing here
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $$(( $(FUZZSCALE) * 40000 ))x ./events
	$(GO) test -run '^$$' -fuzz '^FuzzParseConfig$$' -fuzztime $$(( $(FUZZSCALE) * 250000 ))x ./xen
	$(GO) test -run '^$$' -fuzz '^FuzzParseListTable$$' -fuzztime $$(( $(FUZZSCALE) * 250000 ))x ./xen
	$(GO) test -run '^$$' -fuzz '^FuzzParseListJSON$$' -fuzztime $$(( $(FUZZSCALE) * 250000 ))x ./xen
	$(GO) test -run '^$$' -fuzz '^FuzzParseInfo$$' -fuzztime $$(( $(FUZZSCALE) * 250000 ))x ./xen
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeHeartbeat$$' -fuzztime $$(( $(FUZZSCALE) * 35000 ))x ./detector
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeProbeReply$$' -fuzztime $$(( $(FUZZSCALE) * 30000 ))x ./detector
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeAgentRequest$$' -fuzztime $$(( $(FUZZSCALE) * 200000 ))x ./restarter/protocol
	$(GO) test -run '^$$' -fuzz '^FuzzApply$$' -fuzztime $$(( $(FUZZSCALE) * 1500 ))x ./supervisor/core

## xen-e2e: real Xen 4.17 nested under QEMU: the xl driver's TestRealXL and the single-host flow (server, agent, detector, supervisor) in dom0 (root for apt-get, ~4 GB RAM, 2-5 min)
xen-e2e:
	GO=$(GO) bash xen/lab/xen-e2e.sh

clean:
	rm -rf bin .xenft
