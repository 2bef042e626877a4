package xen

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// sample is one real xl invocation from testdata: the command, its exit
// status and what it printed.
//
// testdata/xl-interface/*.txt are copied verbatim from the shared lab's
// xl-interface.md: "$ cmd", stdout and stderr interleaved, "[exit code: N]".
// testdata/lab*/*.txt were captured byte-exactly (base64 over the serial
// console) in the nested Xen 4.17 lab by xen/lab/dom0-capture-xl.sh, with
// stdout and stderr apart: "$ cmd", "[exit code: N]", "-- stdout --",
// stdout, "-- stderr --", stderr.
type sample struct {
	Cmd            string
	Exit           int
	Stdout, Stderr string // lab samples only
	Output         string // both streams: interleaved (xl-interface) or stdout+stderr (lab)
}

func loadSample(t testing.TB, rel string) sample {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", rel))
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	first, rest, _ := strings.Cut(text, "\n")
	if !strings.HasPrefix(first, "$ ") {
		t.Fatalf("%s: no command line", rel)
	}
	s := sample{Cmd: first[2:]}
	exitLine := func(l string) int {
		n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(l, "[exit code: "), "]"))
		if err != nil {
			t.Fatalf("%s: bad exit line %q", rel, l)
		}
		return n
	}
	if el, rest, _ := strings.Cut(rest, "\n"); strings.HasPrefix(rest, "-- stdout --\n") { // the lab format
		s.Exit = exitLine(el)
		out, err, ok := strings.Cut(strings.TrimPrefix(rest, "-- stdout --\n"), "-- stderr --\n")
		if !ok {
			t.Fatalf("%s: no stderr section", rel)
		}
		s.Stdout, s.Stderr, s.Output = out, err, out+err
		return s
	}
	body := strings.TrimSuffix(rest, "\n")
	i := strings.LastIndex(body, "\n")
	s.Exit = exitLine(body[i+1:])
	s.Output = body[:i+1]
	return s
}

// samplesFor lists the sample files whose command is exactly cmd.
func samplesFor(t testing.TB, cmd string) []string {
	t.Helper()
	var out []string
	for _, dir := range []string{"xl-interface", "lab", "lab-killed-save", "lab-unnamed"} {
		files, _ := filepath.Glob(filepath.Join("testdata", dir, "*.txt"))
		for _, f := range files {
			rel := dir + "/" + filepath.Base(f)
			if loadSample(t, rel).Cmd == cmd {
				out = append(out, rel)
			}
		}
	}
	if len(out) == 0 {
		t.Fatalf("no samples of %q", cmd)
	}
	return out
}
