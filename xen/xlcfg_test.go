package xen

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// The configs of the nested lab and Debian's shipped examples parse.
func TestLoadConfigReal(t *testing.T) {
	c, err := LoadConfig("testdata/cfg/tiny.cfg")
	if err != nil {
		t.Fatal(err)
	}
	want := Config{Name: "tiny", Type: "pv", MemoryMiB: 128, VCPUs: 1, Kernel: "/guest/vmlinuz",
		Ramdisk: "/guest/initrd.gz", Extra: "console=hvc0 guestmode=loop", OnCrash: "preserve"}
	got := *c
	got.Values, got.Keys = nil, nil
	if !reflect.DeepEqual(got, want) {
		t.Errorf("tiny.cfg: got %+v, want %+v", got, want)
	}
	if strings.Join(c.Keys, ",") != "name,type,kernel,ramdisk,extra,memory,vcpus,on_crash" {
		t.Errorf("key order %v", c.Keys)
	}
	for _, f := range []string{"xlexample.hvm", "xlexample.pvlinux", "xlexample.pvhlinux", "tiny2.cfg"} {
		c, err := LoadConfig(filepath.Join("testdata/cfg", f))
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if c.Name == "" || c.MemoryMiB == 0 {
			t.Errorf("%s: name %q memory %d", f, c.Name, c.MemoryMiB)
		}
	}
	hvm, _ := LoadConfig("testdata/cfg/xlexample.hvm")
	disk := hvm.Values["disk"]
	if disk.Kind != CfgList || len(disk.List) != 1 || disk.List[0].Text != "/dev/vg/guest-volume,raw,xvda,rw" {
		t.Errorf("disk = %+v", disk)
	}
	if vif := hvm.Values["vif"]; vif.Kind != CfgList || len(vif.List) != 1 || vif.List[0].Text != "" {
		t.Errorf("vif = %+v", vif)
	}
}

func TestParseConfigSyntax(t *testing.T) {
	src := `# comment
name="a b" ; memory = 0x100   # trailing comment
extra = 'say \"hi\"\n\x41\101\\'
disk = [ 'a',
         "b", # a comment inside a list
       ]
disk += ['c']
vcpus=2;

empty = []
`
	c, err := ParseConfig([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != "a b" || c.MemoryMiB != 256 || c.VCPUs != 2 {
		t.Errorf("got %+v", c)
	}
	if c.Extra != "say \"hi\"\nAA\\" {
		t.Errorf("extra = %q", c.Extra)
	}
	var disks []string
	for _, v := range c.Values["disk"].List {
		disks = append(disks, v.Text)
	}
	if strings.Join(disks, ",") != "a,b,c" {
		t.Errorf("disk = %v", disks)
	}
	if e := c.Values["empty"]; e.Kind != CfgList || len(e.List) != 0 {
		t.Errorf("empty = %+v", e)
	}
}

func TestParseConfigErrors(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{`name "x"`, "line 1: expected '='"},
		{"\n\nname = ", "line 3: missing value"},
		{`name = "x`, "unterminated string"},
		{"name = \"x\ny\"", "newline in string"},
		{`disk = ['a' 'b']`, "expected ',' or ']'"},
		{`disk = ['a',`, "unterminated list"},
		{`disk = [['a']]`, "expected a value"},
		{`memory = "128"`, `"memory": must be a number`},
		{`memory = 12x`, "bad number"},
		{`memory = 99999999999999999999`, "bad number"},
		{`name = 1`, `"name" must be a string`},
		{`name = "a" "b"`, "unexpected"},
		{`9name = 1`, "expected a setting name"},
		{`x = 1` + "\n" + `x += [1]`, "+= needs lists"},
		{`vcpus = 100000`, "out of range"},
		{`extra = "\x"`, `\x without hex digits`},
		{`extra = "\777"`, "octal escape out of range"},
	} {
		_, err := ParseConfig([]byte(tc.src))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseConfig(%q) = %v, want an error with %q", tc.src, err, tc.want)
		}
	}
}

func TestConfigMarshalRoundTrip(t *testing.T) {
	data, _ := os.ReadFile("testdata/cfg/xlexample.hvm")
	c, err := ParseConfig(data)
	if err != nil {
		t.Fatal(err)
	}
	c.Set("name", "renamed \"x\"\n")
	c2, err := ParseConfig(c.Marshal())
	if err != nil {
		t.Fatalf("%v in\n%s", err, c.Marshal())
	}
	if !reflect.DeepEqual(c, c2) {
		t.Errorf("round trip changed the config:\n%+v\n%+v", c, c2)
	}
	if c2.Name != "renamed \"x\"\n" {
		t.Errorf("name %q", c2.Name)
	}
}

func FuzzParseConfig(f *testing.F) {
	files, _ := filepath.Glob("testdata/cfg/*")
	for _, file := range files {
		data, _ := os.ReadFile(file)
		f.Add(data)
	}
	f.Add([]byte(`a=[1,'x',"y\x41\101"]; b+=[2]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseConfig(data)
		if err != nil {
			return
		}
		// Whatever parses must survive a write and a re-parse unchanged.
		c2, err := ParseConfig(c.Marshal())
		if err != nil {
			t.Fatalf("re-parse of %q: %v\n%s", data, err, c.Marshal())
		}
		if !reflect.DeepEqual(c, c2) {
			t.Fatalf("round trip of %q changed it:\n%+v\n%+v", data, c, c2)
		}
	})
}
