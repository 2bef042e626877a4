package supervisor_test

import (
	"strings"
	"testing"

	"github.com/xenft/xenft/internal/deptest"
)

// TestSupervisorNeverImportsXen enforces DESIGN.md: the supervisor acts on
// hosts only through commands to their agents, so neither it nor anything it
// imports may reach the xen drivers or exec a program.
func TestSupervisorNeverImportsXen(t *testing.T) {
	for _, dep := range deptest.Deps(t, "github.com/xenft/xenft/supervisor") {
		if dep == "github.com/xenft/xenft/xen" || strings.HasPrefix(dep, "github.com/xenft/xenft/xen/") ||
			dep == "github.com/xenft/xenft/checkpointer/executor" || dep == "github.com/xenft/xenft/restarter" {
			t.Errorf("supervisor depends on %s", dep)
		}
	}
}
