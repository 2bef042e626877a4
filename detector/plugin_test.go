package detector_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xenft/xenft/detector"
	"github.com/xenft/xenft/events"
	"github.com/xenft/xenft/events/eventstest"
)

func plugin(t *testing.T, name string, args ...string) detector.PluginConfig {
	t.Helper()
	path, err := filepath.Abs(filepath.Join("testdata", "plugins", name+".sh"))
	if err != nil {
		t.Fatal(err)
	}
	if name == "hang" {
		// The one meant to time out: a short timeout keeps the test short.
		return detector.PluginConfig{Name: name, Command: path, Args: args, Interval: 500 * time.Millisecond, Timeout: 300 * time.Millisecond}
	}
	// Not 300 ms: at a load average of 13-21 a shell script took longer
	// than that to start and print, so "good" and "garbage" timed out too,
	// and the flood (2 MB through a pipe into a race-built reader) timed out
	// at 2 s before it passed the output limit. Only the hang is meant to
	// time out.
	// At a load average of 30, "good" still timed out once at 2 s.
	every := 5 * time.Second
	if name == "flood" {
		every = 10 * time.Second
	}
	return detector.PluginConfig{Name: name, Command: path, Args: args, Interval: every, Timeout: every}
}

// Site plug-ins (issue item 4a): findings become node.fault once per change;
// a plug-in that hangs, crashes, floods or prints garbage is logged and
// counted and never blocks the others; a hung one's whole process group is
// killed at its timeout.
func TestPlugins(t *testing.T) {
	s := eventstest.Server(t)
	bus := eventstest.Bus(t, s)
	pidFile := filepath.Join(t.TempDir(), "grandchild.pid")
	cfg := fastConfig("det-1")
	cfg.Plugins = []detector.PluginConfig{
		plugin(t, "good"), plugin(t, "garbage"), plugin(t, "crash"), plugin(t, "hang", pidFile), plugin(t, "flood"),
	}
	var logs logBuffer
	m, err := detector.NewMonitor(agentBus(t, s, "det-1"), cfg, logs.logger(t))
	if err != nil {
		t.Fatal(err)
	}
	stop := run(t, "monitor", m)

	// Three slots at least: good and garbage ran three times each while
	// crash, hang and flood failed as often.
	eventstest.Eventually(t, 40*time.Second, func() bool {
		mt := m.Metrics()
		return mt.PluginRuns >= 6 && mt.PluginFailures >= 9 && logs.count("output exceeds") > 0
	}, "plug-ins did not run")

	for _, c := range []struct {
		host     string
		severity events.Severity
		reason   string
	}{
		{"n1", events.SeverityDegraded, "corrected ECC errors above threshold"},
		{"n2", events.SeverityOK, "all sensors nominal"},
		{"n3", events.SeverityFatal, "power supply failed"},
	} {
		evs := streamEvents(t, bus, events.TypeNodeFault, c.host)
		if len(evs) != 1 {
			t.Errorf("%s: %d node.fault events, want 1 (published when the finding changes)", c.host, len(evs))
			continue
		}
		f, err := events.DataAs[events.NodeFault](evs[0])
		if err != nil || f.Severity != c.severity || f.Reason != c.reason || (f.Detector != "good" && f.Detector != "garbage") {
			t.Errorf("%s: %+v %v", c.host, f, err)
		}
		if !strings.HasPrefix(evs[0].ID, "node.fault/"+c.host+"/"+f.Detector+"/"+string(c.severity)+"/") {
			t.Errorf("id %q", evs[0].ID)
		}
	}
	if n := countEvents(t, bus, events.TypeNodeFault, "n5"); n != 0 {
		t.Errorf("a crashed run's finding was published (%d events)", n)
	}

	// The hung plug-in's grandchild died with its process group.
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	eventstest.Eventually(t, 5*time.Second, func() bool { return !running(pid) }, "grandchild %d of the hung plug-in still runs", pid)

	stop()
	eventstest.NoGoroutines(t, 5*time.Second, ourGoroutines...)
	mt := m.Metrics()
	if mt.PluginGarbage < 3*3 {
		t.Errorf("garbage lines = %d, want 3 a run", mt.PluginGarbage)
	}
	// Failure is logged once per plug-in, when it starts failing.
	for _, name := range []string{"crash", "hang", "flood"} {
		if c := logs.count("plugin=" + name); c < 1 {
			t.Errorf("plug-in %s failure not logged", name)
		}
	}
	if c := logs.count("plug-in failed"); c != 3 {
		t.Errorf("\"plug-in failed\" logged %d times, want once for each of the 3 failing plug-ins", c)
	}
	for _, want := range []string{"timed out after 300ms", "exit status 3: segmentation fault", "output exceeds"} {
		if logs.count(want) == 0 {
			t.Errorf("log does not say %q", want)
		}
	}
}

// running reports whether pid is a live process (a zombie is dead).
func running(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// pid (comm) S ...: the state follows the last ')'.
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

func TestParseFindings(t *testing.T) {
	out := []byte(`{"host":"n1","severity":"fatal","reason":"ipmi: cpu0 thermal trip"}

{"host":"n1","severity":"warning","reason":"x"}
{"host":"","severity":"ok","reason":"x"}
{"host":"n2","severity":"ok","reason":""}
[1,2]
{"host":"n2","severity":"ok","reason":"cleared","extra":"ignored"}
`)
	f, garbage := detector.ParseFindings(out)
	if len(f) != 2 || f[0].Host != "n1" || f[1].Reason != "cleared" {
		t.Errorf("findings %+v", f)
	}
	if len(garbage) != 4 {
		t.Errorf("garbage %q, want 4 lines", garbage)
	}
}

func TestPluginConfigValidation(t *testing.T) {
	cfg := detector.DefaultConfig()
	cfg.Plugins = []detector.PluginConfig{
		{Name: "ipmi", Command: "/usr/local/bin/xenft-ipmi"}, // defaults fill interval and timeout
		{Name: "ipmi", Command: "x", Interval: time.Second, Timeout: 2 * time.Second},
		{Name: "bad name", Command: ""},
	}
	err := cfg.Validate("detector")
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{
		`detector.plugins[1].name: "ipmi" is already the name of detector.plugins[0]`,
		"detector.plugins[1].timeout: must be positive and at most detector.plugins[1].interval",
		`detector.plugins[2].name: "bad name"`,
		"detector.plugins[2].command: required",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "plugins[0]") && !strings.Contains(err.Error(), "of detector.plugins[0]") {
		t.Errorf("plugins[0] should be valid with defaults:\n%v", err)
	}
	d := cfg.WithDefaults().Plugins[0]
	if d.Interval != detector.DefaultPluginInterval || d.Timeout != detector.DefaultPluginTimeout {
		t.Errorf("defaults %+v", d)
	}
}
