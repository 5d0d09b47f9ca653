package stepup

import (
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Sinks keep what the measured functions return alive, as a caller would.
var (
	sinkHeader http.Header
	sinkRecord *Record
	sinkValue  Record
	sinkString string
	sinkBool   bool
	sinkReq    *http.Request
)

// The copies of a challenge flow allocate what they are written for: a
// header is a map sized once and one array for all its values, a record's
// byte slices share one allocation, a token is hashed on the stack. A
// change that computes a capacity short, grows a map instead of sizing it
// or copies what it need not fails here. The counts are Go 1.26's for a
// map[string][]string: its header, plus one group of 8 slots for up to 8
// keys, or a directory, a table and its groups beyond.
func TestCopiesAllocateWhatTheyAreWrittenFor(t *testing.T) {
	g := &Guard{replayHeaders: map[string]bool{}}
	for _, h := range defaultReplayHeaders {
		g.replayHeaders[http.CanonicalHeaderKey(h)] = true
	}
	parked := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}, "Accept": {"text/html"},
		"Accept-Language": {"fr", "en"}, "Authorization": {"Bearer stolen"}, "X-Unlisted": {"x"}}
	many := http.Header{} // every allow-listed header: more keys than one group holds
	for _, h := range defaultReplayHeaders {
		many[http.CanonicalHeaderKey(h)] = []string{"v"}
	}
	live := &http.Request{Method: http.MethodGet, Header: http.Header{"User-Agent": {"live/1"}, "Cookie": {"a=1", "b=2"},
		"X-Forwarded-For": {"192.0.2.1"}, "X-Forwarded-Proto": {"https"}, "Authorization": {"Bearer x"}}}
	live = live.WithContext(t.Context())
	now := time.Now()
	rec := &Record{ID: "p0123456789abcdefghijk", Kind: KindPark, UserID: "alice", Action: "transfer",
		Method: http.MethodPost, Path: "/transfer", Query: "a=1", Header: parked, Body: []byte("amount=5000&to=bob"),
		BodyHash: make([]byte, 32), Shown: [][]byte{make([]byte, 32), make([]byte, 32)},
		Created: now, Expires: now.Add(time.Minute)}
	empty := &Record{ID: "p0123456789abcdefghijk", Kind: KindPark, Method: http.MethodDelete, Path: "/items/7",
		Created: now, Expires: now.Add(time.Minute)}
	run := &replayRun{mark: replayMark{rec: rec}}
	emptyRun := &replayRun{mark: replayMark{rec: empty}}
	token := strings.Repeat("t", 900)
	query := "park=p0123456789abcdefghijk&token=" + token

	for _, tc := range []struct {
		name   string
		allocs float64
		f      func()
	}{
		{"keepHeaders: map, group, values", 3, func() { sinkHeader = g.keepHeaders(parked, nil) }},
		{"keepHeaders of 13 keys: map sized once (4), values", 5, func() { sinkHeader = g.keepHeaders(many, nil) }},
		{"replayHeader: map, group, values", 3, func() {
			h := http.Header{}
			g.replayHeader(h, parked, live.Header)
			sinkHeader = h
		}},
		{"replayRequest: request (URL, header map, request), RequestURI, header group and values, GetBody", 7,
			func() { sinkReq = g.replayRequest(live, run) }},
		{"replayRequest without a body or query: no GetBody or RequestURI to allocate", 5, func() { sinkReq = g.replayRequest(live, emptyRun) }},
		{"clone: record, header (map, group, values), bytes, shown slice", 6, func() { sinkRecord = rec.clone() }},
		{"clone without header or bytes: the record", 1, func() { sinkRecord = empty.clone() }},
		{"own: strings, header (map, group, values), bytes, shown slice", 6, func() { sinkValue = rec.own() }},
		{"own without header or bytes: the strings", 1, func() { sinkValue = empty.own() }},
		{"usedID: the id", 1, func() { sinkString = usedID(token) }},
		{"wasShown: nothing", 0, func() { sinkBool = rec.wasShown(token) }},
		{"callbackParams: nothing", 0, func() { sinkString, _, _ = callbackParams(query) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.allocs, testing.AllocsPerRun(100, tc.f))
		})
	}
}

// The ids of spent tokens and the hashes of shown ones never change: the
// instances of an application that share a Store across an upgrade find
// each other's by them. A token longer than the stack buffer they are
// hashed in gets the same hash.
func TestTokenHashesNeverChange(t *testing.T) {
	for _, token := range []string{"", "ok.k7Qe0n3cDg2m9VvRZkT1xw", strings.Repeat("j", hashBuffer), strings.Repeat("j", 9000)} {
		used := sha256.Sum256([]byte("stepup-token\x00" + token))
		id := usedID(token)
		assert.Equal(t, "t."+base64.RawURLEncoding.EncodeToString(used[:]), id)
		assert.Len(t, id, usedIDLen)
		shown := sha256.Sum256([]byte("stepup-shown\x00" + token))
		assert.Equal(t, shown, shownHash(token))
		rec := &Record{Shown: [][]byte{make([]byte, 32), shown[:]}}
		require.True(t, rec.wasShown(token))
		rec.Shown = rec.Shown[:1]
		require.False(t, rec.wasShown(token))
	}
}
