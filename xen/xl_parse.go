package xen

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// tableRow is one data row of plain `xl list`: the only place xl shows the
// run state.
type tableRow struct {
	Name      string
	ID        int
	MemoryMiB uint64
	VCPUs     int
	Flags     string
	CPUTime   time.Duration
}

// parseListTable parses plain `xl list` output. Rows are parsed from the right
// (Time, State, VCPUs, Mem, ID) so that the name column needs no width: xl
// pads it to 40 characters but prints longer names whole.
func parseListTable(out string) ([]tableRow, error) {
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) == 0 || !strings.HasPrefix(lines[0], "Name") || !strings.Contains(lines[0], "State") {
		return nil, fmt.Errorf("xl list: no header line in output %q", clip(out, 80))
	}
	var rows []tableRow
	for i, line := range lines[1:] {
		if strings.TrimSpace(line) == "" {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 6 {
			return nil, fmt.Errorf("xl list: line %d: want 6 columns in %q", i+2, clip(line, 80))
		}
		n := len(f)
		id, err1 := strconv.Atoi(f[n-5])
		mem, err2 := strconv.ParseUint(f[n-4], 10, 64)
		vcpus, err3 := strconv.Atoi(f[n-3])
		secs, err4 := strconv.ParseFloat(f[n-1], 64)
		flags := f[n-2]
		// Flags xl may add in a later version give StateUnknown for that
		// domain rather than failing the whole listing.
		if err1 != nil || err2 != nil || err3 != nil || err4 != nil || id < 0 || vcpus < 0 ||
			math.IsNaN(secs) || secs < 0 || secs > 1e9 || len(flags) != 6 {
			return nil, fmt.Errorf("xl list: line %d: cannot parse %q", i+2, clip(line, 80))
		}
		rows = append(rows, tableRow{
			Name:      strings.Join(f[:n-5], " "),
			ID:        id,
			MemoryMiB: mem,
			VCPUs:     vcpus,
			Flags:     flags,
			CPUTime:   time.Duration(secs * float64(time.Second)),
		})
	}
	return rows, nil
}

// listEntry is the part of one `xl list -l` element the project reads. xl
// prints libxl's domain config as JSON; booleans are the strings "True" and
// "False", and c_info.domid is 4294967295 ("any"), so neither is decoded.
type listEntry struct {
	DomID  *int `json:"domid"`
	Config struct {
		CInfo struct {
			Type string `json:"type"`
			Name string `json:"name"`
			UUID string `json:"uuid"`
		} `json:"c_info"`
		BInfo struct {
			MaxVCPUs    int    `json:"max_vcpus"`
			MaxMemKiB   uint64 `json:"max_memkb"`
			TargetMemKB uint64 `json:"target_memkb"`
		} `json:"b_info"`
	} `json:"config"`
}

// parseListJSON parses `xl list -l` output into domains without a state
// (the JSON has none; List takes it from the plain table).
func parseListJSON(out []byte) ([]Domain, error) {
	var entries []listEntry
	if err := json.Unmarshal(out, &entries); err != nil {
		return nil, fmt.Errorf("xl list -l: %w", err)
	}
	doms := make([]Domain, 0, len(entries))
	for i, e := range entries {
		if e.DomID == nil || *e.DomID < 0 || e.Config.CInfo.Name == "" {
			return nil, fmt.Errorf("xl list -l: element %d has no domid or name", i)
		}
		doms = append(doms, Domain{
			Name:      e.Config.CInfo.Name,
			ID:        *e.DomID,
			UUID:      e.Config.CInfo.UUID,
			Type:      e.Config.CInfo.Type,
			MemoryMiB: e.Config.BInfo.MaxMemKiB / 1024,
			VCPUs:     e.Config.BInfo.MaxVCPUs,
			State:     StateUnknown,
		})
	}
	return doms, nil
}

// parseInfo parses `xl info`: lines of `key<padding>: value`. The value may
// itself contain colons (xen_commandline), so only the first one splits.
func parseInfo(out string) (HostInfo, error) {
	kv := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		kv[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	var hi HostInfo
	var err error
	num := func(key string) uint64 {
		s, ok := kv[key]
		if !ok {
			if err == nil {
				err = fmt.Errorf("xl info: no %q line", key)
			}
			return 0
		}
		n, perr := strconv.ParseUint(s, 10, 64)
		if perr != nil && err == nil {
			err = fmt.Errorf("xl info: %s: %q is not a number", key, s)
		}
		return n
	}
	hi.TotalMemoryMiB = num("total_memory")
	hi.FreeMemoryMiB = num("free_memory")
	if err != nil {
		return HostInfo{}, err
	}
	hi.Host = kv["host"]
	hi.XenVersion = kv["xen_version"]
	if n, perr := strconv.Atoi(kv["nr_cpus"]); perr == nil {
		hi.NrCPUs = n
	}
	return hi, nil
}

// unnamed is what the xl table prints for a domain whose name xl cannot read
// (glibc's rendering of a NULL string): see Domain.Name.
const unnamed = "(null)"

// joinList merges the two listings: the table decides which domains exist
// and their state (it is read second, so it is the fresher), the JSON adds
// UUID and type. Domain-0 is left out: it is the host, not a guest. A domain
// without a name gets Name "" (xl's "(null)"); `xl list -l` leaves such a
// domain out.
func joinList(fromJSON []Domain, rows []tableRow) []Domain {
	byID := make(map[int]Domain, len(fromJSON))
	for _, d := range fromJSON {
		byID[d.ID] = d
	}
	doms := make([]Domain, 0, len(rows))
	for _, r := range rows {
		if r.ID == 0 {
			continue
		}
		d := Domain{Name: r.Name, ID: r.ID, MemoryMiB: r.MemoryMiB, VCPUs: r.VCPUs}
		if d.Name == unnamed {
			d.Name = ""
		}
		if j, ok := byID[r.ID]; ok && d.Name != "" && j.Name == d.Name {
			d.UUID, d.Type = j.UUID, j.Type
		}
		d.Flags, d.State, d.CPUTime = r.Flags, StateFromFlags(r.Flags), r.CPUTime
		doms = append(doms, d)
	}
	return doms
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
