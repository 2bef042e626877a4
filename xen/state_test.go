package xen

import "testing"

func TestStateFromFlags(t *testing.T) {
	for _, tc := range []struct {
		flags string
		want  State
	}{
		{"r-----", StateRunning},  // dom0
		{"-b----", StateBlocked},  // an idle guest
		{"-bp---", StatePaused},   // after xl pause
		{"--p---", StatePaused},   // after xl save -p
		{"---s--", StateShutdown}, // shut down with restore -e
		{"---sc-", StateCrashed},  // crashed PVH guest
		{"---ss-", StateShutdown}, // suspended: left by a killed xl save
		{"---sr-", StateShutdown}, // rebooting
		{"---sw-", StateCrashed},  // watchdog
		{"----c-", StateCrashed},
		{"------", StateRunning}, // runnable, waiting for a CPU
		{"-----d", StateDying},
		{"r-p---", StatePaused},
		{"", StateUnknown},
		{"rbpscdx", StateUnknown},
		{"bbbbbb", StateUnknown},
		{"----x-", StateUnknown},
	} {
		if got := StateFromFlags(tc.flags); got != tc.want {
			t.Errorf("StateFromFlags(%q) = %s, want %s", tc.flags, got, tc.want)
		}
	}
	if !StatePaused.Alive() || StateCrashed.Alive() || StateShutdown.Alive() {
		t.Error("Alive: paused is alive, crashed and shut down are not")
	}
}
