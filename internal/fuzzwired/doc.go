// Package fuzzwired holds one test: every Fuzz function of the repository
// is run by `make fuzz`. A fuzz target that the Makefile does not name runs
// only as a unit test over its seeds, so a new one is easily forgotten; the
// test fails naming it and the line to add. It has no code of its own.
package fuzzwired
