package detector

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

func near(t *testing.T, what string, got, want, tol float64) {
	t.Helper()
	if math.Abs(got-want) > tol {
		t.Errorf("%s = %.9g, want %.9g ± %g", what, got, want, tol)
	}
}

// Values worked by hand from phi = log10(1 + e^c), c = y(1.5976 + 0.070566 y²)
// (equal to Akka's -log10(e/(1+e)), e = e^-c).
func TestPhiOfYHandComputed(t *testing.T) {
	for _, tc := range []struct {
		y, phi float64
		how    string
	}{
		{0, 0.301029996, "c = 0: log10(2)"},
		{1, 0.799508321, "c = 1.668166, e^c = 5.302071: log10(6.302071)"},
		{2, 1.642827885, "c = 2·(1.5976 + 0.282264) = 3.759728: log10(1 + 42.9316)"},
		{-1, 0.075033032, "c = -1.668166, e^c = 0.188606: log10(1.188606)"},
		{5.2251, 7.997158882, "c = 18.41415; log10(1 + e^c) ≈ c / ln 10"},
		{40, 1989.124317, "c = 40·(1.5976 + 112.9056) = 4580.128; c / ln 10, no overflow"},
	} {
		near(t, tc.how, PhiOfY(tc.y), tc.phi, 1e-6*math.Max(1, tc.phi))
	}
}

// Akka's test of its approximation: 1 - 10^-phi is the normal CDF to 0.001.
func TestPhiApproximatesNormalCDF(t *testing.T) {
	for _, y := range []float64{0, 0.6, 1.5, 2, 2.5, 3.5, 4} {
		cdf := 1 - math.Pow(10, -PhiOfY(y))
		normal := 0.5 * math.Erfc(-y/math.Sqrt2)
		near(t, "cdf", cdf, normal, 0.001)
	}
}

func TestPhiIsFiniteAndMonotonic(t *testing.T) {
	prev := -1.0
	for y := -100.0; y <= 1000; y += 0.5 {
		p := PhiOfY(y)
		if math.IsInf(p, 0) || math.IsNaN(p) || p < prev {
			t.Fatalf("PhiOfY(%g) = %g after %g", y, p, prev)
		}
		prev = p
	}
}

func TestInverseY(t *testing.T) {
	near(t, "InverseY(8)", InverseY(8), 5.2251, 1e-3)
	near(t, "InverseY(5)", InverseY(5), 4.1199, 1e-3)
	for _, phi := range []float64{0.1, 0.5, 1, 3, 5, 8, 12, 16, 30, 100} {
		near(t, "PhiOfY(InverseY(phi))", PhiOfY(InverseY(phi)), phi, 1e-9*math.Max(1, phi))
	}
}

// A window of four, bootstrapped at 1 s with Akka's two samples 0.75 and 1.25.
func TestWindowHandComputed(t *testing.T) {
	w := NewWindow(4, time.Second)
	near(t, "bootstrap mean", w.Mean(), 1.0, 1e-12)
	near(t, "bootstrap std", w.StdDev(), 0.25, 1e-12)

	w.Add(0.9)
	w.Add(1.0)
	// {0.75, 1.25, 0.9, 1.0}: mean 0.975; squared deviations 0.050625,
	// 0.075625, 0.005625, 0.000625 sum to 0.1325; variance 0.033125.
	near(t, "mean", w.Mean(), 0.975, 1e-12)
	near(t, "std", w.StdDev(), math.Sqrt(0.033125), 1e-12)

	w.Add(1.1)
	w.Add(1.2)
	// Bootstrap evicted: {0.9, 1.0, 1.1, 1.2}: mean 1.05, variance 0.0125.
	near(t, "mean after eviction", w.Mean(), 1.05, 1e-12)
	near(t, "std after eviction", w.StdDev(), math.Sqrt(0.0125), 1e-12)

	// With acceptable_pause 1 s and min_std_dev 100 ms: mean 2.05, std
	// 0.111803 (above the floor). After 2.5 s of silence y = 0.45/0.111803
	// = 4.024922, c = 4.024922·(1.5976 + 0.070566·16.2) = 11.031325,
	// phi = log10(1 + e^c) = 4.790876.
	e := w.Estimate(time.Second, 100*time.Millisecond)
	near(t, "estimate mean", e.Mean, 2.05, 1e-12)
	near(t, "estimate std", e.Std, 0.111803399, 1e-9)
	near(t, "phi(2.5 s)", e.Phi(2.5), 4.790875896, 1e-6)

	// The floor: a perfectly regular network.
	w2 := NewWindow(4, time.Second)
	for range 4 {
		w2.Add(1)
	}
	e2 := w2.Estimate(0, 100*time.Millisecond)
	near(t, "floored std", e2.Std, 0.1, 1e-12)
	near(t, "phi at mean + std", e2.Phi(1.1), 0.799508321, 1e-6)
	// phi_fail 8 is reached at mean + InverseY(8)·std = 1 + 0.52251 s.
	near(t, "after(y8)", e2.After(InverseY(8)), 1.52251, 1e-4)
}

// The running sums against a naive computation, over many laps of the ring.
func TestWindowRunningSumsStayExact(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	w := NewWindow(50, time.Second)
	var all []float64
	all = append(all, 0.75, 1.25)
	for i := range 10_000 {
		x := 1 + rng.NormFloat64()*0.1
		if i%97 == 0 {
			x = 2 + rng.Float64()
		}
		w.Add(x)
		all = append(all, x)
		if i%1000 != 999 && i != 10 {
			continue
		}
		last := all[max(0, len(all)-50):]
		var m, v float64
		for _, s := range last {
			m += s
		}
		m /= float64(len(last))
		for _, s := range last {
			v += (s - m) * (s - m)
		}
		v /= float64(len(last))
		near(t, "mean", w.Mean(), m, 1e-9)
		near(t, "std", w.StdDev(), math.Sqrt(v), 1e-9)
	}
}
