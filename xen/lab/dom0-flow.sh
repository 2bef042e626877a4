#!/bin/sh
# dom0-flow.sh - the single-host flow on real Xen, a built-in step of
# xen/lab/xen-e2e.sh ("XENFT-STEP flow"), run in dom0 of the nested lab.
# POSIX sh: dom0 has busybox only.
#
# Every role runs as its own process on dom0's loopback: xenft server
# (embedded NATS + JetStream, data on a tmpfs), xenft agent --driver xl (the
# real toolstack), xenft detector, xenft supervisor, and xenft events tail
# into a log. Then:
#   1. a tiny PV domU is created with real `xl create` and registered as a VM
#      with policy restore (a group of one);
#   2. `xenft checkpoint now --wait` checkpoints it (the agent's `xl save -p`,
#      the image into the store) and `xenft checkpoint list` shows it committed;
#   3. `xl destroy` kills the domU behind xenft's back: a crash;
#   4. the agent reports vm.failed, the supervisor rolls the group back, and the
#      agent restores the domU from the checkpoint with real `xl restore`: the
#      step waits until `xl list` shows it running under a new domain id and
#      the stream holds vm.failed, vm.restarting and vm.restarted;
#   5. the guest's console shows that it resumed from the checkpoint (its tick
#      counter goes back, and it did not boot again);
#   6. the event stream is printed, every process is stopped, the domU
#      destroyed.
# Each wait has its own deadline; when one passes, the step fails at once with
# the tails of every role's log.
#
# Environment (defaults are the lab's dom0; set them to run it elsewhere, e.g.
# against the fake xl: XL=/path/fakexl FAKEXL_STATE=... FLOW_GUEST_CHECKS=0):
#   XENFT=/xenft/xenft        the xenft binary
#   XL=xl                     the xl binary (given to the agent as --xl-path)
#   FLOW_DIR=/run/xenft-flow  work directory (a tmpfs is mounted there when
#                             FLOW_TMPFS=1, the default in dom0)
#   FLOW_PORT=4222            the NATS client port on 127.0.0.1
#   FLOW_VM=flow FLOW_MEM=128 the domU's name and memory (MiB)
#   FLOW_KERNEL=/guest/vmlinuz FLOW_RAMDISK=/guest/initrd.gz
#   FLOW_GUEST_CHECKS=1       wait for the guest's suspend handler (xenstore)
#                             and check its console (xenconsoled's log)
#   FLOW_CONSOLE_LOG=/var/log/xen/console/guest-$FLOW_VM.log
set -u

XENFT=${XENFT:-/xenft/xenft}
XL=${XL:-xl}
W=${FLOW_DIR:-/run/xenft-flow}
PORT=${FLOW_PORT:-4222}
VM=${FLOW_VM:-flow}
MEM=${FLOW_MEM:-128}
KERNEL=${FLOW_KERNEL:-/guest/vmlinuz}
RAMDISK=${FLOW_RAMDISK:-/guest/initrd.gz}
GUEST_CHECKS=${FLOW_GUEST_CHECKS:-1}
CONSOLE=${FLOW_CONSOLE_LOG:-/var/log/xen/console/guest-$VM.log}
HOST=$(hostname)

T0=$(date +%s)
say() { echo "FLOW +$(($(date +%s) - T0))s: $*"; }

# Every role reads its settings from XENFT_* variables, as an operator's
# systemd units would set them.
export XENFT_BUS_URLS="nats://127.0.0.1:$PORT"
export XENFT_STORE_BACKEND=dir XENFT_STORE_DIR="$W/images"
export XENFT_LOG_JSON=false
# Checkpoints only on demand, so the one the step takes is the one restored.
export XENFT_SUPERVISOR_CHECKPOINT_INTERVAL=0
# JetStream reserves a stream's max_bytes on its data directory's file
# system: the default 1 GiB event stream does not fit the tmpfs ("insufficient
# storage resources available"), so the stream and the server get less.
export XENFT_BUS_STREAM_MAX_BYTES=67108864 XENFT_SERVER_MAX_STORE=268435456

PIDS=""
ROLES="server agent detector supervisor events"

stop_all() {
	# One at a time, in the reverse order of their start (PIDS is kept that
	# way), so that no role sees another go away while it still acts: the
	# supervisor stops before the agent, the agent before the server. Each
	# gets 15 s after SIGTERM, then SIGKILL.
	for p in $PIDS; do
		kill -TERM "$p" 2>/dev/null
		i=0
		while kill -0 "$p" 2>/dev/null && [ $i -lt 15 ]; do sleep 1; i=$((i + 1)); done
		kill -0 "$p" 2>/dev/null && echo "FLOW: pid $p ignored SIGTERM for 15s; killing it" && kill -KILL "$p"
		wait "$p" 2>/dev/null
	done
	PIDS=""
	"$XL" destroy "$VM" >/dev/null 2>&1
	# Give dom0's memory back to the steps after this one.
	[ "${FLOW_TMPFS:-1}" = 1 ] && umount "$W" 2>/dev/null
}

