package stepup

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxJSONDepth bounds the nesting of a JSON body the guard reads.
const maxJSONDepth = 64

// decodeJSON decodes body as exactly one JSON value, as encoding/json's
// Unmarshal would, and refuses what readers could see differently: an
// object that repeats a key under Unicode case folding (encoding/json gives
// a struct field the last of them, a map keeps both, other decoders the
// first), nesting beyond maxJSONDepth, and anything after the value
// (json.Decoder, which echo uses, reads the first value and stops).
func decodeJSON(body []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	v, err := decodeValue(dec, 0)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err == nil {
		return nil, errors.New("data after the JSON value")
	} else if err != io.EOF {
		return nil, fmt.Errorf("data after the JSON value: %w", err)
	}
	return v, nil
}

func decodeValue(dec *json.Decoder, depth int) (any, error) {
	if depth >= maxJSONDepth {
		return nil, fmt.Errorf("nested deeper than %d levels", maxJSONDepth)
	}
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return tok, nil
	}
	switch d {
	case '{':
		m := map[string]any{}
		folded := map[string]bool{}
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return nil, err
			}
			k, _ := kt.(string)
			fk := foldKey(k)
			if folded[fk] {
				return nil, fmt.Errorf("key %q repeated (names equal under case folding count as the same)", k)
			}
			folded[fk] = true
			v, err := decodeValue(dec, depth+1)
			if err != nil {
				return nil, err
			}
			m[k] = v
		}
		_, err := dec.Token()
		return m, err
	case '[':
		a := []any{}
		for dec.More() {
			v, err := decodeValue(dec, depth+1)
			if err != nil {
				return nil, err
			}
			a = append(a, v)
		}
		_, err := dec.Token()
		return a, err
	}
	return nil, fmt.Errorf("unexpected %q", d)
}

// jsonPath follows a dotted path, matching keys as encoding/json matches
// struct fields (Unicode case folding; decodeJSON made the match unique).
// null counts as absent, as it leaves a decoded field unchanged; an object
// or array where a value is expected is a refusal.
func jsonPath(doc any, path string) (any, bool, error) {
	cur := doc
	for _, part := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false, nil
		}
		v, found := m[part]
		if !found {
			for k, kv := range m {
				if strings.EqualFold(k, part) {
					v, found = kv, true
					break
				}
			}
		}
		if !found {
			return nil, false, nil
		}
		cur = v
	}
	switch cur.(type) {
	case nil:
		return nil, false, nil
	case string, json.Number, bool:
		return cur, true, nil
	}
	return nil, false, ambiguous("JSON %q is an object or array, not a value", path)
}

// scalarText is a JSON scalar as the text a form or query would carry.
func scalarText(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case json.Number:
		return v.String()
	case bool:
		return strconv.FormatBool(v)
	}
	return ""
}

// foldKey maps s to a canonical form such that foldKey(a) == foldKey(b)
// exactly when strings.EqualFold(a, b): each rune becomes the smallest rune
// of its Unicode simple-folding orbit. encoding/json and echo's binder
// match names this way, so "ſ" (U+017F) stands for "s" and the Kelvin sign
// for "k".
func foldKey(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			var b strings.Builder
			b.Grow(len(s))
			for _, r := range s {
				b.WriteRune(foldRune(r))
			}
			return b.String()
		}
	}
	// ASCII: the smallest rune of a letter's orbit is its upper case ("K"
	// is below the Kelvin sign, "S" below "ſ").
	return strings.ToUpper(s)
}

func foldRune(r rune) rune {
	m := r
	for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
		m = min(m, f)
	}
	return m
}

// convert turns the agreed value into the attribute's type. A value that
// does not convert is a refusal: the rules must not see "absent" where the
// handler sees something.
func convert(raw string, typ ValueType) (any, error) {
	switch typ {
	case TypeNumber:
		if !jsonNumber(raw) {
			return nil, fmt.Errorf("%q is not a plain decimal number", raw)
		}
		f, err := strconv.ParseFloat(raw, 64)
		if err != nil {
			return nil, fmt.Errorf("%q is out of range", raw)
		}
		return f, nil
	case TypeBool:
		b, err := strconv.ParseBool(raw)
		if err != nil {
			return nil, fmt.Errorf("%q is not a boolean", raw)
		}
		return b, nil
	}
	return raw, nil
}

// jsonNumber accepts the JSON number grammar only: -?(0|[1-9][0-9]*)
// (.[0-9]+)?([eE][+-]?[0-9]+)? — no spaces, "+", hex, underscores, leading
// zeros, "Inf" or "NaN", which readers (strconv with base 0, ParseFloat,
// encoding/json) accept differently or not at all.
func jsonNumber(s string) bool {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	digits := func() bool { // consumes [0-9]*, reports whether there was one
		start := i
		for i < len(s) && '0' <= s[i] && s[i] <= '9' {
			i++
		}
		return i > start
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case !digits():
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if !digits() {
			return false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if !digits() {
			return false
		}
	}
	return i == len(s)
}
