package fuzzwired_test

import (
	"bufio"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// fuzzFuncRE finds a fuzz target's declaration in a _test.go file.
var fuzzFuncRE = regexp.MustCompile(`(?m)^func (Fuzz\w*)\(\w+ \*testing\.F\)`)

// makeFuzzRE reads one run of the Makefile's fuzz target:
// $(GO) test ... -fuzz '^FuzzX$$' ... ./pkg
var makeFuzzRE = regexp.MustCompile(`-fuzz '\^(Fuzz\w*)\$\$'.*\s(\./\S+)\s*$`)

// target is a fuzz function and the package directory that holds it,
// relative to the module root ("./detector").
type target struct{ name, pkg string }

func TestMakeFuzzRunsEveryFuzzTarget(t *testing.T) {
	root := moduleRoot(t)
	declared := declaredTargets(t, root)
	wired := wiredTargets(t, filepath.Join(root, "Makefile"))
	if len(declared) == 0 || len(wired) == 0 {
		t.Fatalf("found %d fuzz functions and %d runs in make fuzz: the scan is broken", len(declared), len(wired))
	}
	for tg, file := range declared {
		if !wired[tg] {
			t.Errorf("%s (%s) is not run by make fuzz; add to the Makefile's fuzz target:\n"+
				"\t$(GO) test -run '^$$' -fuzz '^%s$$' -fuzztime $$(( $(FUZZSCALE) * N ))x %s\n"+
				"with N executions taking about 10 s here", tg.name, file, tg.name, tg.pkg)
		}
	}
	for tg := range wired {
		if _, ok := declared[tg]; !ok {
			t.Errorf("make fuzz runs %s in %s, which declares no such fuzz function", tg.name, tg.pkg)
		}
	}
}

// moduleRoot is the directory of go.mod above the test's package.
func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}

// declaredTargets maps every Fuzz function in the module's _test.go files
// to the file declaring it. Hidden directories and testdata are skipped, as
// the go command skips them.
func declaredTargets(t *testing.T, root string) map[target]string {
	t.Helper()
	out := map[target]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if p != root && (strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || name == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(name, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, filepath.Dir(p))
		if err != nil {
			return err
		}
		file, _ := filepath.Rel(root, p)
		for _, m := range fuzzFuncRE.FindAllStringSubmatch(string(src), -1) {
			out[target{m[1], "./" + filepath.ToSlash(rel)}] = filepath.ToSlash(file)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// wiredTargets reads the recipe of the Makefile's fuzz target: the
// tab-indented lines after "fuzz:" up to the first line that is not one.
func wiredTargets(t *testing.T, makefile string) map[target]bool {
	t.Helper()
	f, err := os.Open(makefile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[target]bool{}
	in := false
	var unread []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "fuzz:"):
			in = true
		case in && strings.HasPrefix(line, "\t"):
			if m := makeFuzzRE.FindStringSubmatch(line); m != nil {
				out[target{m[1], m[2]}] = true
			} else {
				unread = append(unread, line)
			}
		case in:
			in = false
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	sort.Strings(unread)
	for _, l := range unread {
		t.Errorf("cannot read this line of the Makefile's fuzz target: %q", l)
	}
	return out
}
