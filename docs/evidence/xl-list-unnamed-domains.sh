#!/bin/sh
# xl-list-unnamed-domains.sh - runs in dom0 of the nested Xen lab as a
# DOM0_STEPS hook of xen/lab/xen-e2e.sh. It lists the domains (xl list, xl
# list -l) over and over while xl create, xl restore and xl destroy run, to
# see what a listing shows of a domain being built or torn down. Every
# listing is captured byte-exact (base64, as dom0-capture-xl.sh does);
# xen/lab/decode-captures.sh turns the blocks into files.
D=/var/lib/xen/images
n=0
cap() {
  n=$((n+1))
  "$@" >/tmp/cap.out 2>/tmp/cap.err
  rc=$?
  echo "CAPTURE-BEGIN $n rc=$rc cmd: $*"
  echo "STDOUT-B64"; base64 /tmp/cap.out
  echo "STDERR-B64"; base64 /tmp/cap.err
  echo "CAPTURE-END $n"
}
up() { cut -d' ' -f1 /proc/uptime; }
# during LABEL CMD...: run CMD in the background and capture listings until it ends.
during() {
  label=$1; shift
  "$@" >/tmp/bg.out 2>&1 &
  pid=$!
  echo "=== PROBE $label: $* (pid $pid) t=$(up)"
  while kill -0 $pid 2>/dev/null; do
    echo "=== PROBE $label t=$(up)"; cap xl list
    echo "=== PROBE $label t=$(up)"; cap xl list -l
  done
  wait $pid
  echo "=== PROBE-RESULT $label rc=$? t=$(up)"
  cat /tmp/bg.out
  cap xl list
}
xl destroy tiny 2>/dev/null
during create xl create /etc/xen/tiny.cfg
sleep 6
xl save tiny $D/u.img; echo "=== PROBE-RESULT save rc=$?"
during restore xl restore $D/u.img
during destroy xl destroy tiny
rm -f $D/u.img
exit 0
