package supervisor

import (
	"errors"
	"testing"

	"github.com/xenft/xenft/events/command"
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
		{&command.Error{Code: command.CodeRetryable, Message: "toolstack busy"}, core.OutcomeRetryable},
		{&command.Error{Code: command.CodeNotReady, Message: "n1 self-fenced"}, core.OutcomeHostNotReady},
		{&command.Error{Code: command.CodePermanent, Message: "no memory"}, core.OutcomePermanent},
		{&command.Error{Code: command.CodeBadRequest, Message: "no vm"}, core.OutcomePermanent},
		{&command.Error{Code: command.CodeCorrupt, Message: "sha256"}, core.OutcomeImageCorrupt},
		{&command.Error{Code: command.CodeStaleEpoch, Message: "newer term"}, ""},
		{errors.New("nats: timeout"), core.OutcomeRetryable},
	} {
		if got, _ := classify(tc.err); got != tc.want {
			t.Errorf("classify(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}
