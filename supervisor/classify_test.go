package supervisor

import (
	"errors"
	"testing"

	"github.com/xenft/xenft/events"
	"github.com/xenft/xenft/supervisor/core"
)

// TestAgentErrorCodesMapToCoreOutcomes: every code an agent answers with
// reaches the core as the outcome core.Outcome documents. not_ready (a
// self-fenced host awaiting reconciliation) must stay apart from retryable:
// only then does the core not count it as an attempt of the VM's.
func TestAgentErrorCodesMapToCoreOutcomes(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want core.Outcome
	}{
		{nil, core.OutcomeOK},
		{&events.CommandError{Code: events.CodeRetryable, Message: "toolstack busy"}, core.OutcomeRetryable},
		{&events.CommandError{Code: events.CodeNotReady, Message: "n1 self-fenced"}, core.OutcomeHostNotReady},
		{&events.CommandError{Code: events.CodePermanent, Message: "no memory"}, core.OutcomePermanent},
		{&events.CommandError{Code: events.CodeBadRequest, Message: "no vm"}, core.OutcomePermanent},
		{&events.CommandError{Code: events.CodeCorrupt, Message: "sha256"}, core.OutcomeImageCorrupt},
		{&events.CommandError{Code: events.CodeStaleEpoch, Message: "newer term"}, ""},
		{errors.New("nats: timeout"), core.OutcomeRetryable},
	} {
		if got, _ := classify(tc.err); got != tc.want {
			t.Errorf("classify(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}
