package main

import (
	"net"
	"strconv"
	"strings"
	"testing"
)

// A port the operator named is the port they get, or a one-line error at
// once; only the default port gives way to a free one (the demo prints
// its URL either way).
func TestUpRefusesABusyPortItWasToldToUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	data := t.TempDir()
	r := xenft(t, nil, "up", "--json", "--port", port, "--data", data)
	if r.code != 1 || !strings.Contains(r.stderr, "server.port "+port) || !strings.Contains(r.stderr, "address already in use") ||
		strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 || r.stdout != "" {
		t.Fatalf("up on busy port %s: exit %d, stderr %q, stdout %q; want exit 1 and one line naming server.port", port, r.code, r.stderr, r.stdout)
	}
}
