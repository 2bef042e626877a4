#!/bin/sh
# dom0-capture-xl.sh - runs INSIDE dom0 of the nested Xen lab (as a step of
# xen-e2e.sh with CAPTURE=1) and records what real xl prints, byte for byte:
# every command's stdout and stderr apart, base64 encoded so that the serial
# console cannot mangle tabs, backspaces or trailing spaces. xen-e2e.sh
# decodes the blocks into $WORK/captures in the format of xen/testdata/lab.
#
# The sequence deliberately includes the failures the xl driver must
# classify (unknown names and ids, names in use, missing, short and cut
# images, a missing directory) and the pause/save interplay: pauses nest,
# and a paused PV guest cannot be saved (xl waits 60 s for its suspend
# acknowledgement, then fails); and what a killed save leaves behind.
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
cap xl info
cap xl list
cap xl list -l
cap xl create /etc/xen/tiny.cfg
sleep 3
cap xl list
cap xl list -l
cap xl list tiny
cap xl list -l tiny
cap xl info
cap xl unpause tiny
cap xl pause tiny
cap xl pause tiny
cap xl list
cap xl unpause tiny
cap xl list tiny
cap xl save -c tiny $D/chk.img
cap xl list
cap xl save -p tiny $D/p.img
cap xl list
cap xl unpause tiny
cap xl restore -p /etc/xen/tiny2.cfg $D/chk.img
cap xl list
cap xl list -l
cap xl restore $D/p.img
cap xl create /etc/xen/tiny.cfg
cap xl list nosuch
cap xl list -l nosuch
cap xl pause nosuch
cap xl unpause nosuch
cap xl destroy nosuch
cap xl save nosuch $D/x.img
cap xl pause 99
cap xl unpause 99
cap xl destroy 99
cap xl save 99 $D/x.img
cap xl list 99
cap xl restore $D/does-not-exist.img
echo garbage > $D/garbage.img
cap xl restore $D/garbage.img
head -c 1000000 $D/chk.img > $D/trunc.img
cap xl restore -p /etc/xen/tiny2.cfg $D/trunc.img
cap xl list
cap xl save tiny /nonexistent-dir/x.img
cap xl save tiny $D/tiny.img
cap xl list
cap xl list tiny
cap xl restore $D/tiny.img
sleep 2
cap xl list
# A save killed half way (its whole process group, as the xl driver does on a
# deadline) leaves the guest suspended: State "---ss-".
setsid xl save -c tiny $D/killed.img >/dev/null 2>&1 &
sleep 0.5
kill -KILL -- -$!
sleep 1
cap xl list
cap xl list -l tiny
cap xl unpause tiny
cap xl list tiny
cap xl destroy tiny2
cap xl destroy tiny
cap xl list
cap xl list -l
cap xl bogus-subcommand
cap xl
rm -f $D/*.img
echo CAPTURE-ALL-DONE
