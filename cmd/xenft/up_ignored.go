package main

import (
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
)

// ignoredInputs is what each role of the demo ignored so far, by reason
// (events.Ignored*), leaving out roles that ignored nothing: the supervisor
// and the detector, the hosts' agents (their command servers, summed over
// the agents running now) and the view's own tail.
func (d *demo) ignoredInputs() map[string]map[string]uint64 {
	out := map[string]map[string]uint64{}
	add := func(role string, m map[string]uint64) {
		for reason, n := range m {
			if out[role] == nil {
				out[role] = map[string]uint64{}
			}
			out[role][reason] += n
		}
	}
	if d.sup != nil {
		add("supervisor", d.sup.Ignored())
	}
	if d.mon != nil {
		add("detector", d.mon.Ignored())
	}
	d.mu.Lock()
	for _, h := range d.hosts {
		add("agents", h.bus.Ignored().Snapshot())
	}
	d.mu.Unlock()
	add("view", d.bus.Ignored().Snapshot())
	return out
}

// ignoredSummary is the summary's line of what was ignored, naming the log
// that tells why.
func (d *demo) ignoredSummary() string {
	return ignoredLine(d.ignoredInputs(), filepath.Join(d.o.dataDir, "xenft-up.log"))
}

// ignoredLine is the summary's line for ignoredInputs, "" when nothing was
// ignored: "ignored inputs (lines in LOG): detector duplicate=2; supervisor
// unknown_host=1".
func ignoredLine(ig map[string]map[string]uint64, log string) string {
	var roles []string
	for _, role := range slices.Sorted(maps.Keys(ig)) {
		var rs []string
		for _, reason := range slices.Sorted(maps.Keys(ig[role])) {
			rs = append(rs, fmt.Sprintf("%s=%d", reason, ig[role][reason]))
		}
		roles = append(roles, role+" "+strings.Join(rs, " "))
	}
	if len(roles) == 0 {
		return ""
	}
	return fmt.Sprintf("  ignored inputs (lines in %s): %s\n", log, strings.Join(roles, "; "))
}
