package main

import (
	"math"
	"slices"
	"time"
)

// summary is the distribution of one set of renewals.
type summary struct {
	Hosts   int
	Count   int // renewals sent
	Failed  int // not acknowledged within the put timeout, or refused
	Skipped int // ticks when three were still in flight
	// Latency (sent → acknowledged or failed), ms.
	P50, P90, P99, P999, Max float64
	// Renewals that took longer than each self-fence window in use.
	Over1s, Over2s, Over4s int
	// LeaseAgeMax is the longest time during the window since the newest
	// acknowledged renewal of one host was sent (its fence loop's view), ms.
	LeaseAgeMax float64
	// SendGapMax is the longest time between two renewals of one host being
	// sent (from the window's start for the first), ms: one interval when
	// the renewal loop runs on time, more when its process is not scheduled
	// or three puts are in flight. The lease age is at least this gap.
	SendGapMax float64
}

// summarize describes the renewals of the hosts for which keep is true.
func summarize(rep childReport, window time.Duration, keep func(host int) bool) summary {
	var s summary
	byHost := map[int][]renewal{}
	var lats []time.Duration
	for _, r := range rep.Renewals {
		if !keep(r.Host) {
			continue
		}
		byHost[r.Host] = append(byHost[r.Host], r)
		lat := time.Duration(r.LatUs) * time.Microsecond
		lats = append(lats, lat)
		s.Count++
		if r.Failed {
			s.Failed++
		}
		for _, o := range []struct {
			n *int
			d time.Duration
		}{{&s.Over1s, time.Second}, {&s.Over2s, 2 * time.Second}, {&s.Over4s, 4 * time.Second}} {
			if lat > o.d {
				*o.n++
			}
		}
	}
	for h, n := range rep.Skipped {
		if keep(h) {
			s.Hosts++
			s.Skipped += n
			s.LeaseAgeMax = math.Max(s.LeaseAgeMax, ms(leaseAgeMax(byHost[h], window)))
			s.SendGapMax = math.Max(s.SendGapMax, ms(sendGapMax(byHost[h])))
		}
	}
	slices.Sort(lats)
	s.P50, s.P90, s.P99, s.P999 = ms(percentile(lats, 0.50)), ms(percentile(lats, 0.90)), ms(percentile(lats, 0.99)), ms(percentile(lats, 0.999))
	if len(lats) > 0 {
		s.Max = ms(lats[len(lats)-1])
	}
	return s
}

// percentile is the nearest-rank percentile of sorted (0 if empty).
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// leaseAgeMax replays one host's renewals as its fence loop sees them: the
// lease's age at t is t minus the send time of the newest renewal
// acknowledged by t (restarter.renewOnce keeps the latest send time), or t
// itself before the first acknowledgement. It returns the largest age over
// [0, window].
func leaseAgeMax(rs []renewal, window time.Duration) time.Duration {
	type ack struct{ at, sent time.Duration }
	var acks []ack
	for _, r := range rs {
		if r.Failed {
			continue
		}
		sent := time.Duration(r.SentUs) * time.Microsecond
		acks = append(acks, ack{at: sent + time.Duration(r.LatUs)*time.Microsecond, sent: sent})
	}
	slices.SortFunc(acks, func(a, b ack) int { return int(a.at - b.at) })
	var lastOK, worst time.Duration
	for _, a := range acks {
		if a.at > window {
			break
		}
		worst = max(worst, a.at-lastOK)
		lastOK = max(lastOK, a.sent)
	}
	return max(worst, window-lastOK)
}

// sendGapMax is the longest time between consecutive send times of one
// host's renewals, counting the first from the window's start.
func sendGapMax(rs []renewal) time.Duration {
	var sent []int64
	for _, r := range rs {
		sent = append(sent, r.SentUs)
	}
	slices.Sort(sent)
	var prev, worst int64
	for _, s := range sent {
		worst = max(worst, s-prev)
		prev = s
	}
	return time.Duration(worst) * time.Microsecond
}

func ms(d time.Duration) float64 { return math.Round(float64(d.Microseconds())/10) / 100 }
