package stepup

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// What was judged is what runs (SECURITY.md, row 21 and "What was judged
// is what runs, on every path").
//
// A request that runs on an earlier decision (the API retry carrying a
// token, the callback's replay, the GET a pass opens) must present what
// the rules judged. Method, path, query and body are bound by the record
// itself; the rest of what the rules read is bound by a digest the record
// keeps (Record.Judged), computed when the request is parked and again from
// the request that is to run: a difference refuses it, and nothing runs.

// judgedDomain starts every judged digest's input.
const judgedDomain = "stepup-judged\x00v1\x00"

// judged is the digest of what the rules judged of a request with header
// h: SHA-256 over a length-prefixed encoding of the custom attributes as
// sent to Authsignal (their JSON, whose map keys json.Marshal sorts), every
// value of Content-Type (which decides how a handler reads the body), and,
// for each header attribute of rl in order, its name and every value of it.
// A Custom hook's inputs are bound through its output, part of custom.
func judged(rl *rule, custom map[string]any, h http.Header) ([]byte, error) {
	doc, err := json.Marshal(custom)
	if err != nil {
		return nil, fmt.Errorf("custom attributes: %w", err)
	}
	var small [512]byte
	buf := append(small[:0], judgedDomain...)
	buf = judgedField(buf, doc)
	buf = judgedValues(buf, h.Values("Content-Type"))
	for _, k := range rl.headers {
		buf = judgedField(buf, []byte(k))
		buf = judgedValues(buf, h.Values(k))
	}
	sum := sha256.Sum256(buf)
	return sum[:], nil
}

// judgedField appends s with its length in front.
func judgedField(buf, s []byte) []byte {
	return append(binary.BigEndian.AppendUint64(buf, uint64(len(s))), s...)
}

// judgedValues appends how many values there are, then each one.
func judgedValues(buf []byte, vs []string) []byte {
	buf = binary.BigEndian.AppendUint64(buf, uint64(len(vs)))
	for _, v := range vs {
		buf = append(binary.BigEndian.AppendUint64(buf, uint64(len(v))), v...)
	}
	return buf
}

// judge reads the attributes of req, whose buffered body is body, and
// checks them against the digest a record kept of what was judged. It
// returns the attributes, equal to those judged, or the refusal: nothing
// may run on a request that presents something else.
func (r *rule) judge(req *http.Request, body []byte, want []byte) (map[string]any, *Error) {
	attrs, err := r.attributes(req, body)
	if err != nil {
		return nil, errNotJudged(fmt.Errorf("its attributes cannot be read: %w", err))
	}
	got, err := judged(r, attrs, req.Header)
	if err != nil {
		return nil, errNotJudged(err)
	}
	if !sameJudged(got, want) {
		return nil, errNotJudged(errors.New("its attributes, Content-Type or attribute headers differ from what was judged"))
	}
	return attrs, nil
}

// sameJudged reports whether got is the digest a record kept. A record
// without one (written by an older version, or planted) matches nothing:
// got always has sha256.Size bytes.
func sameJudged(got, kept []byte) bool { return subtle.ConstantTimeCompare(got, kept) == 1 }
