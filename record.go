package stepup

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Kind says what a Record is for.
//
// For Store implementations; an application does not need it.
type Kind uint8

// The kinds of records the guard keeps in a Store.
const (
	KindPark      Kind = iota + 1 // a parked browser request, replayed by the callback
	KindAPI                       // an API challenge, redeemed by a retry carrying Step-Up-Token
	KindPass                      // a single-use pass for the GET a callback redirects to
	KindGrant                     // a Remember grant for one user and action
	KindUsed                      // a token that was spent
	KindOutcome                   // the remembered response of a replay
	KindSignIn                    // a pending sign-in of a browser, finished by the callback in that browser
	KindSignInAPI                 // a pending sign-in of an API client, finished by its retry carrying Step-Up-Token
	KindReview                    // a request parked for a reviewer (Policy.Review), run once by its status URL after approval
	KindDecision                  // a reviewer's approval of a KindReview, learned from a webhook (Guard.Webhook)
)

func (k Kind) valid() bool { return k >= KindPark && k <= KindDecision }

// Record is what the guard keeps server-side. A record is written once with
// Put and never modified afterwards, except for the move from pending to
// consumed that Consume makes.
//
// For Store implementations; an application does not need it.
type Record struct {
	ID       string      `json:"id"`
	Kind     Kind        `json:"kind"`
	UserID   string      `json:"user,omitempty"`
	Action   string      `json:"action,omitempty"`
	Method   string      `json:"method,omitempty"`
	Path     string      `json:"path,omitempty"`  // escaped path, always starting with one "/"
	Query    string      `json:"query,omitempty"` // raw query, without "?"
	Header   http.Header `json:"header,omitempty"`
	Body     []byte      `json:"body,omitempty"`
	BodyHash []byte      `json:"bodyHash,omitempty"` // SHA-256 of the body, for API challenges
	// Judged is what the rules judged when the request was parked
	// (KindPark, KindAPI), and carried on to the pass a parked GET gets
	// (KindPass): a SHA-256 over the custom attributes as sent to
	// Authsignal, every Content-Type value and every value of each header a
	// header attribute reads (see judged). A retry, a replay or a pass
	// runs only when the request presents the same.
	Judged   []byte        `json:"judged,omitempty"`
	Remember time.Duration `json:"remember,omitempty"` // grant to give when the step-up succeeds
	Shown    [][]byte      `json:"shown,omitempty"`    // hashes of the tokens the track handed out with the challenge; they never redeem it
	Status   int           `json:"status,omitempty"`   // outcome status; a decision's: 200, approved
	// VerificationMethod is the method a grant (KindGrant) was earned with,
	// as validate reported it when it is one of Authsignal's names, else
	// "": a grant lets through only a policy whose Methods accept it.
	VerificationMethod string    `json:"verificationMethod,omitempty"`
	Created            time.Time `json:"created"`
	Expires            time.Time `json:"expires"`
	Consumed           bool      `json:"consumed,omitempty"`
	// Methods are the verification methods a challenge (KindPark, KindAPI)
	// accepts: its policy's Methods when it was opened; none accepts any.
	Methods MethodSet `json:"methods,omitempty"`
	// Trace is what Config.OnStep kept with a parked request (KindPark,
	// KindAPI) to link its replay to it (Step.Trace).
	Trace string `json:"trace,omitempty"`
	// Session is the session a review park (KindReview) is bound to: the
	// application's (Config.SessionID) or the guard's own session id. Only
	// a visit from that session, of that user, runs it.
	Session string `json:"session,omitempty"`
	// Park names the challenge (KindPark, KindAPI) that a record written
	// after it was passed (KindUsed, KindOutcome, KindPass, KindGrant)
	// follows; a bounded store lets such a record take the room reserved
	// for it when the challenge was created.
	Park string `json:"park,omitempty"`
	// Sealed holds, when the guard wrote the record, every other field
	// but the ones above a Store needs (ID, Kind, Created, Expires, Park)
	// encrypted and authenticated together with them (seal.go). A Store
	// keeps it as it keeps Body.
	Sealed []byte `json:"sealed,omitempty"`
}

const recordVersion = 1

// MarshalRecord encodes a record for stores that keep bytes.
//
// For Store implementations; an application does not need it.
func MarshalRecord(rec *Record) ([]byte, error) {
	return json.Marshal(struct {
		V int `json:"v"`
		*Record
	}{recordVersion, rec})
}

// UnmarshalRecord decodes and checks what MarshalRecord produced. Bytes
// from a store are treated as untrusted: anything malformed is an error.
//
// For Store implementations; an application does not need it.
func UnmarshalRecord(b []byte) (*Record, error) {
	var aux struct {
		V int `json:"v"`
		Record
	}
	if err := json.Unmarshal(b, &aux); err != nil {
		return nil, fmt.Errorf("stepup: decoding record: %w", err)
	}
	if aux.V != recordVersion {
		return nil, fmt.Errorf("stepup: decoding record: unknown version %d", aux.V)
	}
	rec := aux.Record
	if err := rec.check(); err != nil {
		return nil, err
	}
	return &rec, nil
}

