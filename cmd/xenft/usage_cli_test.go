package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Every usage error exits 2 with one line on stderr naming what is wrong and
// nothing on stdout: an unknown or missing subcommand, a missing or extra
// positional argument, an unknown flag, a flag without its value or with a
// value of the wrong type (issue 12: an unknown subcommand and a missing
// argument exited 1, and a group given an unknown subcommand printed its
// help and exited 0).
func TestUsageErrorsExit2WithOneLine(t *testing.T) {
	cases := []struct {
		args  []string
		names []string // what the line must say
	}{
		{nil, []string{"xenft: missing command: one of agent, auth, checkpoint,", "(see xenft --help)"}},
		{[]string{"bogus"}, []string{`xenft: unknown command "bogus": one of agent,`}},
		{[]string{"stauts"}, []string{`unknown command "stauts" (did you mean status?)`}},
		{[]string{"vm"}, []string{"xenft: vm: missing command: one of add, list, move, remove, restart (see xenft vm --help)"}},
		{[]string{"vm", "bogus"}, []string{`xenft: vm: unknown command "bogus": one of add, list, move, remove, restart`}},
		{[]string{"completion", "bogus"}, []string{`completion: unknown command "bogus"`}},
		{[]string{"help", "bogus"}, []string{`xenft: help: no command "bogus"`}},
		{[]string{"status", "extra"}, []string{`xenft: status: unexpected argument "extra" (usage: xenft status [flags])`}},
		{[]string{"up", "extra"}, []string{`xenft: up: unexpected argument "extra"`}},
		{[]string{"vm", "add"}, []string{"xenft: vm add: accepts 1 arg(s), received 0 (usage: xenft vm add NAME [flags])"}},
		{[]string{"vm", "add", "a", "b"}, []string{"vm add: accepts 1 arg(s), received 2"}},
		{[]string{"host", "maintenance", "n1"}, []string{"host maintenance: accepts 2 arg(s), received 1 (usage: xenft host maintenance HOST on|off"}},
		{[]string{"checkpoint", "show"}, []string{"checkpoint show: want GROUP SEQ, GROUP/SEQ or GROUP, got 0 arguments"}},
		{[]string{"--bogus"}, []string{"xenft: unknown flag: --bogus"}},
		{[]string{"events", "tail", "--bogus"}, []string{"xenft: events tail: unknown flag: --bogus"}},
		{[]string{"events", "tail", "--since"}, []string{"events tail: flag needs an argument: --since"}},
		{[]string{"events", "tail", "--since", "5x"}, []string{`xenft: --since: "5x" is not a duration such as 30s, 5m or 1h30m`}},
		{[]string{"up", "--port", "abc"}, []string{`xenft: --port: "abc" is not an integer (it sets server.port, as XENFT_SERVER_PORT does)`}},
		{[]string{"events", "tail", "--json=maybe"}, []string{`--json: "maybe" is not true or false`}},
	}
	for _, c := range cases {
		t.Run(strings.Join(append([]string{"xenft"}, c.args...), " "), func(t *testing.T) {
			r := xenft(t, nil, c.args...)
			if r.code != exitUsage || r.stdout != "" || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
				t.Fatalf("exit %d, stdout %q, stderr %q: want exit 2, one line on stderr, nothing on stdout", r.code, r.stdout, r.stderr)
			}
			for _, n := range c.names {
				if !strings.Contains(r.stderr, n) {
					t.Errorf("stderr %q does not say %q", r.stderr, n)
				}
			}
		})
	}
}

// Asking for help is not an error, and a failure while working is 1, not 2.
func TestHelpExits0AndWorkFailureExits1(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"help"}, {"help", "vm", "add"}, {"vm", "--help"}, {"version"}} {
		if r := xenft(t, nil, args...); r.code != 0 || r.stdout == "" {
			t.Errorf("xenft %v: exit %d, stdout %q, stderr %q; want exit 0 and output", args, r.code, r.stdout, r.stderr)
		}
	}
	r := xenft(t, nil, "status", "--nats", "nats://127.0.0.1:1")
	if r.code != exitFailure || !strings.Contains(r.stderr, "nats://127.0.0.1:1") {
		t.Errorf("status with no server: exit %d, stderr %q; want exit 1 naming the server", r.code, r.stderr)
	}
}

// A configuration value of the wrong type names the key, the value, where
// it was set and the key's environment variable, and exits 2 before the
// command does anything.
func TestBadConfigurationValueNamesKeyValueAndEnvironmentVariable(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "xenft.yaml")
	if err := os.WriteFile(file, []byte("heartbeat:\n  interval: 5x\ndetector:\n  tick: 5\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		env  []string
		args []string
		want string // the whole line, or a part of it
		full bool
	}{
		{"duration from env", []string{"XENFT_HEARTBEAT_INTERVAL=5x"}, nil,
			"xenft: heartbeat.interval: \"5x\" is not a duration such as 1s, 500ms or 2m30s (set by XENFT_HEARTBEAT_INTERVAL)\n", true},
		{"durations from file", nil, []string{"--config", file},
			"xenft: detector.tick: 5 is not a duration: give a unit, such as 5s or 5ms (set in " + file + "; environment variable XENFT_DETECTOR_TICK); " +
				"heartbeat.interval: \"5x\" is not a duration such as 1s, 500ms or 2m30s (set in " + file + "; environment variable XENFT_HEARTBEAT_INTERVAL)\n", true},
		{"env over file", []string{"XENFT_HEARTBEAT_INTERVAL=7y", "XENFT_DETECTOR_TICK=1s"}, []string{"--config", file},
			"xenft: heartbeat.interval: \"7y\" is not a duration such as 1s, 500ms or 2m30s (set by XENFT_HEARTBEAT_INTERVAL)\n", true},
		{"integer from env", []string{"XENFT_BUS_REPLICAS=three"}, nil, `bus.replicas: "three" is not an integer (set by XENFT_BUS_REPLICAS)`, false},
		{"bool from env", []string{"XENFT_LOG_JSON=maybe"}, nil, `log.json: "maybe" is not true or false (set by XENFT_LOG_JSON)`, false},
		{"duration in a list", []string{`XENFT_DETECTOR_PLUGINS=[{"name":"ipmi","command":"/bin/true","interval":"5x"}]`}, nil,
			`detector.plugins[0].interval: "5x" is not a duration such as 1s, 500ms or 2m30s (set by XENFT_DETECTOR_PLUGINS)`, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := xenft(t, c.env, append([]string{"events", "tail"}, c.args...)...)
			ok := strings.Contains(r.stderr, c.want)
			if c.full {
				ok = r.stderr == c.want
			}
			if r.code != exitUsage || !ok || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
				t.Fatalf("exit %d, stderr %q: want exit 2 and %q", r.code, r.stderr, c.want)
			}
		})
	}
}
