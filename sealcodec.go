package stepup

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
)

// The plaintext of a sealed record (seal.go): every field of Record but
// the clear ones, each that is not its zero value, in the struct's order,
// as
//
//	name (uvarint length, the Go field name) | value
//
// Values by type: a string as a uvarint length and its bytes; an integer
// as a varint (signed) or uvarint; a true bool as nothing; a []byte as a
// uvarint length and its bytes (an empty one is left out, as nil); a
// [][]byte as a uvarint count and each []byte; an http.Header as uvarint
// counts of its keys and of all its values, then each key (a string) with
// a uvarint count of its values plus one (0 for a nil list) and each value
// (a string); any other type as its JSON encoding, as a []byte. The fields
// are found by reflection: a field added to Record is sealed without a
// change here. A name the decoder does not know, or out of order, is an
// error: a record written by a newer version does not open in an older one.

// fieldCodec says how a field of Record is encoded.
type fieldCodec uint8

const (
	codecString fieldCodec = iota
	codecInt
	codecUint
	codecBool
	codecBytes
	codecBytesList
	codecHeader
	codecJSON
)

// sealedField is a field of Record that goes into the sealed plaintext.
type sealedField struct {
	index int
	name  string
	codec fieldCodec
}

// clearField reports whether Record's field name is kept in clear beside
// Record.Sealed (Consumed is the Store's own).
func clearField(name string) bool {
	switch name {
	case "ID", "Kind", "Created", "Expires", "Park", "Consumed", "Sealed":
		return true
	}
	return false
}

// sealedFields are Record's sealed fields, in order; computed once, never
// changed.
var sealedFields = sealedFieldsOf(reflect.TypeFor[Record]())

func sealedFieldsOf(t reflect.Type) []sealedField {
	var out []sealedField
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() || clearField(f.Name) {
			continue
		}
		c := codecJSON
		switch {
		case f.Type == reflect.TypeFor[http.Header]():
			c = codecHeader
		case f.Type == reflect.TypeFor[[][]byte]():
			c = codecBytesList
		case f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Uint8:
			c = codecBytes
		case f.Type.Kind() == reflect.String:
			c = codecString
		case f.Type.Kind() == reflect.Bool:
			c = codecBool
		case f.Type.Kind() >= reflect.Int && f.Type.Kind() <= reflect.Int64:
			c = codecInt
		case f.Type.Kind() >= reflect.Uint && f.Type.Kind() <= reflect.Uint64:
			c = codecUint
		}
		out = append(out, sealedField{index: i, name: f.Name, codec: c})
	}
	return out
}

func appendLenBytes[T string | []byte](dst []byte, b T) []byte {
	return append(binary.AppendUvarint(dst, uint64(len(b))), b...)
}

// appendSealedFields appends the plaintext of rec to dst.
func appendSealedFields(dst []byte, rec *Record) ([]byte, error) {
	v := reflect.ValueOf(rec).Elem()
	for _, f := range sealedFields {
		fv := v.Field(f.index)
		if fv.IsZero() || (f.codec == codecBytes && fv.Len() == 0) {
			continue
		}
		dst = appendLenBytes(dst, f.name)
		switch f.codec {
		case codecString:
			dst = appendLenBytes(dst, fv.String())
		case codecInt:
			dst = binary.AppendVarint(dst, fv.Int())
		case codecUint:
			dst = binary.AppendUvarint(dst, fv.Uint())
		case codecBool:
		case codecBytes:
			dst = appendLenBytes(dst, fv.Bytes())
		case codecBytesList:
			list := *fv.Addr().Interface().(*[][]byte)
			dst = binary.AppendUvarint(dst, uint64(len(list)))
			for _, b := range list {
				dst = appendLenBytes(dst, b)
			}
		case codecHeader:
			h := *fv.Addr().Interface().(*http.Header)
			values := 0
			for _, vs := range h {
				values += len(vs)
			}
			dst = binary.AppendUvarint(binary.AppendUvarint(dst, uint64(len(h))), uint64(values))
			for k, vs := range h {
				dst = appendLenBytes(dst, k)
				n := uint64(0)
				if vs != nil {
					n = uint64(len(vs)) + 1
				}
				dst = binary.AppendUvarint(dst, n)
				for _, s := range vs {
					dst = appendLenBytes(dst, s)
				}
			}
		case codecJSON:
			b, err := json.Marshal(fv.Interface())
			if err != nil {
				return nil, fmt.Errorf("field %s: %w", f.name, err)
			}
			dst = appendLenBytes(dst, b)
		}
	}
	return dst, nil
}

