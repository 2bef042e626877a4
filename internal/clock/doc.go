// Package clock is how xenft's packages read the time and wait: a
// clockwork.Clock, the machine's by default, which tests replace with a
// clockwork.FakeClock to drive lease, grant and self-fence timing to the
// millisecond. It adds the one thing clockwork lacks for us: contexts whose
// deadline follows the clock (WithTimeout, WithDeadline), usable with the
// NATS client.
package clock
