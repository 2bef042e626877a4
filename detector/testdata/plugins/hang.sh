#!/bin/sh
# Starts a grandchild, records its pid in $1, and hangs.
sleep 300 &
# Atomically: a later run (every interval) must never leave the file empty
# for the test to read while it is rewritten.
echo $! > "$1.tmp" && mv "$1.tmp" "$1"
sleep 300
