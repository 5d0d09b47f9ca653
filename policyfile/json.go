package policyfile

import (
	"bytes"
	"encoding/json"
	"fmt"
	"unicode/utf8"
)

// A JSON policy file is decoded here, in one pass and without
// reflection, rather than by the YAML decoder, which takes seconds and
// gigabytes for a table of 100,000 entries. It is as strict as the YAML
// path: unknown fields and duplicate keys are refused (matched exactly,
// case included, as the YAML decoder matches them), and so is a value of
// the wrong type; errors carry [line:column]. Only a document that
// encoding/json calls valid comes here; anything else (a YAML flow
// mapping, JSON with a trailing comma, which YAML accepts) goes to the
// YAML decoder as before.

// isJSON reports whether data is a JSON object (after white space) that
// encoding/json accepts. A byte order mark leaves it to the YAML decoder.
func isJSON(data []byte) bool {
	t := bytes.TrimLeft(data, " \t\r\n")
	return len(t) > 0 && t[0] == '{' && json.Valid(data)
}

// jsonDecoder walks a document json.Valid accepted.
type jsonDecoder struct {
	data []byte
	i    int
}

// decodeJSON decodes a document for which isJSON is true into f.
func decodeJSON(data []byte, f *File) error {
	d := &jsonDecoder{data: data}
	// Room for every entry up front (each has a route, or is refused).
	f.Policies = make([]Entry, 0, bytes.Count(data, []byte(`"route"`)))
	return d.object(func(key string, at int) error {
		if key != "policies" {
			return d.unknown(key, at)
		}
		return d.array(func() error {
			var e Entry
			if err := d.entry(&e); err != nil {
				return err
			}
			f.Policies = append(f.Policies, e)
			return nil
		})
	})
}

func (d *jsonDecoder) entry(e *Entry) error {
	return d.object(func(key string, at int) error {
		switch key {
		case "method":
			return d.str(&e.Method)
		case "route":
			return d.str(&e.Route)
		case "action":
			return d.str(&e.Action)
		case "remember":
			return d.str(&e.Remember)
		case "review":
			return d.str(&e.Review)
		case "failOpen":
			return d.boolean(&e.FailOpen)
		case "unenrolled":
			return d.str(&e.Unenrolled)
		case "methods":
			return d.array(func() error {
				var m string
				err := d.str(&m)
				e.Methods = append(e.Methods, m)
				return err
			})
		case "attributes":
			return d.array(func() error {
				var a Attribute
				err := d.object(func(key string, at int) error {
					switch key {
					case "name":
						return d.str(&a.Name)
					case "from":
						return d.str(&a.From)
					case "key":
						return d.str(&a.Key)
					case "type":
						return d.str(&a.Type)
					case "display":
						return d.boolean(&a.Display)
					}
					return d.unknown(key, at)
				})
				e.Attributes = append(e.Attributes, a)
				return err
			})
		}
		return d.unknown(key, at)
	})
}

func (d *jsonDecoder) space() {
	for d.i < len(d.data) {
		switch d.data[d.i] {
		case ' ', '\t', '\r', '\n':
			d.i++
		default:
			return
		}
	}
}

// peek returns the next byte after white space, 0 at the end.
func (d *jsonDecoder) peek() byte {
	d.space()
	if d.i >= len(d.data) {
		return 0
	}
	return d.data[d.i]
}

// object calls field for every key of an object (null is no object),
// refusing a key it has seen before; field decodes the value.
func (d *jsonDecoder) object(field func(key string, at int) error) error {
	switch d.peek() {
	case 'n':
		return d.null()
	case '{':
	default:
		return d.typeError("an object")
	}
	d.i++
	type seen struct {
		key string
		at  int
	}
	var buf [8]seen // the schema's objects have at most 8 keys
	keys := buf[:0]
	if d.peek() == '}' {
		d.i++
		return nil
	}
	for {
		at := d.i
		key, err := d.string()
		if err != nil {
			return err
		}
		for _, k := range keys {
			if k.key == key {
				return fmt.Errorf("%s mapping key %q already defined at %s", d.pos(at), key, d.pos(k.at))
			}
		}
		keys = append(keys, seen{key, at})
		if d.peek() != ':' {
			return d.syntax()
		}
		d.i++
		if err := field(key, at); err != nil {
			return err
		}
		switch d.peek() {
		case ',':
			d.i++
			d.space()
		case '}':
			d.i++
			return nil
		default:
			return d.syntax()
		}
	}
}

// array calls elem for every element of an array (null is none).
func (d *jsonDecoder) array(elem func() error) error {
	switch d.peek() {
	case 'n':
		return d.null()
	case '[':
	default:
		return d.typeError("an array")
	}
	d.i++
	if d.peek() == ']' {
		d.i++
		return nil
	}
	for {
		if err := elem(); err != nil {
			return err
		}
		switch d.peek() {
		case ',':
			d.i++
		case ']':
			d.i++
			return nil
		default:
			return d.syntax()
		}
	}
}

// str decodes a string or null into s.
func (d *jsonDecoder) str(s *string) error {
	switch d.peek() {
	case 'n':
		return d.null()
	case '"':
		v, err := d.string()
		*s = v
		return err
	}
	return d.typeError("a string")
}

func (d *jsonDecoder) boolean(b *bool) error {
	d.space()
	switch {
	case bytes.HasPrefix(d.data[d.i:], []byte("true")):
		*b = true
		d.i += 4
		return nil
	case bytes.HasPrefix(d.data[d.i:], []byte("false")):
		*b = false
		d.i += 5
		return nil
	case d.peek() == 'n':
		return d.null()
	}
	return d.typeError("a bool")
}

func (d *jsonDecoder) null() error {
	d.space()
	if !bytes.HasPrefix(d.data[d.i:], []byte("null")) {
		return d.syntax()
	}
	d.i += 4
	return nil
}

// string decodes the string at d.i; escapes go through encoding/json.
func (d *jsonDecoder) string() (string, error) {
	if d.peek() != '"' {
		return "", d.syntax()
	}
	start := d.i
	escaped := false
	for j := start + 1; j < len(d.data); j++ {
		switch c := d.data[j]; {
		case c == '\\':
			escaped = true
			j++
		case c == '"':
			d.i = j + 1
			raw := d.data[start:d.i]
			if !escaped && utf8.Valid(raw) {
				return string(raw[1 : len(raw)-1]), nil
			}
			var s string
			if err := json.Unmarshal(raw, &s); err != nil {
				return "", fmt.Errorf("%s %v", d.pos(start), err)
			}
			return s, nil
		}
	}
	return "", d.syntax()
}

func (d *jsonDecoder) unknown(key string, at int) error {
	return fmt.Errorf("%s unknown field %q", d.pos(at), key)
}

func (d *jsonDecoder) typeError(want string) error {
	return fmt.Errorf("%s cannot unmarshal %s into %s", d.pos(d.i), d.kind(), want)
}

func (d *jsonDecoder) kind() string {
	switch d.peek() {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a bool"
	case 'n':
		return "null"
	}
	return "a number"
}

// syntax is for what json.Valid should have refused.
func (d *jsonDecoder) syntax() error {
	return fmt.Errorf("%s malformed JSON", d.pos(d.i))
}

// pos is offset's [line:column], both from 1, as the YAML decoder writes
// them.
func (d *jsonDecoder) pos(offset int) string {
	offset = min(offset, len(d.data))
	line := 1 + bytes.Count(d.data[:offset], []byte("\n"))
	col := offset - bytes.LastIndexByte(d.data[:offset], '\n')
	return fmt.Sprintf("[%d:%d]", line, col)
}
