package policyfile

import (
	"bytes"
	"unicode/utf8"
)

// The lexical side of the YAML subset: lines, scalars, keys.

// plainText reports whether data is valid UTF-8 without tabs, control
// characters (other than "\n" and "\r\n"), a byte order mark or the line
// and paragraph separators YAML 1.1 knows (NEL, U+2028, U+2029).
func plainText(data []byte) bool {
	for i := 0; i < len(data); i++ {
		switch b := data[i]; {
		case b == '\n':
		case b == '\r':
			if i+1 >= len(data) || data[i+1] != '\n' {
				return false
			}
		case b < 0x20 || b == 0x7f:
			return false
		case b == 0xc2: // C1 controls, NEL among them
			if i+1 < len(data) && data[i+1] >= 0x80 && data[i+1] <= 0x9f {
				return false
			}
		case b == 0xe2: // U+2028, U+2029
			if i+2 < len(data) && data[i+1] == 0x80 && (data[i+2] == 0xa8 || data[i+2] == 0xa9) {
				return false
			}
		case b == 0xef: // U+FEFF
			if i+2 < len(data) && data[i+1] == 0xbb && data[i+2] == 0xbf {
				return false
			}
		}
	}
	return utf8.Valid(data)
}

// advance moves to the next content line: not blank and not only a
// comment.
func (d *yamlDecoder) advance() {
	for {
		if d.next >= len(d.data) {
			d.eof = true
			d.start, d.end = len(d.data), len(d.data)
			return
		}
		d.start = d.next
		if nl := bytes.IndexByte(d.data[d.start:], '\n'); nl >= 0 {
			d.end, d.next = d.start+nl, d.start+nl+1
		} else {
			d.end, d.next = len(d.data), len(d.data)
		}
		if d.end > d.start && d.data[d.end-1] == '\r' {
			d.end--
		}
		content := d.skipSpaces(d.start)
		if content < d.end && d.data[content] != '#' {
			d.indent = content - d.start
			return
		}
	}
}

func (d *yamlDecoder) skipSpaces(j int) int {
	for j < d.end && d.data[j] == ' ' {
		j++
	}
	return j
}

// lineEnds reports whether only spaces and perhaps a comment follow offset
// j on the current line. A comment's "#" must follow a space: one skipped
// here, or the one before j when afterSpace.
func (d *yamlDecoder) lineEnds(j int, afterSpace bool) bool {
	k := d.skipSpaces(j)
	return k == d.end || d.data[k] == '#' && (k > j || afterSpace)
}

func (d *yamlDecoder) startsWith(s string) bool {
	return bytes.HasPrefix(d.data[d.start+d.indent:d.end], []byte(s))
}

// dash reports whether the current line is a sequence item: "-" followed
// by a space or the line's end.
func (d *yamlDecoder) dash() bool {
	at := d.start + d.indent
	return d.data[at] == '-' && (at+1 == d.end || d.data[at+1] == ' ')
}

// isKeyByte: keys are [A-Za-z][A-Za-z0-9_]*, which covers the schema's
// field names and the usual misspellings of them.
func isKeyByte(c byte, first bool) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || !first && ('0' <= c && c <= '9' || c == '_')
}

// reserved reports whether a plain scalar might be anything but a string
// to YAML 1.1, YAML 1.2 or goccy/go-yaml: null, ~, booleans old and new,
// infinities and not-a-number, numbers in any base or spelling, dates and
// timestamps. It errs on the side of true.
func reserved(s []byte) bool {
	if len(s) == 0 {
		return true
	}
	switch len(s) {
	case 1:
		switch s[0] | 0x20 {
		case 'y', 'n', '~':
			return true
		}
	case 2, 3, 4, 5, 6:
		for _, w := range []string{"no", "on", "yes", "off", "null", "true", "false", ".inf", "+.inf", "-.inf", ".nan"} {
			if len(w) == len(s) && bytes.EqualFold(s, []byte(w)) {
				return true
			}
		}
	}
	switch c := s[0]; {
	case '0' <= c && c <= '9', c == '.', c == '+', c == '-', c == '_':
		// A number or a timestamp has no letter outside these; a duration
		// ("5m", "1h30m", "300ms") has one.
		for _, c := range s {
			if ('g' <= c|0x20 && c|0x20 <= 'z') && !bytes.ContainsRune([]byte("optxz"), rune(c|0x20)) {
				return false
			}
		}
		return true
	}
	return false
}

