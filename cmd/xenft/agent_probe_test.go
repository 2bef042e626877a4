package main

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/xenft/xenft/detector"
	"github.com/xenft/xenft/events/eventstest"
)

// `xenft agent` answers the detectors' probes on <prefix>.hb.probe.<host>
// with its host, the incarnation its beats carry and a beat's number.
func TestAgentAnswersProbes(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an agent process; skipped with -short")
	}
	c := newProcCluster(t)
	c.start("n1", append(c.xlEnv("n1"), "XENFT_AGENT_STATE_DIR="+filepath.Join(c.dir, "state"), "XENFT_AGENT_CHECKPOINT_SPOOL_DIR="+filepath.Join(c.dir, "spool"),
		"XENFT_AGENT_RESTARTER_SPOOL_DIR="+filepath.Join(c.dir, "restore")),
		"agent", "--host", "n1", "--driver", "xl", "--xl-path", c.fakeXL)

	beats, err := c.bus.Conn().SubscribeSync(c.bus.Subjects().Heartbeat("n1"))
	if err != nil {
		t.Fatal(err)
	}
	msg, err := beats.NextMsg(30 * time.Second)
	if err != nil {
		t.Fatalf("no beat from the agent: %v", err)
	}
	hb, err := detector.DecodeHeartbeat(msg.Data)
	if err != nil {
		t.Fatal(err)
	}
	var r detector.ProbeReply
	eventstest.Eventually(t, 10*time.Second, func() bool {
		m, err := c.bus.Conn().Request(c.bus.Subjects().Probe("n1"), nil, time.Second)
		if err != nil {
			return false // the responder may subscribe a moment after the first beat
		}
		r, err = detector.DecodeProbeReply(m.Data)
		return err == nil
	}, "the agent does not answer probes")
	if r.Host != "n1" || r.Incarnation != hb.Incarnation || r.Seq < hb.Seq {
		t.Errorf("probe reply %+v, want host n1, incarnation %s, seq >= %d", r, hb.Incarnation, hb.Seq)
	}
}
