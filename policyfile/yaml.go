package policyfile

import (
	"bytes"
	"errors"
	"fmt"
	"unicode/utf8"
)

// A YAML policy file written the way policy files are written — block
// mappings and block sequences of the schema's fields, one-line flow
// mappings of scalars ({name: a, from: form, key: a}), plain, single- and
// double-quoted scalars on one line, comments, blank lines, CRLF line ends
// and an optional leading "---" — is decoded here in one pass, without
// reflection, rather than by goccy/go-yaml, which takes seconds and
// gigabytes for a table of 100,000 entries.
//
// It is as strict as the YAML decoder: unknown fields and duplicate keys
// are refused, keys are matched exactly, errors carry [line:column]; a
// refusal stands once the whole document is known to lie in the subset. It
// refuses nothing else. Whatever lies outside the subset, or whatever it is
// not sure it reads as goccy/go-yaml reads it, is left to goccy/go-yaml
// (errFallback): anchors, aliases, tags, flow sequences, nested or
// multi-line flow mappings, block and multi-line scalars, directives, more
// than one document, tabs, control characters, a byte order mark, a plain
// scalar whose type is not obviously a string (null, ~, true/false,
// yes/no/on/off, numbers in any spelling, timestamps), escapes other than
// \\ \" \/ \n \t, quoted or unusual keys, a key not followed by ": ".
// FuzzParseYAMLAsGoccy checks that whatever this decoder accepts,
// goccy/go-yaml accepts and reads identically, and whatever it refuses,
// goccy/go-yaml refuses too.

// errFallback: the document is not in the subset; goccy/go-yaml decodes it.
var errFallback = errors.New("policyfile: outside the YAML subset")

// yamlDecoder walks a document line by line. The current line is the next
// content line (not blank, not only a comment); eof when there is none.
type yamlDecoder struct {
	data   []byte
	start  int // offset of the current line
	end    int // end of its content, before "\r\n" or "\n"
	next   int // offset of the line after it
	indent int // spaces before its content
	eof    bool
	// What the last scalar read was: quoted, and in a flow mapping where
	// it ended.
	quoted  bool
	flowEnd int
	refusal error             // the first unknown field or repeated key
	intern  map[string]string // short repeated values (methods, sources, types) share one string
}

// decodeYAML decodes data into f if data lies inside the subset. It
// returns errFallback (and leaves f to be discarded) when it does not.
func decodeYAML(data []byte, f *File) error {
	if !plainText(data) {
		return errFallback
	}
	d := &yamlDecoder{data: data, intern: make(map[string]string, 64)}
	d.advance()
	if !d.eof && d.indent == 0 && d.startsWith("---") {
		// A document start marker on its own line (a comment may follow).
		if !d.lineEnds(d.start+3, false) {
			return errFallback
		}
		d.advance()
	}
	if d.eof {
		return nil
	}
	if d.indent != 0 {
		return errFallback
	}
	err := d.mapping(0, d.start, func(key []byte, at, value int) error {
		if string(key) != "policies" {
			return d.unknown(key, at, value)
		}
		return d.sequence(at-d.start, value, func(item int) error {
			var e Entry
			if err := d.entry(&e, item); err != nil {
				return err
			}
			if f.Policies == nil { // room for every entry (each has a route, or is refused)
				f.Policies = make([]Entry, 0, bytes.Count(data, []byte("route")))
			}
			f.Policies = append(f.Policies, e)
			return nil
		})
	})
	if err != nil {
		return err
	}
	return d.refusal
}

// entry decodes the mapping that starts at offset item of the current line.
func (d *yamlDecoder) entry(e *Entry, item int) error {
	return d.item(item, func(key []byte, at, value int) error {
		switch string(key) {
		case "method":
			return d.str(&e.Method, value)
		case "route":
			return d.str(&e.Route, value)
		case "action":
			return d.str(&e.Action, value)
		case "remember":
			return d.str(&e.Remember, value)
		case "review":
			return d.str(&e.Review, value)
		case "failOpen":
			return d.boolean(&e.FailOpen, value)
		case "unenrolled":
			return d.str(&e.Unenrolled, value)
		case "methods":
			return errFallback // a list of names, usually written [PASSKEY]: goccy reads it
		case "attributes":
			if value < 0 {
				return errFallback // a flow sequence, or a flow mapping's value
			}
			return d.sequence(at-d.start, value, func(item int) error {
				var a Attribute
				err := d.item(item, func(key []byte, at, value int) error {
					switch string(key) {
					case "name":
						return d.str(&a.Name, value)
					case "from":
						return d.str(&a.From, value)
					case "key":
						return d.str(&a.Key, value)
					case "type":
						return d.str(&a.Type, value)
					case "display":
						return d.boolean(&a.Display, value)
					}
					return d.unknown(key, at, value)
				})
				e.Attributes = append(e.Attributes, a)
				return err
			})
		}
		return d.unknown(key, at, value)
	})
}

// A field callback gets the key, its offset and where its value starts:
// an offset on the key's line in block context, or ^offset (negative) in a
// flow mapping. The callback decodes the value; in block context it leaves
// the decoder on the first line after it.
type field func(key []byte, at, value int) error

// item decodes a sequence item's mapping, block or flow, starting at
// offset at of the current line.
func (d *yamlDecoder) item(at int, fn field) error {
	if d.data[at] == '{' {
		return d.flowMapping(at, fn)
	}
	return d.mapping(at-d.start, at, fn)
}

