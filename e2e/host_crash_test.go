//go:build e2e

package e2e

import (
	"testing"

	"github.com/xenft/xenft/events"
)

// A host loses power: its agent, the xl calls it was running and its
// domains die at once. No fence command is configured, so the supervisor
// waits until the self-fence deadline since the host's last beat has
// passed; then both groups that had a member there (the MPI job and the
// VM on its own) roll back to their latest verified checkpoint on the
// hosts that are left, and the group that lost nothing is left alone.
func TestHostCrash(t *testing.T) {
	c := newCluster(t, options{})
	cuts := c.checkpointAll()
	from := c.story.mark()
	c.crashHost("n1")
	c.expectRollback(from, "n1", events.FenceSelf, cuts)
}