// check reports whether a record read back from a store is well formed.
func (r *Record) check() error {
	switch {
	case r.ID == "" || len(r.ID) > 128:
		return fmt.Errorf("stepup: record: bad id")
	case len(r.Park) > 128:
		return fmt.Errorf("stepup: record %s: bad park id", r.ID)
	case !r.Kind.valid():
		return fmt.Errorf("stepup: record %s: unknown kind %d", r.ID, r.Kind)
	case r.Path != "" && !safePath(r.Path):
		return fmt.Errorf("stepup: record %s: unsafe path", r.ID)
	case !safeQuery(r.Query):
		return fmt.Errorf("stepup: record %s: unsafe query", r.ID)
	case r.Method != "" && !validMethod(r.Method):
		return fmt.Errorf("stepup: record %s: bad method", r.ID)
	case r.Expires.IsZero():
		return fmt.Errorf("stepup: record %s: no expiry", r.ID)
	case len(r.Judged) != 0 && len(r.Judged) != sha256.Size:
		return fmt.Errorf("stepup: record %s: bad judged digest", r.ID)
	case !validTrace(r.Trace):
		return fmt.Errorf("stepup: record %s: bad trace", r.ID)
	case len(r.Shown) > maxShown:
		return fmt.Errorf("stepup: record %s: too many shown tokens", r.ID)
	case r.VerificationMethod != "" && !knownMethod(r.VerificationMethod):
		return fmt.Errorf("stepup: record %s: unknown verification method", r.ID)
	case !r.Methods.valid():
		return fmt.Errorf("stepup: record %s: bad accepted methods", r.ID)
	}
	for _, h := range r.Shown {
		if len(h) != sha256.Size {
			return fmt.Errorf("stepup: record %s: bad shown token hash", r.ID)
		}
	}
	return nil
}

// clone is the copy of a stored record that Get and Consume hand out. Its
// strings are shared (they are immutable); everything a caller could write
// into is its own: the header (map and values) and the byte slices.
func (r *Record) clone() *Record {
	c := *r
	c.Header = r.Header.Clone()
	c.Body, c.BodyHash, c.Judged, c.Shown, c.Sealed = r.copyBytes()
	return &c
}

// copyBytes copies the body, the body hash, the judged digest, the shown
// hashes and the sealed bytes into one allocation (and the shown hashes'
// slice into a second one), each as append([]byte(nil), b...) would: nil
// when empty. Each copy's capacity ends where it does, so that appending to
// one never writes into the next.
func (r *Record) copyBytes() (body, bodyHash, judged []byte, shown [][]byte, sealed []byte) {
	arena := make([]byte, 0, r.byteLen())
	take := func(b []byte) []byte {
		if len(b) == 0 {
			return nil
		}
		start := len(arena)
		arena = append(arena, b...)
		return arena[start:len(arena):len(arena)]
	}
	body, bodyHash, judged, sealed = take(r.Body), take(r.BodyHash), take(r.Judged), take(r.Sealed)
	if r.Shown != nil {
		shown = make([][]byte, len(r.Shown))
		for i, h := range r.Shown {
			shown[i] = take(h)
		}
	}
	return body, bodyHash, judged, shown, sealed
}

// byteLen is the length of the body, the body hash, the judged digest, the
// shown hashes and the sealed bytes.
func (r *Record) byteLen() int {
	n := len(r.Body) + len(r.BodyHash) + len(r.Judged) + len(r.Sealed)
	for _, h := range r.Shown {
		n += len(h)
	}
	return n
}

// challenge reports whether the record opens a new challenge, which a
// bounded store refuses before it is completely full.
func (r *Record) challenge() bool {
	return r.Kind == KindPark || r.Kind == KindAPI || r.Kind == KindSignIn || r.Kind == KindSignInAPI || r.Kind == KindReview
}

// maxShown bounds how many tokens of a track response a record keeps.
const maxShown = 8

func newID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("stepup: crypto/rand failed: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func validID(id string) bool {
	if len(id) != 22 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// usedID is the id of the record that marks token spent: "t." and the
// unpadded base64url of SHA-256("stepup-token\x00" + token), 45 bytes. It
// must never change: instances sharing a Store find each other's spent
// tokens by it. It hashes in a buffer on the stack for tokens of up to
// hashBuffer bytes and makes one allocation, the id.
func usedID(token string) string {
	var buf [hashBuffer]byte
	h := sha256.Sum256(append(append(buf[:0], "stepup-token\x00"...), token...))
	var id [usedIDLen]byte
	copy(id[:], "t.")
	base64.RawURLEncoding.Encode(id[2:], h[:])
	return string(id[:])
}

// usedIDLen is the length of every usedID.
const usedIDLen = 45 // "t." and the 43 base64url characters of 32 bytes

// hashBuffer is the room on the stack for a prefix and a token to hash; a
// longer token is hashed all the same, from a copy on the heap.
const hashBuffer = 1024

// safePath accepts what a Location header may carry as a same-origin path:
// one leading "/", never "//" or "/\", no control characters or spaces.
func safePath(p string) bool {
	if p == "" || p[0] != '/' || strings.HasPrefix(p, "//") || strings.ContainsRune(p, '\\') {
		return false
	}
	for i := 0; i < len(p); i++ {
		if p[i] <= ' ' || p[i] >= 0x7f {
			return false
		}
	}
	return true
}

func safeQuery(q string) bool {
	for i := 0; i < len(q); i++ {
		if q[i] <= ' ' || q[i] >= 0x7f || q[i] == '#' {
			return false
		}
	}
	return true
}

// location is the same-origin path of a record, checked again before use.
func location(rec *Record) string {
	if !safePath(rec.Path) || !safeQuery(rec.Query) {
		return "/"
	}
	if rec.Query == "" {
		return rec.Path
	}
	return rec.Path + "?" + rec.Query
}

// isLocalLocation accepts a kept Location that stays on this origin.
func isLocalLocation(loc string) bool {
	path, query, _ := strings.Cut(loc, "?")
	return safePath(path) && safeQuery(query)
}
