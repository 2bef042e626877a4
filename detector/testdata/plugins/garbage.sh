#!/bin/sh
# Prints garbage around one valid finding, and exits 0.
echo 'hello, world'
echo '{"host":"n 3","severity":"fatal","reason":"space in host"}'
echo '{"host":"n3","severity":"broken","reason":"unknown severity"}'
echo '{"host":"n3","severity":"fatal","reason":"power supply failed"}'
