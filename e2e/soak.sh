#!/usr/bin/env bash
# make soak: runs TestSoak (e2e/soak_test.go, docs/soak.md) for SOAK at
# SOAK_TIMING and prints its JSON summary as the very last line (go test's
# own PASS/FAIL lines come after the test's output). Everything the run
# leaves is in SOAK_OUT: result.json, findings.txt, events.txt, logs/, soak.log.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
SOAK=${SOAK:-5m}
SOAK_TIMING=${SOAK_TIMING:-default}
SOAK_OUT=${SOAK_OUT:-$PWD/bin/soak}

# go test's -timeout: the soak, plus building, starting the cluster, the
# drain (up to the lost-VM deadline and a minute) and stopping.
rest=$SOAK secs=0
while [[ $rest =~ ^([0-9]+)(h|m|s)(.*)$ ]]; do
	n=${BASH_REMATCH[1]}
	case ${BASH_REMATCH[2]} in
	h) secs=$((secs + n * 3600)) ;;
	m) secs=$((secs + n * 60)) ;;
	s) secs=$((secs + n)) ;;
	esac
	rest=${BASH_REMATCH[3]}
done
if [[ -n $rest || $secs -eq 0 ]]; then
	echo "SOAK=$SOAK: give whole hours, minutes or seconds, such as 30m or 1h30m" >&2
	exit 2
fi
timeout=$((secs + 15 * 60))

mkdir -p "$SOAK_OUT"
rm -rf "$SOAK_OUT/result.json" "$SOAK_OUT/findings.txt" "$SOAK_OUT/events.txt" "$SOAK_OUT/logs"
echo "== soak: SOAK=$SOAK SOAK_TIMING=$SOAK_TIMING${SOAK_SEED:+ SOAK_SEED=$SOAK_SEED}; output in $SOAK_OUT"
# What was built: the commit, and the files that differ from it.
if rev=$(git rev-parse --short HEAD 2>/dev/null); then
	changed=$(git status --porcelain --untracked-files=no 2>/dev/null | awk '{print $2}' | tr '\n' ' ')
	echo "== soak: tree $rev${changed:+ + uncommitted changes to: $changed}"
fi
# The test process is built without -race, unlike make e2e: here it is part
# of every path it judges (the proxies relay every NATS connection, the slow
# disks serve every server's store), and the race detector's cost there
# stalled the whole cluster on a busy 2-core machine. Every agent, detector
# and supervisor is still built with -race (main_test.go; the servers are
# not), and make e2e runs the proxy's and the disk's own tests with -race.
status=0
SOAK=$SOAK SOAK_TIMING=$SOAK_TIMING SOAK_OUT=$SOAK_OUT \
	"$GO" test -tags e2e -count=1 -run '^TestSoak$' -timeout "${timeout}s" -v ./e2e 2>&1 |
	tee "$SOAK_OUT/soak.log" || status=$?
if [[ -s $SOAK_OUT/result.json ]]; then
	tail -n 1 "$SOAK_OUT/result.json"
else
	echo "== soak: no result (the test stopped before its teardown; see $SOAK_OUT/soak.log)" >&2
	[[ $status -ne 0 ]] || status=1
fi
exit "$status"
