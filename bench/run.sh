#!/usr/bin/env bash
# Runs every benchmark in quick mode and writes bench/RESULTS.md with the
# machine, date, command and figures of each. `make bench` calls it.
set -euo pipefail
cd "$(dirname "$0")/.."
out=bench/RESULTS.md
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
{
  echo "# xenft benchmark results"
  echo
  echo "Written by \`make bench\` (bench/run.sh). Quick mode; the figures are from one run."
  echo
  echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "- machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
  echo "- go: $(go version | cut -d' ' -f3-)"
  echo "- commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "- load average at start: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine skews every figure; compare runs at similar load)"
} > "$tmp"

run() { # title, command...
  local title=$1; shift
  echo "== $title: $*" >&2
  local res
  res=$("$@" 2>&1) || { echo "$res" >&2; echo "benchmark failed: $*" >&2; exit 1; }
  echo "$res" >&2
  { echo; echo "## $title"; echo; echo "\`$*\`"; echo; echo '```'; echo "$res"; echo '```'; } >> "$tmp"
}

run "Event bus: publish→consume latency and throughput" go run ./bench/bus -quick
for d in bench/*/; do
  name=$(basename "$d")
  case "$name" in bus|lease) continue ;; esac
  [ -f "$d/main.go" ] || continue
  run "bench/$name" go run "./$d" -quick
done
run "Lease renewal (sent -> KV ack) under CPU starvation and uploads, 1 server" go run ./bench/lease -quick
run "Lease renewal (sent -> KV ack) under CPU starvation and uploads, 3-node cluster (replicas 3)" go run ./bench/lease -quick -servers 3
run "Detector at scale: 10,000 real beacons at 1 Hz through a real NATS server" go run ./bench/detect -hosts 10000 -quick
run "Go benchmarks (Benchmark*)" go test -run '^$' -bench . -benchtime 1s ./...
echo "- load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$tmp"
mv "$tmp" "$out"
trap - EXIT
echo "wrote $out" >&2
