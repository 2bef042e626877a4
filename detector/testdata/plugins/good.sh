#!/bin/sh
# A well-behaved plug-in: one finding per line, exit 0.
echo '{"host":"n1","severity":"degraded","reason":"corrected ECC errors above threshold"}'
echo
echo '{"host":"n2","severity":"ok","reason":"all sensors nominal"}'
