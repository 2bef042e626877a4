package core

import "strconv"

// Epoch names one issue of one operation: Term is the leader term that issued
// it and Seq its place in that term. Its JSON form is the bus's epoch
// ({"term":..,"seq":..}) so the shell can copy it into commands and events
// unchanged.
//
// Every command gets a fresh epoch each time it is sent, retries included, so
// a late answer to an earlier send is recognised as stale and ignored, and an
// agent that keeps the newest epoch it obeyed can refuse a command that
// arrives after a newer one.
type Epoch struct {
	Term uint64 `json:"term"`
	Seq  uint64 `json:"seq"`
}

// Less reports whether e was issued before o.
func (e Epoch) Less(o Epoch) bool {
	if e.Term != o.Term {
		return e.Term < o.Term
	}
	return e.Seq < o.Seq
}

// IsZero reports whether e is the zero epoch, which no command carries.
func (e Epoch) IsZero() bool { return e.Term == 0 && e.Seq == 0 }

// String is "term.seq", the form scripts and logs use.
func (e Epoch) String() string {
	return strconv.FormatUint(e.Term, 10) + "." + strconv.FormatUint(e.Seq, 10)
}
