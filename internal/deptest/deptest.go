// Package deptest serves the tests that hold a package's dependency graph to
// what the design says (tailscale's tstest/deptest): the decision core
// imports no I/O, the supervisor no xen driver, the command protocol nothing
// of the project. It runs the go command, so only tests may use it.
package deptest

import (
	"os/exec"
	"strings"
	"testing"
)

// Deps lists pkg and every package it depends on, as `go list -deps` does:
// imports of its tests are not among them. It fails the test when go list
// fails or lists too little to be a real answer.
func Deps(t testing.TB, pkg string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", pkg).CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 5 {
		t.Fatalf("go list -deps %s listed only %v", pkg, deps)
	}
	return deps
}
