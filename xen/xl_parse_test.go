package xen

import (
	"strings"
	"testing"
	"time"
)

func TestParseListTableRealSamples(t *testing.T) {
	for _, tc := range []struct {
		file string
		want []tableRow
	}{
		{"xl-interface/01-xl-list.txt", []tableRow{{"Domain-0", 0, 1536, 1, "r-----", 6300 * time.Millisecond}}},
		{"xl-interface/02-xl-list.txt", []tableRow{
			{"Domain-0", 0, 1536, 1, "r-----", 12500 * time.Millisecond},
			{"tiny", 1, 128, 1, "-b----", 3400 * time.Millisecond}}},
		{"xl-interface/03-xl-list.txt", []tableRow{
			{"Domain-0", 0, 1536, 1, "r-----", 13 * time.Second},
			{"tiny", 1, 128, 1, "-bp---", 3400 * time.Millisecond}}},
		{"xl-interface/05-xl-list.txt", []tableRow{
			{"Domain-0", 0, 1536, 1, "r-----", 18400 * time.Millisecond},
			{"tiny", 2, 128, 1, "---s--", 500 * time.Millisecond}}},
		{"xl-interface/06-xl-list.txt", []tableRow{
			{"Domain-0", 0, 1536, 1, "r-----", 30900 * time.Millisecond},
			{"tpvh", 7, 128, 1, "---sc-", 4900 * time.Millisecond}}},
		{"xl-interface/08-xl-list-tiny.txt", []tableRow{{"tiny", 1, 128, 1, "-b----", 3500 * time.Millisecond}}},
		{"xl-interface/27-xl-list.txt", []tableRow{
			{"Domain-0", 0, 1536, 1, "r-----", 21600 * time.Millisecond},
			{"tiny", 2, 128, 1, "-b----", 300 * time.Millisecond},
			{"tiny2", 3, 128, 1, "--p---", 0}}},
		{"lab/13-xl-list.txt", []tableRow{
			{"Domain-0", 0, 1536, 1, "r-----", 12500 * time.Millisecond},
			{"tiny", 1, 128, 1, "-bp---", 2600 * time.Millisecond}}},
		{"lab/15-xl-list-tiny.txt", []tableRow{{"tiny", 1, 128, 1, "--p---", 2600 * time.Millisecond}}},
	} {
		s := loadSample(t, tc.file)
		rows, err := parseListTable(s.Output)
		if err != nil {
			t.Errorf("%s: %v", tc.file, err)
			continue
		}
		if len(rows) != len(tc.want) {
			t.Errorf("%s: %d rows, want %d", tc.file, len(rows), len(tc.want))
			continue
		}
		for i := range rows {
			w := tc.want[i]
			r := rows[i]
			// Time(s) has one decimal: compare to the nearest millisecond.
			if r.Name != w.Name || r.ID != w.ID || r.MemoryMiB != w.MemoryMiB || r.VCPUs != w.VCPUs ||
				r.Flags != w.Flags || r.CPUTime.Round(time.Millisecond) != w.CPUTime {
				t.Errorf("%s row %d: got %+v, want %+v", tc.file, i, r, w)
			}
		}
	}
}

// A save killed half way (its process group, as the driver kills on a
// deadline) leaves the guest suspended: the fifth flag is the shutdown
// reason, "s" for suspend, and unpause cannot wake it.
func TestParseListTableSuspendedRow(t *testing.T) {
	for _, f := range []string{"lab-killed-save/02-xl-list.txt", "lab-killed-save/05-xl-list-tiny.txt"} {
		rows, err := parseListTable(loadSample(t, f).Stdout)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		r := rows[len(rows)-1]
		if r.Name != "tiny" || r.ID != 12 || r.Flags != "---ss-" || StateFromFlags(r.Flags) != StateShutdown {
			t.Errorf("%s: got %+v", f, r)
		}
	}
	out := loadSample(t, "lab-killed-save/02-xl-list.txt").Stdout
	rows, err := parseListTable(strings.Replace(out, "---ss-", "---sX-", 1))
	if err != nil || StateFromFlags(rows[1].Flags) != StateUnknown {
		t.Fatalf("unknown flag: %+v, %v", rows, err)
	}
}

