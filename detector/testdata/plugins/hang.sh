#!/bin/sh
# Starts a grandchild, records its pid in $1, and hangs.
sleep 300 &
echo $! > "$1"
sleep 300
