package core

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/xenft/xenft/internal/deptest"
)

// The decision core must stay pure (tailscale's tstest/deptest style): the
// whole dependency graph of the package excludes the bus, the network, process
// execution, the hypervisor and the logger.
func TestDepsArePure(t *testing.T) {
	forbidden := func(p string) bool {
		switch p {
		case "net", "os/exec", "log", "log/slog", "math/rand", "math/rand/v2",
			"github.com/xenft/xenft/xen", "github.com/xenft/xenft/events",
			"github.com/hashicorp/go-hclog":
			return true
		}
		return strings.HasPrefix(p, "github.com/nats-io/") || strings.HasPrefix(p, "net/")
	}
	for _, p := range deptest.Deps(t, ".") {
		if forbidden(p) {
			t.Errorf("supervisor/core depends on %s", p)
		}
		if strings.HasPrefix(p, "github.com/xenft/xenft/") && p != "github.com/xenft/xenft/supervisor/core" {
			t.Errorf("supervisor/core depends on %s: it imports no other package of the project", p)
		}
	}
}

// The package's own code imports only what pure decisions need (fmt pulls in
// os underneath, but the core never calls it), never calls the clock or
// sleeps, and starts no goroutine.
func TestSourceIsPure(t *testing.T) {
	allowed := []string{"cmp", "errors", "fmt", "maps", "slices", "strconv", "strings", "time"}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	n := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		n++
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if !slices.Contains(allowed, p) {
				t.Errorf("%s imports %s; the core may import only %v", name, p, allowed)
			}
		}
		ast.Inspect(f, func(node ast.Node) bool {
			switch x := node.(type) {
			case *ast.GoStmt:
				t.Errorf("%s: a go statement at %s", name, fset.Position(x.Pos()))
			case *ast.SelectorExpr:
				if id, ok := x.X.(*ast.Ident); ok && id.Name == "time" {
					switch x.Sel.Name {
					case "Now", "Since", "Until", "Sleep", "After", "AfterFunc", "Tick", "NewTimer", "NewTicker":
						t.Errorf("%s: time.%s at %s: time comes from the inputs", name, x.Sel.Name, fset.Position(x.Pos()))
					}
				}
			}
			return true
		})
	}
	if n < 5 {
		t.Fatalf("found only %d source files", n)
	}
}
