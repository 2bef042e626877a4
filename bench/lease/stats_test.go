package main

import (
	"testing"
	"time"
)

func TestLeaseAgeMax(t *testing.T) {
	r := func(sentMs, latMs int64, failed bool) renewal {
		return renewal{SentUs: sentMs * 1000, LatUs: latMs * 1000, Failed: failed}
	}
	for _, tc := range []struct {
		name   string
		rs     []renewal
		window time.Duration
		want   time.Duration
	}{
		{"none acknowledged: the whole window", nil, 3 * time.Second, 3 * time.Second},
		{"fast renewals: about one interval",
			[]renewal{r(0, 1, false), r(500, 1, false), r(1000, 1, false)}, 1200 * time.Millisecond, 501 * time.Millisecond},
		{"a slow put is bridged by a later fast one",
			[]renewal{r(0, 1, false), r(500, 3000, false), r(1000, 1, false), r(1500, 1, false)}, 2 * time.Second, 1001 * time.Millisecond},
		{"a failed put does not renew",
			[]renewal{r(0, 1, false), r(500, 10000, true), r(1000, 1, false)}, 1500 * time.Millisecond, 1001 * time.Millisecond},
		{"an ack after the window counts only to its end",
			[]renewal{r(0, 1, false), r(500, 5000, false)}, 2 * time.Second, 2 * time.Second},
		{"late acks in send order: the age is from the newest send",
			[]renewal{r(0, 2000, false), r(500, 1600, false)}, 2500 * time.Millisecond, 2100 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := leaseAgeMax(tc.rs, tc.window); got != tc.want {
				t.Errorf("leaseAgeMax = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestSendGapMax(t *testing.T) {
	rs := []renewal{{SentUs: 1_500_000}, {SentUs: 2_000}, {SentUs: 500_000}}
	if got, want := sendGapMax(rs), time.Second; got != want {
		t.Errorf("sendGapMax = %s, want %s", got, want)
	}
	if got := sendGapMax(nil); got != 0 {
		t.Errorf("sendGapMax(nil) = %s, want 0", got)
	}
}

func TestSummarize(t *testing.T) {
	rep := childReport{Skipped: []int{0, 2}}
	for i := 1; i <= 1000; i++ {
		rep.Renewals = append(rep.Renewals, renewal{Host: i % 2, SentUs: int64(i) * 1000, LatUs: int64(i) * 5000, Failed: i == 1000})
	}
	s := summarize(rep, 10*time.Second, func(int) bool { return true })
	if s.Count != 1000 || s.Failed != 1 || s.Skipped != 2 || s.Hosts != 2 {
		t.Errorf("count %d failed %d skipped %d hosts %d, want 1000 1 2 2", s.Count, s.Failed, s.Skipped, s.Hosts)
	}
	if s.P50 != 2500 || s.P99 != 4950 || s.P999 != 4995 || s.Max != 5000 {
		t.Errorf("p50 %v p99 %v p99.9 %v max %v, want 2500 4950 4995 5000", s.P50, s.P99, s.P999, s.Max)
	}
	if s.Over1s != 800 || s.Over2s != 600 || s.Over4s != 200 {
		t.Errorf("over 1s/2s/4s %d/%d/%d, want 800/600/200", s.Over1s, s.Over2s, s.Over4s)
	}
	odd := summarize(rep, 10*time.Second, func(h int) bool { return h == 1 })
	if odd.Count != 500 || odd.Skipped != 2 || odd.Hosts != 1 {
		t.Errorf("host 1: count %d skipped %d hosts %d, want 500 2 1", odd.Count, odd.Skipped, odd.Hosts)
	}
}