// mapping decodes a block mapping whose keys sit at column indent (from 0),
// the first at offset first of the current line.
func (d *yamlDecoder) mapping(indent, first int, fn field) error {
	var seen keySet
	at := first
	for {
		key, value, err := d.key(at)
		if err != nil {
			return err
		}
		seen.add(d, key, at)
		if err := fn(key, at, value); err != nil {
			return err
		}
		switch {
		case d.eof || d.indent < indent:
			return nil
		case d.indent > indent:
			return errFallback // a continuation line, or nesting the schema does not have
		}
		at = d.start + d.indent
	}
}

// key reads "key:" at offset at, followed by a space or the line's end,
// and returns where the value starts (after the spaces).
func (d *yamlDecoder) key(at int) (key []byte, value int, err error) {
	j := at
	for j < d.end && isKeyByte(d.data[j], j == at) {
		j++
	}
	if j == at || j >= d.end || d.data[j] != ':' || (j+1 < d.end && d.data[j+1] != ' ') {
		return nil, 0, errFallback
	}
	key = d.data[at:j]
	if reserved(key) {
		return nil, 0, errFallback
	}
	return key, d.skipSpaces(j + 1), nil
}

// sequence decodes the block sequence that is the value of a key at
// column parent, the value starting at offset value of the key's line: an
// empty value (null), or items "- " at one column ≥ parent on the lines
// below.
func (d *yamlDecoder) sequence(parent, value int, item func(at int) error) error {
	if !d.lineEnds(value, true) {
		return errFallback // a flow sequence, a scalar, an anchor, a tag…
	}
	d.advance()
	if d.eof || d.indent < parent || !d.dash() {
		return nil // null: the caller sees the line
	}
	n := d.indent
	for !d.eof && d.indent == n && d.dash() {
		at := d.skipSpaces(d.start + n + 1)
		if at == d.start+n+1 || d.lineEnds(at, true) {
			return errFallback // "-" alone, or "-x"
		}
		if err := item(at); err != nil {
			return err
		}
		if !d.eof && d.indent > n {
			return errFallback
		}
	}
	return nil
}

// flowMapping decodes a mapping of scalars on one line, "{k: v, k: v}",
// starting at offset at, then moves to the next line.
func (d *yamlDecoder) flowMapping(at int, fn field) error {
	var seen keySet
	j := d.skipSpaces(at + 1)
	for {
		k := j
		for j < d.end && isKeyByte(d.data[j], j == k) {
			j++
		}
		if j == k || j+1 >= d.end || d.data[j] != ':' || d.data[j+1] != ' ' {
			return errFallback // "{}", "{k:v}", "{k}", a quoted key, a trailing comma…
		}
		key := d.data[k:j]
		if reserved(key) {
			return errFallback
		}
		seen.add(d, key, k)
		if err := fn(key, k, ^d.skipSpaces(j+1)); err != nil {
			return err
		}
		j = d.skipSpaces(d.flowEnd)
		if j >= d.end {
			return errFallback
		}
		switch d.data[j] {
		case ',':
			j = d.skipSpaces(j + 1)
			continue
		case '}':
			if !d.lineEnds(j+1, false) {
				return errFallback
			}
			d.advance()
			return nil
		}
		return errFallback
	}
}

// str decodes a scalar that YAML and goccy/go-yaml both read as a string,
// or an empty value (null, which leaves s as it is).
func (d *yamlDecoder) str(s *string, value int) error {
	v, null, err := d.scalar(value)
	if err != nil || null {
		return err
	}
	if !d.quoted && reserved([]byte(v)) {
		return errFallback
	}
	*s = v
	return nil
}

// boolean decodes the plain scalars true and false, or an empty value.
func (d *yamlDecoder) boolean(b *bool, value int) error {
	v, null, err := d.scalar(value)
	switch {
	case err != nil || null:
		return err
	case v == "true" && !d.quoted:
		*b = true
	case v == "false" && !d.quoted:
		*b = false
	default:
		return errFallback
	}
	return nil
}

// unknown refuses a key the schema does not have, and reads its value if
// it is a scalar.
func (d *yamlDecoder) unknown(key []byte, at, value int) error {
	d.refuse(fmt.Errorf("%s unknown field %q", d.pos(at), key))
	_, _, err := d.scalar(value)
	return err
}

// refuse records a refusal: unknown fields and repeated keys. The first
// one is the result, but only once the whole document is known to lie in
// the subset: goccy/go-yaml reads some documents outside it so that it
// does not see the key at all.
func (d *yamlDecoder) refuse(err error) {
	if d.refusal == nil {
		d.refusal = err
	}
}

// keySet refuses a key seen before in one mapping (the schema's mappings
// have at most 6 keys).
type keySet struct {
	keys [8]struct {
		key []byte
		at  int
	}
	n int
}

func (s *keySet) add(d *yamlDecoder, key []byte, at int) {
	for _, k := range s.keys[:s.n] {
		if bytes.Equal(k.key, key) {
			d.refuse(fmt.Errorf("%s mapping key %q already defined at %s", d.pos(at), key, d.pos(k.at)))
			return
		}
	}
	if s.n < len(s.keys) {
		s.keys[s.n].key, s.keys[s.n].at = key, at
		s.n++
	}
}

// pos is offset's [line:column], both from 1, as goccy/go-yaml writes them
// (the column counts characters).
func (d *yamlDecoder) pos(offset int) string {
	line := 1 + bytes.Count(d.data[:offset], []byte("\n"))
	col := 1 + utf8.RuneCount(d.data[bytes.LastIndexByte(d.data[:offset], '\n')+1:offset])
	return fmt.Sprintf("[%d:%d]", line, col)
}
