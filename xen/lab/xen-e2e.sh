#!/bin/bash
# xen-e2e.sh - xenft's real-Xen lane (`make xen-e2e`).
#
# This machine has no Xen, and QEMU cannot use its KVM, but Debian's Xen 4.17
# boots under QEMU's software emulation (TCG) with a busybox initramfs as
# dom0, and real xl runs small PV guests there. This script builds that
# machine from Debian packages (downloaded, never installed on the host),
# puts xenft's statically linked test binary and xenft itself into dom0,
# boots it, runs the steps below inside dom0 and exits 0 only if all of them
# passed.
#
# Steps inside dom0, in order, each reported as "XENFT-STEP <name> rc=<n>":
#   xl-driver   the xl driver's TestRealXL against the real toolstack
#   capture     (CAPTURE=1) record real xl output for xen/testdata/lab
#   flow        dom0-flow.sh: the single-host flow, every role of xenft a
#               process in dom0 (server, agent --driver xl, detector,
#               supervisor, events tail); a domU checkpointed, destroyed as a
#               crash and restored by the supervisor with real xl restore;
#               its events printed
#   <hooks>     every executable *.sh of $DOM0_STEPS, in name order
#
# Settings (environment):
#   WORK=dir          work and cache directory (default /tmp/xenft-xen-e2e);
#                     downloaded packages are reused between runs
#   TIMEOUT=secs      limit for boot + all dom0 steps (default 900)
#   DOM0_STEPS=dir    extra dom0 steps (executable *.sh), copied to /xenft/steps.d
#   EXTRA_DIR=dir     files copied into dom0 under /xenft/extra
#   CAPTURE=1         also run dom0-capture-xl.sh; decoded into $WORK/captures
#   GO=go             the Go tool
#   QEMU_MEM=4096 QEMU_CPU=max,-smap,-smep,-rdtscp DOM0_MEM=1536M
#
# Needs root for apt-get (CI runs it as root on a clean Debian 12 with Go),
# ~4 GB of RAM for QEMU and ~250 MB of disk in $WORK. The guest has no
# network device (-nic none): everything in dom0 talks over its loopback.
# Output: the dom0 part of the serial console on stdout; the whole console
# in $WORK/serial.log.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
WORK=${WORK:-/tmp/xenft-xen-e2e}
TIMEOUT=${TIMEOUT:-900}
GO=${GO:-go}
QEMU_CPU=${QEMU_CPU:-max,-smap,-smep,-rdtscp} # without -smap,-smep dom0 faults at boot
QEMU_MEM=${QEMU_MEM:-4096}
DOM0_MEM=${DOM0_MEM:-1536M}
T0=$(date +%s)
say() { echo "[xen-e2e +$(($(date +%s) - T0))s] $*"; }
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
cd "$WORK"

# ---- 1. host tools: QEMU, a static busybox for both initramfs, cpio
export DEBIAN_FRONTEND=noninteractive
if ! command -v qemu-system-x86_64 >/dev/null || [ ! -x /bin/busybox ] || ! command -v cpio >/dev/null; then
  say "installing qemu-system-x86 busybox-static cpio"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends qemu-system-x86 busybox-static cpio >/dev/null
fi

# ---- 2. Xen 4.17 and a kernel, from Debian's archive, unpacked only
KPKG=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
KVER=${KPKG#linux-image-}
PKGS="$KPKG xen-hypervisor-4.17-amd64 xen-utils-4.17 xen-utils-common xenstore-utils libxencall1 libxenevtchn1
 libxenforeignmemory1 libxengnttab1 libxenmisc4.17 libxenstore4 libxentoollog1 libxendevicemodel1 libxenhypfs1
 libxentoolcore1 libyajl2"
mkdir -p debs
if [ ! -f debs/.complete ] || [ "$(cat debs/.complete)" != "$PKGS" ]; then
  say "downloading Xen 4.17 and $KPKG"
  rm -f debs/*.deb
  (cd debs && chown _apt . 2>/dev/null || true; apt-get download -qq $PKGS)
  echo "$PKGS" > debs/.complete
fi
rm -rf stage && mkdir stage
for d in debs/*.deb; do
  case $d in
  */linux-image-*) # the kernel and its Xen modules only; the rest of the package is ~400 MB
    dpkg-deb --fsys-tarfile "$d" | tar -C stage -x --wildcards "./boot/vmlinuz-*" "./lib/modules/*/kernel/drivers/xen/*" ;;
  *) dpkg-deb -x "$d" stage ;;
  esac
done
zcat stage/boot/xen-4.17-amd64.gz > xen.elf # QEMU's multiboot loader wants the plain ELF
VMLINUZ=stage/boot/vmlinuz-$KVER

