//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/xenft/xenft/checkpointer"
	"github.com/xenft/xenft/events"
	"github.com/xenft/xenft/supervisor"
)

// A member's save fails during a checkpoint of the MPI group (xl save
// fails as with a full disk). The checkpoint must abort, every member runs
// on unpaused, the partial images are deleted, and when a host crashes
// afterwards the group rolls back to the checkpoint before the failed one.
func TestCheckpointSaveFailure(t *testing.T) {
	c := newCluster(t, options{})
	cuts := c.checkpointAll()
	from := c.story.mark()
	c.failNextXL("n2", "save")
	rep, err := supervisor.RequestCheckpoint(context.Background(), c.bus, "mpi", true, 60*time.Second)
	if err == nil && rep.Record != nil && rep.Record.State == checkpointer.Committed {
		t.Fatalf("checkpoint mpi/%d committed although mpi-1's save failed", rep.Record.Seq)
	}
	failed := cuts["mpi"].Seq + 1
	c.story.waitFor(from, recoveryTimeout,
		on(events.TypeCheckpointStarted, "mpi").where("seq", func(d eventData) bool { return d.Seq == failed }),
		on(events.TypeCheckpointAborted, "mpi").where("mpi-1's save failed", func(d eventData) bool {
			return d.Seq == failed && d.VM == "mpi-1" && strings.Contains(d.Reason, "xl save mpi-1")
		}))
	c.logf("checkpoint mpi/%d aborted (%v)", failed, err)
	c.story.never(from, on(events.TypeCheckpointCommitted, "mpi"))
	running := c.runsExactlyOnce(vmNames(), stableFor, recoveryTimeout)
	c.untouched(running, vmNames()...)
	c.eventually(30*time.Second, func() bool { return len(c.imagesUnder("mpi/")) == len(vmNames("mpi")) },
		func() string {
			return fmt.Sprintf("images of the aborted checkpoint left in the store: %v", c.imagesUnder("mpi/"))
		})
	if ck := c.latestVerified("mpi"); ck.Seq != cuts["mpi"].Seq {
		t.Fatalf("latest verified checkpoint of mpi is %d, want %d", ck.Seq, cuts["mpi"].Seq)
	}

	from = c.story.mark()
	c.crashHost("n3")
	c.expectRollback(from, "n3", events.FenceSelf, cuts)
}

// The image of one member in the MPI group's latest checkpoint rots in the
// store. When a host crashes, the restore of that member from the latest
// checkpoint fails verification; the whole group must fall back to the
// previous checkpoint, the latest that verifies, so that all members come
// from one cut.
func TestCorruptLatestImage(t *testing.T) {
	c := newCluster(t, options{})
	cuts := c.checkpointAll()
	latest := c.checkpoint("mpi")
	for _, m := range latest.Members {
		if m.VM == "mpi-1" {
			c.corruptImage(m.ImageKey)
		}
	}
	// What the rollback must resume from, found by reading every image.
	if ck := c.latestVerified("mpi"); ck.Seq != cuts["mpi"].Seq {
		t.Fatalf("latest verified checkpoint of mpi is %d, want %d (the one before the corrupted %d)", ck.Seq, cuts["mpi"].Seq, latest.Seq)
	}
	c.pastCut(cuts["mpi"])
	from := c.story.mark()
	c.crashHost("n1")
	c.story.waitFor(from, recoveryTimeout,
		on(events.TypeNodeFailed, "n1"),
		on(events.TypeVMRestarting, "mpi-1").fromCheckpoint(latest.Seq),
		on(events.TypeVMRestartFailed, "mpi-1").where("image corrupt", func(d eventData) bool { return strings.Contains(d.Error, "corrupt") }),
		on(events.TypeVMRestarting, "mpi-1").fromCheckpoint(cuts["mpi"].Seq),
		on(events.TypeGroupRolledBack, "mpi").fromCheckpoint(cuts["mpi"].Seq))
	c.expectRollback(from, "n1", events.FenceSelf, cuts)
}
