package xen

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"syscall"
)

// Config is a parsed xl domain configuration file (xl.cfg(5)): settings of
// the form `key = value`, where a value is a quoted string, a number or a
// list of those. Only the keys the project reads get fields; every setting is
// kept in Values so that nothing is lost when a config is written back.
type Config struct {
	Name      string
	UUID      string // empty when the file does not fix one
	Type      string // "pv", "pvh", "hvm"; empty means xl's default
	MemoryMiB uint64 // 0 when unset
	VCPUs     int    // 0 when unset
	Kernel    string
	Ramdisk   string
	Extra     string // the guest kernel command line
	OnCrash   string

	// Values holds every setting by key, in the file's spelling.
	Values map[string]CfgValue
	// Keys lists the keys in the order they first appeared.
	Keys []string
}

// CfgValue is one value of an xl config: a string, a number or a list.
// Numbers are kept as text, as libxlu does, and converted on use.
type CfgValue struct {
	Kind CfgKind
	Text string     // for CfgString and CfgNumber
	List []CfgValue // for CfgList: strings and numbers only
}

// CfgKind says what a CfgValue holds.
type CfgKind int

const (
	CfgString CfgKind = iota
	CfgNumber
	CfgList
)

// MaxConfigSize bounds an xl config file. Real ones are a few hundred
// bytes; the bound matters because the path may come from a command on the
// bus, and the agent reads the file into its own memory.
const MaxConfigSize = 1 << 20

// LoadConfig reads and parses an xl config file. Only a regular file of at
// most MaxConfigSize bytes is read: a path naming /dev/zero, a FIFO or a
// directory is refused without reading, and the open cannot block (a FIFO
// with no writer would hold the caller forever).
func LoadConfig(path string) (*Config, error) {
	data, err := readConfigFile(path)
	if err != nil {
		return nil, fmt.Errorf("xl config %s: %w", path, err)
	}
	c, err := ParseConfig(data)
	if err != nil {
		return nil, fmt.Errorf("xl config %s: %w", path, err)
	}
	return c, nil
}

func readConfigFile(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	switch {
	case err != nil:
		return nil, err
	case !st.Mode().IsRegular():
		return nil, fmt.Errorf("not a regular file (%s)", st.Mode().Type())
	case st.Size() > MaxConfigSize:
		return nil, fmt.Errorf("%d bytes, at most %d", st.Size(), MaxConfigSize)
	}
	// The file may grow between Stat and the read.
	data, err := io.ReadAll(io.LimitReader(f, MaxConfigSize+1))
	if err == nil && len(data) > MaxConfigSize {
		err = fmt.Errorf("more than %d bytes", MaxConfigSize)
	}
	return data, err
}

// ParseConfig parses the text of an xl config file. It follows libxlu's
// grammar: settings end at a newline or ';', '#' starts a comment, strings
// are quoted with " or ' and take C escapes, lists are [a, b,] and may span
// lines, and `key += list` appends to an earlier list.
func ParseConfig(data []byte) (*Config, error) {
	p := cfgParser{src: string(data), line: 1}
	c := &Config{Values: map[string]CfgValue{}}
	for {
		p.skipBlank(false)
		if p.eof() {
			break
		}
		if p.peek() == '\n' || p.peek() == ';' {
			p.next()
			continue
		}
		key, err := p.ident()
		if err != nil {
			return nil, err
		}
		p.skipBlank(false)
		appendOp := false
		if strings.HasPrefix(p.src[p.pos:], "+=") {
			appendOp = true
			p.pos += 2
		} else if !p.eof() && p.peek() == '=' {
			p.pos++
		} else {
			return nil, p.errorf("expected '=' after %q", key)
		}
		p.skipBlank(false)
		v, err := p.value()
		if err != nil {
			return nil, fmt.Errorf("%q: %w", key, err)
		}
		p.skipBlank(false)
		if !p.eof() {
			if ch := p.peek(); ch != '\n' && ch != ';' {
				return nil, p.errorf("unexpected %q after the value of %q", ch, key)
			}
			p.next()
		}
		old, seen := c.Values[key]
		if appendOp {
			if !seen {
				old = CfgValue{Kind: CfgList}
			}
			if old.Kind != CfgList || v.Kind != CfgList {
				return nil, fmt.Errorf("xl config line %d: %q: += needs lists on both sides", p.line, key)
			}
			v = CfgValue{Kind: CfgList, List: append(append([]CfgValue{}, old.List...), v.List...)}
		}
		if !seen {
			c.Keys = append(c.Keys, key)
		}
		c.Values[key] = v
	}
	if err := c.fill(); err != nil {
		return nil, err
	}
	return c, nil
}

