#!/bin/sh
# Floods its output (2 MB), then exits 0.
head -c 2000000 /dev/zero
