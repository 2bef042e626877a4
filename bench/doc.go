// Package bench holds xenft's reproducible benchmarks, one program per
// directory (go run ./bench/<name>), and their results in RESULTS.md, written
// by `make bench`. Each program's last line of output is one JSON object of
// its figures, so scripts can collect them.
package bench
