#!/bin/sh
D=/var/lib/xen/images
xl create /etc/xen/tiny.cfg
sleep 4
echo "=== PROBE: xl pause then xl save -p"
xl pause tiny; xl list tiny
t0=$(cut -d' ' -f1 /proc/uptime)
timeout 100 xl save -p tiny $D/paused.img; rc=$?
t1=$(cut -d' ' -f1 /proc/uptime)
echo "=== PROBE-RESULT save-of-paused rc=$rc t0=$t0 t1=$t1"
xl list tiny
ls -la $D
echo "=== PROBE: unpause and save -p of running"
xl unpause tiny 2>&1; xl list tiny
timeout 100 xl save -p tiny $D/running.img; echo "=== PROBE-RESULT save-of-running rc=$?"
xl list tiny
xl destroy tiny
exit 0