// Every successful plain listing captured from real xl parses.
func TestParseListTableAllSamples(t *testing.T) {
	for _, cmd := range []string{"xl list", "xl list tiny"} {
		for _, f := range samplesFor(t, cmd) {
			s := loadSample(t, f)
			if s.Exit != 0 {
				continue
			}
			if _, err := parseListTable(s.Output); err != nil {
				t.Errorf("%s: %v", f, err)
			}
		}
	}
}

// `xl list -v` has more columns; the driver never asks for it, and the
// parser must refuse it rather than misread it.
func TestParseListTableRejectsVerbose(t *testing.T) {
	s := loadSample(t, "xl-interface/07-xl-list-v.txt")
	if _, err := parseListTable(s.Output); err == nil {
		t.Error("xl list -v output parsed without error")
	}
	for _, bad := range []string{"", "\n", "garbage\n", "Name ID State\nx 1 2\n",
		"Name                                        ID   Mem VCPUs\tState\tTime(s)\nx -1 1 1 r----- 1.0\n",
		"Name                                        ID   Mem VCPUs\tState\tTime(s)\nx 1 1 1 r----- NaN\n"} {
		if _, err := parseListTable(bad); err == nil {
			t.Errorf("parseListTable(%q) did not fail", bad)
		}
	}
}

func TestParseListJSONRealSamples(t *testing.T) {
	for _, tc := range []struct {
		file string
		want []Domain
	}{
		{"xl-interface/09-xl-list-l.txt", []Domain{{Name: "Domain-0", ID: 0, Type: "pv", MemoryMiB: 1536}}},
		{"xl-interface/10-xl-list-l.txt", []Domain{
			{Name: "Domain-0", ID: 0, Type: "pv", MemoryMiB: 1536},
			{Name: "tiny", ID: 1, Type: "pv", UUID: "8b03683e-1421-4399-9cdf-24a37c4d81d7", MemoryMiB: 128, VCPUs: 1}}},
		{"xl-interface/11-xl-list-l-tiny.txt", []Domain{
			{Name: "tiny", ID: 1, Type: "pv", UUID: "8b03683e-1421-4399-9cdf-24a37c4d81d7", MemoryMiB: 128, VCPUs: 1}}},
		{"lab/23-xl-list-l.txt", []Domain{
			{Name: "Domain-0", ID: 0, Type: "pv", MemoryMiB: 1536},
			{Name: "tiny", ID: 1, Type: "pv", UUID: "d1304f40-a14e-499c-ae9c-cea012b3d248", MemoryMiB: 128, VCPUs: 1}}},
	} {
		s := loadSample(t, tc.file)
		doms, err := parseListJSON([]byte(s.Output))
		if err != nil {
			t.Errorf("%s: %v", tc.file, err)
			continue
		}
		if len(doms) != len(tc.want) {
			t.Errorf("%s: %d domains, want %d", tc.file, len(doms), len(tc.want))
			continue
		}
		for i, d := range doms {
			w := tc.want[i]
			w.State = StateUnknown // the JSON carries none
			if d != w {
				t.Errorf("%s[%d]: got %+v, want %+v", tc.file, i, d, w)
			}
		}
	}
	for _, bad := range []string{"", "[", "{}", `[{"config":{}}]`, `[{"domid":-1,"config":{"c_info":{"name":"x"}}}]`} {
		if _, err := parseListJSON([]byte(bad)); err == nil {
			t.Errorf("parseListJSON(%q) did not fail", bad)
		}
	}
}

