package stepup

import (
	"encoding/binary"
	"errors"

	"github.com/gorilla/securecookie"
	"github.com/gorilla/sessions"
)

// ownCodecs returns the codecs the guard writes its own cookie with when
// store is a gorilla CookieStore: copies of the store's codecs, with the
// same keys, hash, cipher and limits, whose serializer passes the guard's
// compact bytes through (securecookie.NopEncoder) instead of gob-encoding a
// gorilla map. The store itself is not changed; the application's own
// sessions keep their encoding. It returns nil, and the guard goes through
// the gorilla Store, for any other Store or a codec it does not know.
//
// The copies are taken in New: a CookieStore's codecs replaced later (key
// rotation at run time) are not seen by the guard.
func ownCodecs(store sessions.Store) []securecookie.Codec {
	cs, ok := store.(*sessions.CookieStore)
	if !ok || len(cs.Codecs) == 0 {
		return nil
	}
	out := make([]securecookie.Codec, 0, len(cs.Codecs))
	for _, c := range cs.Codecs {
		sc, ok := c.(*securecookie.SecureCookie)
		if !ok || sc == nil {
			return nil
		}
		own := *sc // hash key, cipher, max length and age: the store's
		own.SetSerializer(securecookie.NopEncoder{})
		out = append(out, &own)
	}
	return out
}

// The session data's encoding: a version byte, then
//
//	user, id (strings), open, established (varints),
//	parks: count, then id, expires (varint), done (byte) each,
//	grants, passes: count, then id, action, expires each,
//
// a string being its length (uvarint) and bytes. Decoding is strict:
// counts and lengths within the guard's own limits, nothing left over.
// The cookie is authenticated before it gets here; the checks keep a
// decoding bug from ever being more than an empty session. Version 1, as
// written before sessions could be established, has no established and
// still decodes.
const (
	sessionVersion = 2
	maxSessionStr  = 128 // user hash 16, ids 22, action codes 64
	maxSessionData = 4096
	maxParkRefs    = 20 // Config.MaxPending's upper bound
)

var errSessionData = errors.New("stepup: malformed session data")

// encodeSession returns d's encoding.
func encodeSession(d *sessionData) []byte {
	n := 1 + 3*binary.MaxVarintLen64 + len(d.User) + len(d.ID) + 3
	for _, p := range d.Parks {
		n += 2*binary.MaxVarintLen64 + len(p.ID) + 1
	}
	for _, gs := range [][]grantRef{d.Grants, d.Passes} {
		for _, g := range gs {
			n += 3*binary.MaxVarintLen64 + len(g.ID) + len(g.Action)
		}
	}
	b := make([]byte, 0, n)
	b = append(b, sessionVersion)
	b = appendStr(b, d.User)
	b = appendStr(b, d.ID)
	b = binary.AppendVarint(b, d.Open)
	b = binary.AppendVarint(b, d.Established)
	b = binary.AppendUvarint(b, uint64(len(d.Parks)))
	for _, p := range d.Parks {
		b = appendStr(b, p.ID)
		b = binary.AppendVarint(b, p.Expires)
		done := byte(0)
		if p.Done {
			done = 1
		}
		b = append(b, done)
	}
	for _, gs := range [][]grantRef{d.Grants, d.Passes} {
		b = binary.AppendUvarint(b, uint64(len(gs)))
		for _, g := range gs {
			b = appendStr(b, g.ID)
			b = appendStr(b, g.Action)
			b = binary.AppendVarint(b, g.Expires)
		}
	}
	return b
}

func appendStr(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

// decodeSession fills d from raw, or returns an error and leaves d
// partly filled (the caller then drops it).
func decodeSession(raw []byte, d *sessionData) error {
	if len(raw) == 0 || len(raw) > maxSessionData || raw[0] != sessionVersion && raw[0] != 1 {
		return errSessionData
	}
	// One string for the whole payload: every id and action below is a
	// substring of it, so decoding allocates once for the strings.
	dec := sessionDecoder{s: string(raw[1:])}
	d.User = dec.str()
	d.ID = dec.str()
	d.Open = dec.varint()
	if raw[0] == sessionVersion {
		d.Established = dec.varint()
	}
	if n := dec.count(maxParkRefs); n > 0 {
		d.Parks = make([]parkRef, n)
		for i := range d.Parks {
			d.Parks[i] = parkRef{ID: dec.str(), Expires: dec.varint(), Done: dec.flag()}
		}
	}
	for i, max := range []int{maxGrants, maxPasses} {
		var gs []grantRef
		if n := dec.count(max); n > 0 {
			gs = make([]grantRef, n)
			for j := range gs {
				gs[j] = grantRef{ID: dec.str(), Action: dec.str(), Expires: dec.varint()}
			}
		}
		if i == 0 {
			d.Grants = gs
		} else {
			d.Passes = gs
		}
	}
	if dec.bad || dec.i != len(dec.s) {
		return errSessionData
	}
	return nil
}

// sessionDecoder reads the encoding; after the first error (bad) every
// read returns the zero value.
type sessionDecoder struct {
	s   string
	i   int
	bad bool
}

func (d *sessionDecoder) uvarint() uint64 {
	if d.bad {
		return 0
	}
	var v uint64
	for shift := 0; shift < 64; shift += 7 {
		if d.i >= len(d.s) {
			break
		}
		c := d.s[d.i]
		d.i++
		if c < 0x80 {
			if shift == 63 && c > 1 {
				break
			}
			return v | uint64(c)<<shift
		}
		v |= uint64(c&0x7f) << shift
	}
	d.bad = true
	return 0
}

func (d *sessionDecoder) varint() int64 {
	u := d.uvarint()
	x := int64(u >> 1)
	if u&1 != 0 {
		x = ^x
	}
	return x
}

func (d *sessionDecoder) count(max int) int {
	n := d.uvarint()
	if n > uint64(max) {
		d.bad = true
		return 0
	}
	return int(n)
}

func (d *sessionDecoder) str() string {
	n := d.uvarint()
	if d.bad || n > maxSessionStr || n > uint64(len(d.s)-d.i) {
		d.bad = true
		return ""
	}
	s := d.s[d.i : d.i+int(n)]
	d.i += int(n)
	return s
}

func (d *sessionDecoder) flag() bool {
	if d.bad || d.i >= len(d.s) || d.s[d.i] > 1 {
		d.bad = true
		return false
	}
	d.i++
	return d.s[d.i-1] == 1
}
