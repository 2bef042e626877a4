package main

import (
	"fmt"
	"slices"
	"strings"
)

// condition is one measured situation of the renewers' process.
type condition struct {
	Name string
	// Key prefixes this condition's figures in the JSON line.
	Key string
	// HogsPerCPU: busy-looping processes per CPU beside everything.
	HogsPerCPU int
	// Quota: the renewers' process is held to a CPU quota.
	Quota bool
	// Upload: "" (none), "shared" (the lease's connection) or "own" (a
	// connection of their own).
	Upload string
}

var allConditions = []condition{
	{Name: "idle", Key: "idle"},
	{Name: "hog2x", Key: "hog2x", HogsPerCPU: 2},
	{Name: "hog4x", Key: "hog4x", HogsPerCPU: 4},
	{Name: "quota", Key: "quota", Quota: true},
	{Name: "upload-shared", Key: "upload_shared", Upload: "shared"},
	{Name: "upload-own-conn", Key: "upload_own_conn", Upload: "own"},
	{Name: "quota-upload-shared", Key: "quota_upload_shared", Quota: true, Upload: "shared"},
	{Name: "quota-upload-own-conn", Key: "quota_upload_own_conn", Quota: true, Upload: "own"},
}

func conditionNames() []string {
	var names []string
	for _, c := range allConditions {
		names = append(names, c.Name)
	}
	return names
}

// pickConditions parses -conditions, keeping the canonical order.
func pickConditions(list string) ([]condition, error) {
	want := map[string]bool{}
	for _, n := range strings.Split(list, ",") {
		n = strings.TrimSpace(n)
		if n == "" {
			continue
		}
		if !slices.Contains(conditionNames(), n) {
			return nil, fmt.Errorf("-conditions: unknown condition %q (known: %s)", n, strings.Join(conditionNames(), ", "))
		}
		want[n] = true
	}
	var out []condition
	for _, c := range allConditions {
		if want[c.Name] {
			out = append(out, c)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("-conditions: none given")
	}
	return out, nil
}