// fill copies the well-known keys into their fields, checking their types.
func (c *Config) fill() error {
	for _, f := range []struct {
		key string
		dst *string
	}{
		{"name", &c.Name}, {"uuid", &c.UUID}, {"type", &c.Type}, {"kernel", &c.Kernel},
		{"ramdisk", &c.Ramdisk}, {"extra", &c.Extra}, {"on_crash", &c.OnCrash},
	} {
		if v, ok := c.Values[f.key]; ok {
			if v.Kind != CfgString {
				return fmt.Errorf("xl config: %q must be a string", f.key)
			}
			*f.dst = v.Text
		}
	}
	if v, ok := c.Values["memory"]; ok {
		n, err := v.uint(1 << 40)
		if err != nil {
			return fmt.Errorf("xl config: \"memory\": %w", err)
		}
		c.MemoryMiB = n
	}
	if v, ok := c.Values["vcpus"]; ok {
		n, err := v.uint(4096)
		if err != nil {
			return fmt.Errorf("xl config: \"vcpus\": %w", err)
		}
		c.VCPUs = int(n)
	}
	return nil
}

// uint converts a number value, bounded so that later arithmetic (MiB to
// bytes) cannot overflow.
func (v CfgValue) uint(max uint64) (uint64, error) {
	if v.Kind != CfgNumber {
		return 0, fmt.Errorf("must be a number")
	}
	n, err := strconv.ParseUint(v.Text, 0, 64)
	if err != nil || n > max {
		return 0, fmt.Errorf("number %s out of range (max %d)", v.Text, max)
	}
	return n, nil
}

// Set replaces (or adds) a string setting and keeps the fields in step. The
// sim uses it when a restore gives a domain a new name.
func (c *Config) Set(key, value string) {
	if c.Values == nil {
		c.Values = map[string]CfgValue{}
	}
	if _, ok := c.Values[key]; !ok {
		c.Keys = append(c.Keys, key)
	}
	c.Values[key] = CfgValue{Kind: CfgString, Text: value}
	_ = c.fill() // a string setting cannot make fill fail for string keys
}

// Marshal writes the config back in xl syntax, one setting per line, in the
// original order. ParseConfig(c.Marshal()) gives back an equal Config.
func (c *Config) Marshal() []byte {
	var b strings.Builder
	keys := c.Keys
	if len(keys) != len(c.Values) { // hand-built config: fall back to sorted keys
		keys = make([]string, 0, len(c.Values))
		for k := range c.Values {
			keys = append(keys, k)
		}
		sort.Strings(keys)
	}
	for _, k := range keys {
		v, ok := c.Values[k]
		if !ok {
			continue
		}
		b.WriteString(k)
		b.WriteString(" = ")
		v.write(&b)
		b.WriteByte('\n')
	}
	return []byte(b.String())
}

func (v CfgValue) write(b *strings.Builder) {
	switch v.Kind {
	case CfgString:
		b.WriteString(quoteCfg(v.Text))
	case CfgNumber:
		b.WriteString(v.Text)
	case CfgList:
		b.WriteByte('[')
		for i, e := range v.List {
			if i > 0 {
				b.WriteString(", ")
			}
			e.write(b)
		}
		b.WriteByte(']')
	}
}

// quoteCfg quotes a string so that libxlu's dequoting gives it back.
func quoteCfg(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case ch == '"' || ch == '\\':
			b.WriteByte('\\')
			b.WriteByte(ch)
		case ch == '\n':
			b.WriteString(`\n`)
		case ch < 0x20 || ch == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, ch)
		default:
			b.WriteByte(ch)
		}
	}
	b.WriteByte('"')
	return b.String()
}
