package detector

import (
	"math"
	"time"
)

// This file is the phi-accrual estimator of Hayashibara et al. 2004 ("The φ
// Accrual Failure Detector"), with the normal approximation Akka's
// PhiAccrualFailureDetector uses and Cassandra describes: the inter-arrival
// times of one host's beats are modelled as a normal distribution with the
// window's mean and standard deviation, and
//
//	phi(t) = -log10(P(next beat arrives later than t after the last one))
//
// so phi 1 means a 10% chance the host is alive and only late, phi 8 a 1e-8
// chance. The normal tail is approximated with Akka's logistic formula
//
//	y = (t - mean) / std
//	P = 1 / (1 + exp(y * (1.5976 + 0.070566 y²)))
//
// which gives the closed form phi = log10(1 + exp(c)), c = y(1.5976 +
// 0.070566 y²), computed here without overflow (softplus) so that phi stays
// finite however long the silence. Because phi depends on t only through y and
// grows with it, the elapsed time at which phi crosses a threshold has a closed
// form too: mean + y*·std with y* from InverseY; the tracker uses it to decide
// without computing phi for every host on every tick.

const (
	logisticA = 1.5976
	logisticB = 0.070566
)

// PhiOfY is phi for a standardised elapsed time y = (t - mean) / std.
func PhiOfY(y float64) float64 {
	c := y * (logisticA + logisticB*y*y)
	// softplus(c) = ln(1 + e^c), stable for large |c|.
	var sp float64
	if c > 0 {
		sp = c + math.Log1p(math.Exp(-c))
	} else {
		sp = math.Log1p(math.Exp(c))
	}
	return sp / math.Ln10
}

// Phi is the suspicion level after elapsed without a beat, for inter-arrival
// times of the given mean and standard deviation (both in seconds, std > 0).
func Phi(elapsed, mean, std float64) float64 {
	return PhiOfY((elapsed - mean) / std)
}

// InverseY returns the standardised elapsed time y at which PhiOfY(y) equals
// phi: the inverse of PhiOfY. phi must be positive.
func InverseY(phi float64) float64 {
	// log10(1+e^c) = phi  =>  c = ln(10^phi - 1), computed stably.
	var c float64
	if phi > 15 {
		c = phi*math.Ln10 + math.Log1p(-math.Pow(10, -phi))
	} else {
		c = math.Log(math.Expm1(phi * math.Ln10))
	}
	// y(a + b y²) = c is strictly increasing in y: bisect.
	lo, hi := -1.0, 1.0
	for lo*(logisticA+logisticB*lo*lo) > c {
		lo *= 2
	}
	for hi*(logisticA+logisticB*hi*hi) < c {
		hi *= 2
	}
	for range 200 {
		mid := (lo + hi) / 2
		if mid*(logisticA+logisticB*mid*mid) < c {
			lo = mid
		} else {
			hi = mid
		}
		if hi-lo < 1e-12 {
			break
		}
	}
	return (lo + hi) / 2
}

// Window is a bounded history of one host's inter-arrival times with their
// running mean and standard deviation (population, as Akka computes it). The
// zero value is not usable; make one with NewWindow. It is not safe for
// concurrent use: the tracker's owner goroutine holds it.
type Window struct {
	samples []float64 // seconds, a ring
	next    int       // where the next sample goes
	n       int       // samples held
	shift   float64   // sums are of (x - shift), which keeps them exact enough
	sum     float64
	sumSq   float64
	adds    int // samples added since the sums were last recomputed
}

// NewWindow returns a window holding up to size samples, bootstrapped as Akka
// does for a host it has not heard from: two samples, expected ± expected/4,
// so that its mean is the expected interval and its standard deviation a
// quarter of it until real samples take over.
func NewWindow(size int, expected time.Duration) *Window {
	if size < 2 {
		size = 2
	}
	e := expected.Seconds()
	w := &Window{samples: make([]float64, size), shift: e}
	w.Add(e - e/4)
	w.Add(e + e/4)
	return w
}

// Add records one inter-arrival time in seconds, evicting the oldest when the
// window is full.
func (w *Window) Add(x float64) {
	d := x - w.shift
	if w.n == len(w.samples) {
		old := w.samples[w.next] - w.shift
		w.sum -= old
		w.sumSq -= old * old
	} else {
		w.n++
	}
	w.samples[w.next] = x
	w.next = (w.next + 1) % len(w.samples)
	w.sum += d
	w.sumSq += d * d
	// Subtracting evicted samples accumulates rounding error; recompute the
	// sums once per lap of the ring, which keeps Add O(1) amortised.
	w.adds++
	if w.adds >= len(w.samples) {
		w.recompute()
	}
}

func (w *Window) recompute() {
	w.sum, w.sumSq, w.adds = 0, 0, 0
	for i := 0; i < w.n; i++ {
		d := w.samples[i] - w.shift
		w.sum += d
		w.sumSq += d * d
	}
}

// Len is the number of samples held.
func (w *Window) Len() int { return w.n }

// Mean is the mean inter-arrival time in seconds.
func (w *Window) Mean() float64 { return w.shift + w.sum/float64(w.n) }

// StdDev is the population standard deviation in seconds.
func (w *Window) StdDev() float64 {
	m := w.sum / float64(w.n)
	v := w.sumSq/float64(w.n) - m*m
	if v < 0 { // rounding
		v = 0
	}
	return math.Sqrt(v)
}

// Estimate is a window's view as phi uses it: the mean shifted by the
// acceptable pause and the standard deviation floored at the minimum.
type Estimate struct {
	Mean, Std float64 // seconds
}

// Estimate applies the configuration's acceptable pause and minimum standard
// deviation to the window, as Akka does.
func (w *Window) Estimate(acceptablePause, minStd time.Duration) Estimate {
	return Estimate{
		Mean: w.Mean() + acceptablePause.Seconds(),
		Std:  math.Max(w.StdDev(), minStd.Seconds()),
	}
}

// Phi is the suspicion level after elapsed seconds of silence.
func (e Estimate) Phi(elapsed float64) float64 { return Phi(elapsed, e.Mean, e.Std) }

// After is the silence in seconds after which phi reaches the level whose
// standardised value is y (see InverseY).
func (e Estimate) After(y float64) float64 { return e.Mean + y*e.Std }