dump() {
	for r in $ROLES; do
		[ -f "$W/$r.log" ] || continue
		# A crash's first lines say what it was; its tail is a goroutine dump.
		if grep -q -E '^(panic: |fatal error: |unexpected fault|SIG[A-Z]+: )' "$W/$r.log"; then
			echo "----- $r.log: CRASHED"
			grep -m 1 -A 12 -E '^(panic: |fatal error: |unexpected fault|SIG[A-Z]+: )' "$W/$r.log"
		fi
		echo "----- $r.log (last 30 lines)"
		tail -n 30 "$W/$r.log"
	done
	echo "----- xl list"
	"$XL" list 2>&1
	if [ "$GUEST_CHECKS" = 1 ] && [ -f "$CONSOLE" ]; then
		echo "----- guest console (last 10 lines)"
		tail -n 10 "$CONSOLE"
	fi
	echo "-----"
}

fail() {
	say "FAILED: $*"
	dump
	stop_all
	exit 1
}

# waitfor SECS WHAT COMMAND...: run COMMAND every second until it succeeds;
# fail the step when SECS pass first.
waitfor() {
	secs=$1 what=$2
	shift 2
	end=$(($(date +%s) + secs))
	until "$@" >/dev/null 2>&1; do
		[ "$(date +%s)" -lt $end ] || fail "$what: not within ${secs}s"
		sleep 1
	done
	say "$what"
}

# start ROLE LEVEL ARGS...: run `xenft ARGS...` in the background at log
# level LEVEL, logging to ROLE.log.
start() {
	r=$1 level=$2
	shift 2
	XENFT_LOG_LEVEL=$level "$XENFT" "$@" >"$W/$r.log" 2>&1 &
	PIDS="$! $PIDS"
	say "started $r (pid $!): xenft $*"
}

domid() { "$XL" domid "$VM" 2>/dev/null; }
# state: the State column of `xl list` for the domU (e.g. -b----, r-----).
state() { "$XL" list "$VM" 2>/dev/null | awk -v n="$VM" '$1 == n { print $5 }'; }
running() { case $(state) in r* | ?b*) return 0 ;; esac; return 1; }
restored() { d=$(domid) && [ -n "$d" ] && [ "$d" != "$DOMID0" ] && running; }
has_event() { grep -q " $1 " "$W/events.log"; }
guest_ready() { [ "$(xenstore-read "/local/domain/$(domid)/control/feature-suspend" 2>/dev/null)" = 1 ]; }
ticks_past() { # ticks_past N: the console shows a tick after its first N lines
	tail -n +$(($1 + 1)) "$CONSOLE" 2>/dev/null | grep -q '^tick '
}
last_tick() { grep '^tick ' "$CONSOLE" | tail -n 1 | awk '{print $2}'; }
# ticks_below N C: the first tick numbered below C after the console's first
# N lines (lines of the crashed copy may still arrive after N, numbered C and
# up; the restored copy counts on from its checkpoint, below C).
ticks_below() {
	tail -n +$(($1 + 1)) "$CONSOLE" 2>/dev/null | awk -v c="$2" '$1 == "tick" && $2 + 0 < c + 0 { print $2; f = 1; exit } END { exit !f }'
}
checkpointed() {
	out=$("$XENFT" checkpoint now --group "$VM" --wait --timeout 300s 2>&1)
	rc=$?
	echo "$out" | sed 's/^/  /'
	return $rc
}

[ -x "$XENFT" ] || fail "no xenft binary at $XENFT"
mkdir -p "$W"
if [ "${FLOW_TMPFS:-1}" = 1 ]; then
	mount -t tmpfs -o size=1024m tmpfs "$W" || fail "cannot mount a tmpfs on $W"
fi
mkdir -p "$W/nats" "$W/images" "$W/spool" "$W/restore"
say "host $HOST, xenft $("$XENFT" version 2>&1 | head -n 1), work dir $W"
df -m "$W"; free -m

# ---- the roles, each its own process
start server info server --data "$W/nats" --host 127.0.0.1 --port "$PORT"
waitfor 120 "the bus answers" "$XENFT" checkpoint list
# The agent and the supervisor log at debug: their timings (capture, fetch,
# restore) and every command are then in the CI log.
start agent debug agent --driver xl --xl-path "$XL" --spool "$W/spool" --restore-spool "$W/restore" --state-dir "$W/state"
start detector info detector --id det-1
start supervisor debug supervisor --id sup-1
start events info events tail --since 24h
waitfor 120 "the supervisor leads" grep -q "supervisor.leader" "$W/events.log"
waitfor 120 "the agent's host $HOST is in the supervisor's view" sh -c "'$XENFT' status | grep -q '^ *$HOST .*healthy'"

