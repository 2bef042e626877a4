package xen

import (
	"fmt"
	"strconv"
	"strings"
)

// cfgParser is a hand-written recursive-descent reader for the small xl
// config grammar. It works on bytes and never indexes past the end, so that
// no input can make it panic (FuzzParseConfig holds it to that).
type cfgParser struct {
	src  string
	pos  int
	line int
}

func (p *cfgParser) eof() bool  { return p.pos >= len(p.src) }
func (p *cfgParser) peek() byte { return p.src[p.pos] }

func (p *cfgParser) next() byte {
	ch := p.src[p.pos]
	p.pos++
	if ch == '\n' {
		p.line++
	}
	return ch
}

func (p *cfgParser) errorf(format string, args ...any) error {
	return fmt.Errorf("xl config line %d: %s", p.line, fmt.Sprintf(format, args...))
}

// skipBlank skips spaces, tabs, carriage returns and comments; newlines too
// when inside a list, where libxlu allows them.
func (p *cfgParser) skipBlank(newlines bool) {
	for !p.eof() {
		switch ch := p.peek(); {
		case ch == ' ' || ch == '\t' || ch == '\r':
			p.pos++
		case ch == '#':
			for !p.eof() && p.peek() != '\n' {
				p.pos++
			}
		case ch == '\n' && newlines:
			p.next()
		default:
			return
		}
	}
}

func isIdentStart(ch byte) bool {
	return ch == '_' || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z')
}

func isIdentChar(ch byte) bool { return isIdentStart(ch) || (ch >= '0' && ch <= '9') }

func (p *cfgParser) ident() (string, error) {
	start := p.pos
	if p.eof() || !isIdentStart(p.peek()) {
		if p.eof() {
			return "", p.errorf("expected a setting name")
		}
		return "", p.errorf("expected a setting name, found %q", p.peek())
	}
	for !p.eof() && isIdentChar(p.peek()) {
		p.pos++
	}
	return p.src[start:p.pos], nil
}

// value reads a string, a number, or a list of strings and numbers.
func (p *cfgParser) value() (CfgValue, error) {
	if p.eof() {
		return CfgValue{}, p.errorf("missing value")
	}
	if p.peek() != '[' {
		return p.atom()
	}
	p.pos++
	list := CfgValue{Kind: CfgList, List: []CfgValue{}}
	for {
		p.skipBlank(true)
		if p.eof() {
			return CfgValue{}, p.errorf("unterminated list")
		}
		if p.peek() == ']' {
			p.pos++
			return list, nil
		}
		v, err := p.atom()
		if err != nil {
			return CfgValue{}, err
		}
		list.List = append(list.List, v)
		p.skipBlank(true)
		if p.eof() {
			return CfgValue{}, p.errorf("unterminated list")
		}
		switch p.peek() {
		case ',':
			p.pos++
		case ']':
		default:
			return CfgValue{}, p.errorf("expected ',' or ']' in list, found %q", p.peek())
		}
	}
}

func (p *cfgParser) atom() (CfgValue, error) {
	if p.eof() {
		return CfgValue{}, p.errorf("missing value")
	}
	switch ch := p.peek(); {
	case ch == '"' || ch == '\'':
		s, err := p.quoted()
		return CfgValue{Kind: CfgString, Text: s}, err
	case ch >= '0' && ch <= '9':
		start := p.pos
		for !p.eof() && (isIdentChar(p.peek()) || p.peek() == '.') {
			p.pos++
		}
		text := p.src[start:p.pos]
		if _, err := strconv.ParseUint(text, 0, 64); err != nil {
			return CfgValue{}, p.errorf("bad number %q", text)
		}
		return CfgValue{Kind: CfgNumber, Text: text}, nil
	default:
		return CfgValue{}, p.errorf("expected a value, found %q", ch)
	}
}

// quoted reads a quoted string and undoes its escapes as libxlu does: \n, \t,
// \r, \a, \b, \f, \v, \\, \", \', \xHH and up to three octal digits.
func (p *cfgParser) quoted() (string, error) {
	quote := p.next()
	var b strings.Builder
	for {
		if p.eof() {
			return "", p.errorf("unterminated string")
		}
		ch := p.next()
		switch {
		case ch == quote:
			return b.String(), nil
		case ch == '\n':
			return "", p.errorf("newline in string")
		case ch != '\\':
			b.WriteByte(ch)
			continue
		}
		if p.eof() {
			return "", p.errorf("unterminated string")
		}
		esc := p.next()
		switch esc {
		case 'n':
			b.WriteByte('\n')
		case 't':
			b.WriteByte('\t')
		case 'r':
			b.WriteByte('\r')
		case 'a':
			b.WriteByte('\a')
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case 'v':
			b.WriteByte('\v')
		case 'x':
			n, digits := 0, 0
			for digits < 2 && !p.eof() && strings.IndexByte("0123456789abcdefABCDEF", p.peek()) >= 0 {
				d, _ := strconv.ParseUint(p.src[p.pos:p.pos+1], 16, 8)
				n = n*16 + int(d)
				p.pos++
				digits++
			}
			if digits == 0 {
				return "", p.errorf(`\x without hex digits`)
			}
			b.WriteByte(byte(n))
		case '0', '1', '2', '3', '4', '5', '6', '7':
			n, digits := int(esc-'0'), 1
			for digits < 3 && !p.eof() && p.peek() >= '0' && p.peek() <= '7' {
				n = n*8 + int(p.peek()-'0')
				p.pos++
				digits++
			}
			if n > 0xff {
				return "", p.errorf("octal escape out of range")
			}
			b.WriteByte(byte(n))
		case '\n':
			return "", p.errorf("newline in string")
		default: // \\ \" \' and any other character stand for themselves
			b.WriteByte(esc)
		}
	}
}