// sealedReader reads a plaintext: bytes are sliced from buf, strings from
// text, its copy as one string.
type sealedReader struct {
	buf  []byte
	text string
	at   int
}

var errSealedFormat = errors.New("malformed sealed fields")

func (r *sealedReader) uvarint() (uint64, error) {
	n, k := binary.Uvarint(r.buf[r.at:])
	if k <= 0 {
		return 0, errSealedFormat
	}
	r.at += k
	return n, nil
}

func (r *sealedReader) varint() (int64, error) {
	n, k := binary.Varint(r.buf[r.at:])
	if k <= 0 {
		return 0, errSealedFormat
	}
	r.at += k
	return n, nil
}

// span returns the start and end of the next length-prefixed value.
func (r *sealedReader) span() (int, int, error) {
	n, err := r.uvarint()
	if err != nil || n > uint64(len(r.buf)-r.at) {
		return 0, 0, errSealedFormat
	}
	start := r.at
	r.at += int(n)
	return start, r.at, nil
}

func (r *sealedReader) string() (string, error) {
	start, end, err := r.span()
	return r.text[start:end], err
}

func (r *sealedReader) bytes() ([]byte, error) {
	start, end, err := r.span()
	if err != nil || start == end {
		return nil, err
	}
	return r.buf[start:end:end], nil
}

// count reads a count of items that each take at least one more byte.
func (r *sealedReader) count() (int, error) {
	n, err := r.uvarint()
	if err != nil || n > uint64(len(r.buf)-r.at) {
		return 0, errSealedFormat
	}
	return int(n), nil
}

// decodeSealedFields sets the sealed fields of rec from plain, which the
// record then shares: its byte slices point into plain.
func decodeSealedFields(plain []byte, rec *Record) error {
	r := &sealedReader{buf: plain, text: string(plain)}
	v := reflect.ValueOf(rec).Elem()
	next := 0
	for r.at < len(plain) {
		name, err := r.string()
		if err != nil {
			return err
		}
		i := next
		for i < len(sealedFields) && sealedFields[i].name != name {
			i++
		}
		if i == len(sealedFields) {
			return fmt.Errorf("sealed field %q unknown or out of order", name)
		}
		next = i + 1
		f := sealedFields[i]
		if err := r.field(f, v.Field(f.index)); err != nil {
			return fmt.Errorf("sealed field %s: %w", f.name, err)
		}
	}
	return nil
}

func (r *sealedReader) field(f sealedField, fv reflect.Value) error {
	switch f.codec {
	case codecString:
		s, err := r.string()
		if err != nil {
			return err
		}
		fv.SetString(s)
	case codecInt:
		n, err := r.varint()
		if err != nil || fv.OverflowInt(n) {
			return errSealedFormat
		}
		fv.SetInt(n)
	case codecUint:
		n, err := r.uvarint()
		if err != nil || fv.OverflowUint(n) {
			return errSealedFormat
		}
		fv.SetUint(n)
	case codecBool:
		fv.SetBool(true)
	case codecBytes:
		b, err := r.bytes()
		if err != nil {
			return err
		}
		fv.SetBytes(b)
	case codecBytesList:
		n, err := r.count()
		if err != nil {
			return err
		}
		list := make([][]byte, n)
		for i := range list {
			if list[i], err = r.bytes(); err != nil {
				return err
			}
		}
		*fv.Addr().Interface().(*[][]byte) = list
	case codecHeader:
		return r.header(fv.Addr().Interface().(*http.Header))
	case codecJSON:
		start, end, err := r.span()
		if err != nil {
			return err
		}
		return json.Unmarshal(r.buf[start:end], fv.Addr().Interface())
	}
	return nil
}

// header reads an http.Header, its values in one slice.
func (r *sealedReader) header(dst *http.Header) error {
	keys, err := r.count()
	if err != nil {
		return err
	}
	values, err := r.count()
	if err != nil {
		return err
	}
	h := make(http.Header, keys)
	all := make([]string, values)
	for range keys {
		k, err := r.string()
		if err != nil {
			return err
		}
		n, err := r.uvarint()
		if err != nil || n > uint64(len(all))+1 {
			return errSealedFormat
		}
		var vs []string
		if n > 0 {
			vs, all = all[:n-1:n-1], all[n-1:]
			for i := range vs {
				if vs[i], err = r.string(); err != nil {
					return err
				}
			}
		}
		if _, dup := h[k]; dup {
			return errSealedFormat
		}
		h[k] = vs
	}
	if len(all) != 0 {
		return errSealedFormat
	}
	*dst = h
	return nil
}
