package supervisor_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestSupervisorNeverImportsXen enforces DESIGN.md: the supervisor acts on
// hosts only through commands to their agents, so neither it nor anything it
// imports may reach the xen drivers or exec a program.
func TestSupervisorNeverImportsXen(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/xenft/xenft/supervisor").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		if dep == "github.com/xenft/xenft/xen" || strings.HasPrefix(dep, "github.com/xenft/xenft/xen/") ||
			dep == "github.com/xenft/xenft/checkpointer/executor" || dep == "github.com/xenft/xenft/restarter" {
			t.Errorf("supervisor depends on %s", dep)
		}
	}
}
