package command_test

import (
	"strings"
	"testing"

	"github.com/xenft/xenft/internal/deptest"
)

// The protocol is a leaf: package events imports it, so it imports nothing
// of the project.
func TestImportsNothingOfTheProject(t *testing.T) {
	for _, p := range deptest.Deps(t, ".") {
		if strings.HasPrefix(p, "github.com/xenft/xenft/") && p != "github.com/xenft/xenft/events/command" {
			t.Errorf("events/command depends on %s", p)
		}
	}
}
