package clock_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/xenft/xenft/internal/clock"
)

func TestAFakeClockContextEndsWhenTheClockReachesItsTimeout(t *testing.T) {
	c := clockwork.NewFakeClock()
	ctx, cancel := clock.WithTimeout(context.Background(), c, 2*time.Second)
	defer cancel()
	if ctx.Err() != nil {
		t.Fatal("done before the clock moved")
	}
	c.Advance(1999 * time.Millisecond)
	if ctx.Err() != nil {
		t.Fatal("done 1 ms before its timeout")
	}
	c.Advance(time.Millisecond)
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("not done at its timeout")
	}
	if !errors.Is(context.Cause(ctx), context.DeadlineExceeded) {
		t.Fatalf("cause %v, want DeadlineExceeded", context.Cause(ctx))
	}
}

func TestARealClockContextHasARealDeadline(t *testing.T) {
	ctx, cancel := clock.WithTimeout(context.Background(), clock.Real(), time.Hour)
	defer cancel()
	if d, ok := ctx.Deadline(); !ok || time.Until(d) < 59*time.Minute {
		t.Fatalf("deadline %v %v, want about an hour from now", d, ok)
	}
}

func TestSleepEndsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	clock.Sleep(ctx, clockwork.NewFakeClock(), time.Hour) // returns: the fake clock never moves
}