// The JSON and the table of one moment, joined: Domain-0 dropped, state
// from the table, UUID from the JSON.
func TestJoinListRealSamples(t *testing.T) {
	j, err := parseListJSON([]byte(loadSample(t, "lab/06-xl-list-l.txt").Stdout))
	if err != nil {
		t.Fatal(err)
	}
	rows, err := parseListTable(loadSample(t, "lab/05-xl-list.txt").Stdout)
	if err != nil {
		t.Fatal(err)
	}
	got := joinList(j, rows)
	want := []Domain{{Name: "tiny", ID: 1, UUID: "d1304f40-a14e-499c-ae9c-cea012b3d248", Type: "pv",
		State: StateBlocked, Flags: "-b----", MemoryMiB: 128, VCPUs: 1, CPUTime: 2600 * time.Millisecond}}
	if len(got) != 1 || got[0].CPUTime.Round(time.Millisecond) != want[0].CPUTime {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	got[0].CPUTime = want[0].CPUTime
	if got[0] != want[0] {
		t.Errorf("got %+v, want %+v", got[0], want[0])
	}
	// A domain that appears in only one listing (created or destroyed
	// between the two calls) is taken from the table, without a UUID.
	if got := joinList(nil, rows); len(got) != 1 || got[0].UUID != "" || got[0].State != StateBlocked {
		t.Errorf("table only: %+v", got)
	}
}

// A domain xl create or xl restore is still building is listed without a
// name, as "(null)", paused and with no memory yet; a moment later it has
// its name (and `xl list -l` has it only once it is built). The driver
// lists it with an empty name, never under the name "(null)".
func TestJoinListUnnamedDomainsRealSamples(t *testing.T) {
	for f, id := range map[string]int{"lab-unnamed/01-xl-list-during-create.txt": 9, "lab-unnamed/02-xl-list-during-restore.txt": 10} {
		rows, err := parseListTable(loadSample(t, f).Stdout)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		got := joinList([]Domain{{Name: "Domain-0"}}, rows)
		if len(got) != 1 || got[0].Name != "" || got[0].ID != id || got[0].State != StatePaused || got[0].MemoryMiB != 0 {
			t.Errorf("%s: got %+v, want one unnamed paused domain %d", f, got, id)
		}
	}
	rows, err := parseListTable(loadSample(t, "lab-unnamed/03-xl-list-during-restore-later.txt").Stdout)
	if err != nil {
		t.Fatal(err)
	}
	if got := joinList(nil, rows); len(got) != 1 || got[0].Name != "tiny" || got[0].ID != 10 {
		t.Errorf("named while restoring: %+v", got)
	}
}

func TestParseInfoRealSamples(t *testing.T) {
	for _, f := range samplesFor(t, "xl info") {
		s := loadSample(t, f)
		hi, err := parseInfo(s.Stdout)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		want := HostInfo{Host: "(none)", XenVersion: "4.17.7", NrCPUs: 2, TotalMemoryMiB: 4095, FreeMemoryMiB: hi.FreeMemoryMiB}
		if hi != want || hi.FreeMemoryMiB == 0 || hi.FreeMemoryMiB > hi.TotalMemoryMiB {
			t.Errorf("%s: got %+v", f, hi)
		}
	}
	// Free memory falls by the guest's 128 MiB between the two captures.
	before, _ := parseInfo(loadSample(t, "lab/01-xl-info.txt").Stdout)
	after, _ := parseInfo(loadSample(t, "lab/09-xl-info.txt").Stdout)
	if before.FreeMemoryMiB-after.FreeMemoryMiB < 128 {
		t.Errorf("free memory %d -> %d after creating a 128 MiB guest", before.FreeMemoryMiB, after.FreeMemoryMiB)
	}
	for _, bad := range []string{"", "total_memory : 1\n", "total_memory : x\nfree_memory : 1\n"} {
		if _, err := parseInfo(bad); err == nil {
			t.Errorf("parseInfo(%q) did not fail", bad)
		}
	}
}

func FuzzParseListTable(f *testing.F) {
	for _, cmd := range []string{"xl list", "xl list tiny"} {
		for _, file := range samplesFor(f, cmd) {
			f.Add(loadSample(f, file).Output)
		}
	}
	f.Fuzz(func(t *testing.T, out string) {
		rows, err := parseListTable(out)
		if err != nil {
			return
		}
		for _, r := range rows {
			if r.ID < 0 || r.CPUTime < 0 || len(r.Flags) != 6 {
				t.Errorf("accepted a bad row %+v", r)
			}
		}
	})
}

func FuzzParseListJSON(f *testing.F) {
	for _, file := range []string{"xl-interface/10-xl-list-l.txt", "lab/06-xl-list-l.txt", "xl-interface/11-xl-list-l-tiny.txt"} {
		f.Add([]byte(loadSample(f, file).Output))
	}
	f.Fuzz(func(t *testing.T, out []byte) {
		doms, err := parseListJSON(out)
		if err != nil {
			return
		}
		for _, d := range doms {
			if d.ID < 0 || d.Name == "" {
				t.Errorf("accepted a bad domain %+v", d)
			}
		}
	})
}

func FuzzParseInfo(f *testing.F) {
	f.Add(loadSample(f, "lab/01-xl-info.txt").Stdout)
	f.Fuzz(func(t *testing.T, out string) {
		if hi, err := parseInfo(out); err == nil && !strings.Contains(out, "free_memory") {
			t.Errorf("accepted output without free_memory: %+v", hi)
		}
	})
}