# ---- a tiny PV domU, created with real xl and registered
cat >"$W/$VM.cfg" <<EOF
name = "$VM"
type = "pv"
kernel = "$KERNEL"
ramdisk = "$RAMDISK"
extra = "console=hvc0"
memory = $MEM
vcpus = 1
on_crash = "preserve"
EOF
"$XL" destroy "$VM" >/dev/null 2>&1
out=$("$XL" create "$W/$VM.cfg" 2>&1) || fail "xl create $W/$VM.cfg: $out"
DOMID0=$(domid) || fail "xl domid $VM after create"
say "xl create: $VM is domain $DOMID0"
if [ "$GUEST_CHECKS" = 1 ]; then
	# A PV guest can be saved only once its kernel answers suspend requests.
	waitfor 120 "the guest's kernel is up (control/feature-suspend)" guest_ready
	waitfor 60 "the guest ticks on its console" ticks_past 0
fi
out=$("$XENFT" vm add "$VM" --host "$HOST" --memory "$MEM" --policy restore --config "$W/$VM.cfg" 2>&1) || fail "vm add: $out"
say "$out"

# ---- a checkpoint, committed
end=$(($(date +%s) + 360))
until checkpointed; do
	[ "$(date +%s)" -lt $end ] || fail "no checkpoint of $VM committed within 360s"
	sleep 3
done
"$XENFT" checkpoint list --group "$VM" | tee "$W/checkpoints.txt"
grep -q "^$VM .* committed " "$W/checkpoints.txt" || fail "checkpoint list shows no committed checkpoint of $VM"
running || fail "$VM is not running after the checkpoint (state $(state))"
say "$VM runs again after its checkpoint (state $(state))"

# ---- a crash: the domU dies without xenft's command
# Let the guest run past the checkpoint, so that a rollback shows on its
# console, and the agent's watcher list it once more after the capture (a
# domain that vanishes within one watch interval of a command of ours is not
# reported as vm.failed; the supervisor then finds it missing from the beats).
sleep 8
if [ "$GUEST_CHECKS" = 1 ]; then
	TICK_CRASH=$(last_tick)
	MARK=$(wc -l <"$CONSOLE")
fi
say "xl destroy $VM (domain $DOMID0): the crash"
"$XL" destroy "$VM" || fail "xl destroy $VM"

# ---- the supervisor restores it through the agent's real xl restore
waitfor 120 "the agent reported vm.failed" has_event vm.failed
waitfor 120 "the supervisor is restoring it (vm.restarting)" has_event vm.restarting
waitfor 420 "xl list shows $VM running again" restored
say "$VM is domain $(domid) now, state $(state)"
waitfor 60 "vm.restarted is in the stream" has_event vm.restarted
grep ' vm.restarted ' "$W/events.log" | grep -q 'checkpoint_seq=1 cold_start=false' ||
	fail "vm.restarted does not say restored from checkpoint 1"
# The agent reported the crash and nothing else: not the domain its own
# restore built, which xl lists as "(null)" until it has its name.
n=$(grep -c 'vm failed' "$W/agent.log")
[ "$n" = 1 ] || fail "the agent reported $n VM failures, want 1 (the crash): $(grep 'vm failed' "$W/agent.log")"
"$XL" list

if [ "$GUEST_CHECKS" = 1 ]; then
	# The restored guest continues from the checkpoint: no second boot, and
	# its tick counter resumes below where the crashed copy had got to.
	waitfor 60 "the restored guest counts on from its checkpoint, below tick $TICK_CRASH" ticks_below "$MARK" "$TICK_CRASH"
	tail -n +$((MARK + 1)) "$CONSOLE" | grep -q 'GUEST-UP' && fail "the guest booted again instead of resuming from its checkpoint"
	say "the guest resumed from its checkpoint without booting again: the crashed copy had printed tick $TICK_CRASH, the restored one printed tick $(ticks_below "$MARK" "$TICK_CRASH")"
	echo "----- guest console after the crash"
	tail -n +$((MARK + 1)) "$CONSOLE"
fi

echo "----- xenft status"
"$XENFT" status
for r in agent supervisor; do
	echo "----- $r.log"
	cat "$W/$r.log"
done
echo "----- events (xenft events tail --since 24h)"
cat "$W/events.log"
echo "-----"
stop_all
say "passed"
exit 0
