#!/bin/sh
# Prints a finding, then crashes: the run does not count.
echo '{"host":"n5","severity":"fatal","reason":"should be ignored"}'
echo 'segmentation fault' >&2
exit 3
