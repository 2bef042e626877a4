#!/bin/bash
# decode-captures.sh SERIAL_LOG OUT_DIR - turn the base64 blocks that
# dom0-capture-xl.sh printed on the serial console back into files in the
# format of xen/testdata/lab: "$ cmd", "[exit code: N]", "-- stdout --",
# stdout, "-- stderr --", stderr. Console lines that are not base64 (kernel
# or Xen messages printed in between) are skipped.
set -euo pipefail
log=$1 out=$2
mkdir -p "$out"
n= cmd= rc= sect= ob= eb=
while IFS= read -r line; do
  line=${line#\[*\] } # the timestamp xen-e2e.sh puts in front
  case $line in
  "CAPTURE-BEGIN "*)
    n=${line#CAPTURE-BEGIN }; n=${n%% *}
    rc=${line#* rc=}; rc=${rc%% *}
    cmd=${line#* cmd: }
    sect= ob= eb= ;;
  STDOUT-B64) sect=out ;;
  STDERR-B64) sect=err ;;
  "CAPTURE-END "*)
    slug=$(echo "$cmd" | tr 'A-Z' 'a-z' | sed -e 's/[^a-z0-9]\{1,\}/-/g' -e 's/-var-lib-xen-images-/-/g' \
      -e 's/-etc-xen-/-/g' -e 's/^-//' -e 's/-$//' | cut -c1-40 | sed 's/-$//')
    f=$(printf '%s/%02d-%s.txt' "$out" "$n" "$slug")
    { printf '$ %s\n[exit code: %s]\n-- stdout --\n' "$cmd" "$rc"
      printf '%s' "$ob" | base64 -d
      printf -- '-- stderr --\n'
      printf '%s' "$eb" | base64 -d; } >"$f"
    n= ;;
  *)
    [ -n "$n" ] && [ -n "$sect" ] || continue
    [[ $line =~ ^[A-Za-z0-9+/=]+$ ]] || continue
    if [ $sect = out ]; then ob+=$line; else eb+=$line; fi ;;
  esac
done <"$log"