# ---- 3. the guest: the same kernel and a busybox initramfs that ticks
say "building the guest initramfs"
rm -rf guest && mkdir -p guest/{bin,sbin,proc,sys,dev}
cp /bin/busybox guest/bin/
for a in sh mount echo cat sleep poweroff reboot grep; do ln -s busybox guest/bin/$a; done
for a in poweroff reboot; do ln -s ../bin/busybox guest/sbin/$a; done
cat > guest/init <<'EOF'
#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
# xl shutdown ends up as SIGUSR2 (poweroff) or SIGUSR1 (reboot) to init
trap 'poweroff -f' USR2 TERM
trap 'reboot -f' USR1
echo "GUEST-UP $(cat /proc/uptime)"
i=0
while true; do i=$((i+1)); echo "tick $i $(cat /proc/uptime)"; sleep 2; done
EOF
chmod +x guest/init
(cd guest && find . | cpio -o -H newc 2>/dev/null | gzip -1) > guest-initrd.gz

# ---- 4. dom0: busybox, the Xen toolstack with its libraries, xenft's test binary
say "building xen.test (static) and the dom0 initramfs"
R=dom0 && rm -rf $R
mkdir -p $R/{bin,sbin,proc,sys,dev,tmp,etc,root,run,lib64,lib/x86_64-linux-gnu,lib/modules/xen,usr/lib,usr/sbin,usr/bin,guest} \
  $R/var/{lib/xen/images,log/xen/console,lib/xenstored,run/xen,run/xenstored} $R/xenft/{steps.d,extra}