// plainFirst reports whether c may begin a plain scalar of the subset: not
// an indicator (YAML's, and "<" for goccy/go-yaml's merge key), not a
// space.
func plainFirst(c byte) bool {
	return c > ' ' && c < 0x7f && !bytes.ContainsRune([]byte("-?:,[]{}#&*!|>'\"%@`<=\\"), rune(c))
}

// scalar reads the value that starts at value: an offset of the current
// line in block context (then the line must end after it, and the decoder
// moves to the next line), or ^offset in a flow mapping (then d.flowEnd is
// where it ends). null is an empty value in block context. d.quoted tells
// whether it was quoted; the caller resolves a plain scalar's type.
func (d *yamlDecoder) scalar(value int) (s string, null bool, err error) {
	flow := value < 0
	j := value
	if flow {
		j = ^value
	} else if d.lineEnds(j, true) {
		d.advance()
		return "", true, nil
	}
	if j >= d.end {
		return "", false, errFallback
	}
	var end int // just after the scalar
	switch c := d.data[j]; {
	case c == '"' || c == '\'':
		s, end, err = d.quotedScalar(j)
		if err != nil {
			return "", false, err
		}
		d.quoted = true
		if !flow && !d.lineEnds(end, false) {
			return "", false, errFallback
		}
	case plainFirst(c):
		k := j
		for ; k < d.end; k++ {
			c := d.data[k]
			if c >= 0x80 {
				return "", false, errFallback
			}
			if flow {
				if c == ',' || c == '}' {
					break
				}
				if c == '{' || c == '[' || c == ']' || c == '#' || c == ':' {
					return "", false, errFallback
				}
			} else if c == '#' && d.data[k-1] == ' ' {
				break
			}
		}
		if flow && k == d.end {
			return "", false, errFallback // no "," or "}" on the line
		}
		end = k
		for d.data[k-1] == ' ' {
			k--
		}
		v := d.data[j:k]
		if v[len(v)-1] == ':' || bytes.Contains(v, []byte(": ")) {
			return "", false, errFallback
		}
		s = d.str8(v)
		d.quoted = false
	default:
		return "", false, errFallback
	}
	if flow {
		d.flowEnd = end
	} else {
		d.advance()
	}
	return s, false, nil
}

// quotedScalar reads a single- or double-quoted scalar that ends on its
// own line, and returns its value and the offset after the closing quote.
func (d *yamlDecoder) quotedScalar(j int) (string, int, error) {
	q := d.data[j]
	var buf []byte // only when the value differs from the text
	from := j + 1
	for k := j + 1; k < d.end; k++ {
		c := d.data[k]
		switch {
		case c == q && q == '\'' && k+1 < d.end && d.data[k+1] == '\'':
			buf = append(append(buf, d.data[from:k]...), '\'')
			k++
			from = k + 1
		case c == q:
			if buf == nil {
				return d.str8(d.data[j+1 : k]), k + 1, nil
			}
			return string(append(buf, d.data[from:k]...)), k + 1, nil
		case c == '\\' && q == '"':
			if k+1 >= d.end {
				return "", 0, errFallback
			}
			var r byte
			switch d.data[k+1] {
			case '\\', '"', '/':
				r = d.data[k+1]
			case 'n':
				r = '\n'
			case 't':
				r = '\t'
			default:
				return "", 0, errFallback
			}
			buf = append(append(buf, d.data[from:k]...), r)
			k++
			from = k + 1
		}
	}
	return "", 0, errFallback // a multi-line quoted scalar, or none
}

// str8 makes a string of b, sharing one string between equal short
// values.
func (d *yamlDecoder) str8(b []byte) string {
	if len(b) > 16 {
		return string(b)
	}
	if s, ok := d.intern[string(b)]; ok {
		return s
	}
	s := string(b)
	if len(d.intern) < 1024 {
		d.intern[s] = s
	}
	return s
}
