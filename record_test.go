package stepup_test

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup"
)

func TestRecordEncoding(t *testing.T) {
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	in := &stepup.Record{ID: "abc", Kind: stepup.KindPark, UserID: "alice", Action: "transfer",
		Method: http.MethodPost, Path: "/transfer", Query: "x=1", Header: http.Header{"Content-Type": {"text/plain"}},
		Body: []byte{0, 1, 2, 255}, Judged: bytes.Repeat([]byte{9}, 32), Remember: time.Minute, Shown: [][]byte{make([]byte, 32), bytes.Repeat([]byte{7}, 32)},
		Created: now, Expires: now.Add(time.Minute), Park: "p0123456789abcdefghijk"}
	b, err := stepup.MarshalRecord(in)
	require.NoError(t, err)
	out, err := stepup.UnmarshalRecord(b)
	require.NoError(t, err)
	assert.Equal(t, in, out)

	bad := []string{
		`{}`, `{"v":2,"id":"a","kind":1,"expires":"2026-01-01T00:00:00Z"}`,
		`{"v":1,"id":"","kind":1,"expires":"2026-01-01T00:00:00Z"}`,
		`{"v":1,"id":"a","kind":11,"expires":"2026-01-01T00:00:00Z"}`, `{"v":1,"id":"a","kind":0,"expires":"2026-01-01T00:00:00Z"}`,
		`{"v":1,"id":"a","kind":1,"path":"//evil.example","expires":"2026-01-01T00:00:00Z"}`,
		`{"v":1,"id":"a","kind":1,"path":"/a b","expires":"2026-01-01T00:00:00Z"}`,
		`{"v":1,"id":"a","kind":1,"path":"/a\u007f","expires":"2026-01-01T00:00:00Z"}`,
		`{"v":1,"id":"a","kind":1,"path":"/a","query":"x=1 2","expires":"2026-01-01T00:00:00Z"}`,
		`{"v":1,"id":"a","kind":1,"path":"/a","query":"x=\u007f","expires":"2026-01-01T00:00:00Z"}`,
		`{"v":1,"id":"a","kind":1,"path":"/a","query":"x=1#y","expires":"2026-01-01T00:00:00Z"}`,
		`{"v":1,"id":"a","kind":1,"method":"get","expires":"2026-01-01T00:00:00Z"}`,
		`{"v":1,"id":"a","kind":1}`, `not json`,
		`{"v":1,"id":"a","kind":5,"park":"` + strings.Repeat("p", 129) + `","expires":"2026-01-01T00:00:00Z"}`,
		`{"v":1,"id":"a","kind":1,"shown":["AAE="],"expires":"2026-01-01T00:00:00Z"}`,
		`{"v":1,"id":"a","kind":1,"judged":"AAE=","expires":"2026-01-01T00:00:00Z"}`,
	}
	for _, s := range bad {
		_, err := stepup.UnmarshalRecord([]byte(s))
		assert.Error(t, err, s)
	}
}

func FuzzUnmarshalRecord(f *testing.F) {
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	good, _ := stepup.MarshalRecord(&stepup.Record{ID: "a", Kind: stepup.KindPark, Method: "POST", Path: "/x",
		Body: []byte("amount=1"), Created: now, Expires: now.Add(time.Minute)})
	f.Add(good)
	f.Add([]byte(`{"v":1,"id":"a","kind":1,"path":"//x","expires":"2026-01-01T00:00:00Z"}`))
	f.Add([]byte(`{"v":1,"id":"a","kind":3,"header":{"A":["b"]},"body":"AAE=","expires":"2026-01-01T00:00:00Z"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		rec, err := stepup.UnmarshalRecord(data)
		if err != nil {
			return
		}
		// Whatever decodes is well formed and survives a round trip.
		if rec.Path != "" && (rec.Path[0] != '/' || (len(rec.Path) > 1 && (rec.Path[1] == '/' || rec.Path[1] == '\\'))) {
			t.Fatalf("unsafe path accepted: %q", rec.Path)
		}
		b, err := stepup.MarshalRecord(rec)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := stepup.UnmarshalRecord(b); err != nil {
			t.Fatalf("round trip: %v", err)
		}
	})
}

// Every kind of record survives a store that keeps bytes: a kind the
// decoder refused would lose kept answers, passes or grants in a Redis
// store while a MemoryStore kept them.
func TestEveryKindRoundTrips(t *testing.T) {
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	for _, k := range []stepup.Kind{stepup.KindPark, stepup.KindAPI, stepup.KindPass, stepup.KindGrant, stepup.KindUsed, stepup.KindOutcome,
		stepup.KindSignIn, stepup.KindSignInAPI, stepup.KindReview, stepup.KindDecision} {
		in := &stepup.Record{ID: "id", Kind: k, Created: now, Expires: now.Add(time.Minute)}
		b, err := stepup.MarshalRecord(in)
		require.NoError(t, err)
		out, err := stepup.UnmarshalRecord(b)
		require.NoError(t, err, "kind %d", k)
		assert.Equal(t, k, out.Kind)
	}
	for _, k := range []int{0, int(stepup.KindDecision) + 1} {
		_, err := stepup.UnmarshalRecord([]byte(fmt.Sprintf(`{"v":1,"id":"a","kind":%d,"expires":"2026-01-01T00:00:00Z"}`, k)))
		assert.Error(t, err, "kind %d", k)
	}
}