cp /bin/busybox $R/bin/
for a in $($R/bin/busybox --list); do [ -e $R/bin/$a ] || ln -s busybox $R/bin/$a; done
cp -a stage/usr/lib/xen-4.17 stage/usr/lib/xen-common $R/usr/lib/
rm -f $R/usr/lib/xen-4.17/bin/oxenstored # the C xenstored is enough
cp -a stage/usr/lib/x86_64-linux-gnu/* $R/lib/x86_64-linux-gnu/
ln -s ../../lib/x86_64-linux-gnu $R/usr/lib/x86_64-linux-gnu
cp -a stage/usr/sbin/* $R/usr/sbin/
cp -a stage/usr/bin/xenstore* $R/usr/bin/
cp -a stage/etc/xen $R/etc/
# The host's libraries the toolstack links to. libgcc_s is dlopen()ed by
# glibc's pthread_cancel: without it xl create/save/restore abort at the end.
for l in libc.so.6 libm.so.6 liblzma.so.5 libncurses.so.6 libtinfo.so.6 libuuid.so.1 libz.so.1 libzstd.so.1 libgcc_s.so.1; do
  cp -L /lib/x86_64-linux-gnu/$l $R/lib/x86_64-linux-gnu/
done
cp -L /lib64/ld-linux-x86-64.so.2 $R/lib64/
for m in xen-evtchn xen-gntdev xen-gntalloc xen-privcmd xenfs/xenfs; do
  cp stage/lib/modules/$KVER/kernel/drivers/xen/$m.ko $R/lib/modules/xen/
done
cp "$VMLINUZ" $R/guest/vmlinuz
cp guest-initrd.gz $R/guest/initrd.gz
for n in tiny tiny2; do
  cat > $R/etc/xen/$n.cfg <<EOF
name = "$n"
type = "pv"
kernel = "/guest/vmlinuz"
ramdisk = "/guest/initrd.gz"
extra = "console=hvc0"
memory = 128
vcpus = 1
on_crash = "preserve"
EOF
done
(cd "$REPO" && CGO_ENABLED=0 "$GO" test -c -o "$WORK/$R/xenft/xen.test" ./xen)
(cd "$REPO" && CGO_ENABLED=0 "$GO" build -o "$WORK/$R/xenft/xenft" ./cmd/xenft)
cp "$REPO/xen/lab/dom0-flow.sh" $R/xenft/flow.sh
if [ -n "${CAPTURE:-}" ]; then cp "$REPO/xen/lab/dom0-capture-xl.sh" $R/xenft/capture.sh; fi
if [ -n "${DOM0_STEPS:-}" ]; then cp "$DOM0_STEPS"/*.sh $R/xenft/steps.d/; fi
if [ -n "${EXTRA_DIR:-}" ]; then cp -a "$EXTRA_DIR"/. $R/xenft/extra/; fi

cat > $R/xenft/run.sh <<'EOF'
#!/bin/sh
# The dom0 steps. Each prints XENFT-STEP <name> rc=<n>; the last line is
# XENFT-E2E-DONE rc=<n>, 0 only if every step passed.
up() { cut -d' ' -f1 /proc/uptime; }
rc=0
step() {
  name=$1; shift
  echo "XENFT-STEP-BEGIN $name uptime=$(up)"
  "$@"
  r=$?
  echo "XENFT-STEP $name rc=$r uptime=$(up)"
  [ $r -eq 0 ] || rc=1
}
step xl-driver env XENFT_REAL_XL=1 /xenft/xen.test -test.run '^TestRealXL$' -test.v -test.count=1 -test.timeout=600s
[ -x /xenft/capture.sh ] && step capture /xenft/capture.sh
step flow /xenft/flow.sh
for s in /xenft/steps.d/*.sh; do
  [ -x "$s" ] && step "$(basename "$s" .sh)" "$s"
done
echo "XENFT-E2E-DONE rc=$rc"
EOF
chmod +x $R/xenft/run.sh $R/xenft/flow.sh $R/xenft/steps.d/*.sh 2>/dev/null || true

cat > $R/init <<'EOF'
#!/bin/sh
export PATH=/usr/sbin:/usr/bin:/sbin:/bin:/usr/lib/xen-4.17/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /dev/pts /dev/shm && mount -t devpts devpts /dev/pts && mount -t tmpfs tmpfs /dev/shm
ip link set lo up 2>/dev/null
hostname dom0 # the agent's default host name (xl info shows it too)
for m in xen-evtchn xen-gntdev xen-gntalloc xen-privcmd xenfs; do insmod /lib/modules/xen/$m.ko || echo "insmod $m failed"; done
mount -t xenfs xenfs /proc/xen
/usr/lib/xen-4.17/bin/xenstored --pid-file /var/run/xenstored.pid
/usr/lib/xen-4.17/bin/xen-init-dom0
/usr/lib/xen-4.17/bin/xenconsoled --pid-file=/var/run/xenconsoled.pid --log=guest --log-dir=/var/log/xen/console
echo "XENFT-DOM0-BEGIN uptime=$(cut -d' ' -f1 /proc/uptime)"
/xenft/run.sh 2>&1
poweroff -f
EOF
chmod +x $R/init
(cd $R && find . | cpio -o -H newc 2>/dev/null) > dom0-initrd.cpio
say "dom0 initramfs: $(du -h dom0-initrd.cpio | cut -f1)"

# ---- 5. boot Xen under QEMU and follow the serial console
XEN_CMD="console=com1 com1=115200,8n1 dom0_mem=$DOM0_MEM,max:$DOM0_MEM dom0_max_vcpus=1 loglvl=all guest_loglvl=all noreboot"
D0_CMD="console=hvc0 earlyprintk=xen"
say "booting Xen 4.17 under QEMU (TCG), timeout ${TIMEOUT}s; console in $WORK/serial.log"
rm -f serial.log qemu.pid
start=$(date +%s.%N)
# Multiboot modules are comma separated ("kernel args,initrd").
qemu-system-x86_64 -accel tcg,thread=multi -cpu "$QEMU_CPU" -smp 2 -m "$QEMU_MEM" -nographic -no-reboot -nic none \
  -kernel xen.elf -append "$XEN_CMD" -initrd "$VMLINUZ $D0_CMD,dom0-initrd.cpio" -pidfile "$WORK/qemu.pid" </dev/null 2>&1 |
  while IFS= read -r line; do
    printf '[%7.2f] %s\n' "$(echo "$(date +%s.%N) - $start" | bc)" "${line//$'\r'/}"
  done >serial.log &
PIPE=$!
QPID=
stop_qemu() { [ -n "$QPID" ] && kill "$QPID" 2>/dev/null || true; }
trap stop_qemu EXIT
for _ in $(seq 50); do [ -s qemu.pid ] && break; sleep 0.1; done
QPID=$(cat qemu.pid)
deadline=$(($(date +%s) + TIMEOUT))
result=timeout
while kill -0 "$QPID" 2>/dev/null; do
  if grep -q 'XENFT-E2E-DONE' serial.log; then result=done; break; fi
  if grep -q -E 'Hardware Dom0 crashed|Panic on CPU|Kernel panic' serial.log; then result=crash; break; fi
  if [ "$(date +%s)" -ge $deadline ]; then break; fi
  sleep 1
done
if grep -q 'XENFT-E2E-DONE' serial.log; then result=done; fi
sleep 1
stop_qemu
wait $PIPE 2>/dev/null || true

# ---- 6. report
echo "----- dom0 output (from $WORK/serial.log) -----"
sed -n '/XENFT-DOM0-BEGIN/,/XENFT-E2E-DONE/p' serial.log | grep -v -E '^\[ *[0-9.]+\] (\(XEN\)|\[ *[0-9]+\.[0-9]+\] )' |
  grep -v -E 'CAPTURE-|^\[ *[0-9.]+\] [A-Za-z0-9+/=]{20,}$' || true
echo "-----"
if [ -n "${CAPTURE:-}" ]; then
  "$REPO/xen/lab/decode-captures.sh" serial.log captures && say "captures decoded into $WORK/captures"
fi
say "result: $result; wall time $(($(date +%s) - T0))s"
if [ $result != done ]; then
  echo "last console lines:"
  tail -n 40 serial.log
fi
grep -q 'XENFT-E2E-DONE rc=0' serial.log
