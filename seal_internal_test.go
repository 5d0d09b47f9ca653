package stepup

import (
	"context"
	"encoding/json"
	"log/slog"
	"math/rand"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"testing/quick"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func testSealer(t testing.TB, secrets ...string) *recordSealer {
	t.Helper()
	var keys [][]byte
	for _, s := range secrets {
		keys = append(keys, []byte(s))
	}
	s, err := newRecordSealer(&Config{RecordKeys: keys})
	require.NoError(t, err)
	return s
}

// A sealed challenge reserves in a MemoryStore exactly what the sealed
// records the guard writes after it take (for a GET park with a Remember
// grant: the spent token, the grant, the pass and the kept redirect), so
// that sealing keeps a full store's promise to a user who passed a
// challenge.
func TestSealedGetParkReservesExactlyWhatItLeaves(t *testing.T) {
	ctx := context.Background()
	sealer := testSealer(t, "a 32-byte record key for testing")
	now := time.Now()
	exp := now.Add(time.Minute)
	for i, query := range []string{"", "from=2026-01-01&to=2026-02-01&q=%3Cscript%3E", "a=1"} {
		park := &Record{ID: strings.Repeat("p", 22), Kind: KindPark, UserID: "alice", Action: "report",
			Method: http.MethodGet, Path: "/accounts/7/report", Query: query, Remember: 5 * time.Minute,
			Header: http.Header{"Accept": {"text/html"}}, Created: now, Expires: exp}
		if i > 0 {
			park.Judged = []byte(strings.Repeat("j", 32)) // carried on to the pass
		}
		parked := newSealedStore(NewMemoryStore(), sealer, nil)
		require.NoError(t, parked.Put(ctx, park))
		reserved := parked.mem.Usage()
		require.Equal(t, 4, reserved.ReservedEntries)

		successors := []*Record{
			{ID: usedID("a token"), Kind: KindUsed, Park: park.ID, Created: now, Expires: exp},
			{ID: grantID(grantOwner(make([]byte, 32), park.UserID), 0), Kind: KindGrant, UserID: park.UserID, Action: park.Action,
				Park: park.ID, Created: now, Expires: exp, VerificationMethod: longestMethod}, // the grant in its slot, at its longest
			{ID: newID(), Kind: KindPass, UserID: park.UserID, Action: park.Action, Method: http.MethodGet, Path: park.Path,
				Query: park.Query, Judged: park.Judged, Park: park.ID, Created: now, Expires: exp},
			{ID: outcomeID(park.ID), Kind: KindOutcome, Park: park.ID, Status: http.StatusSeeOther,
				Header: http.Header{"Location": {location(park)}}, Created: now, Expires: exp},
		}
		written := newSealedStore(NewMemoryStore(), sealer, nil)
		for _, r := range successors {
			require.NoError(t, written.Put(ctx, r))
		}
		held := written.mem.Usage()
		assert.Equal(t, held.Records, reserved.ReservedEntries, "query %q", query)
		assert.Equal(t, held.Bytes, reserved.ReservedBytes, "query %q", query)
	}
}

// A sealed parked POST reserves exactly what its spent token, its
// Remember grant and a kept answer at the bound take sealed: up to
// MemoryOutcomeReserve bytes of body and 256 bytes of Content-Type and
// Location (128 each, their longest length prefixes), whatever the body
// size (every size up to a few size classes of the heap).
func TestSealedPostParkReservesExactlyForItsAnswer(t *testing.T) {
	ctx := context.Background()
	sealer := testSealer(t, "a 32-byte record key for testing")
	now := time.Now()
	exp := now.Add(time.Minute)
	park := &Record{ID: newID(), Kind: KindPark, UserID: "alice", Action: "transfer", Method: http.MethodPost,
		Path: "/transfer", Body: []byte("amount=5000"), Remember: time.Minute, Judged: []byte(strings.Repeat("j", 32)),
		Created: now, Expires: exp}
	value := strings.Repeat("v", 128)
	for _, body := range append([]int{2000, 20000, 200000}, seq(0, 700)...) {
		parked := newSealedStore(NewMemoryStore(MemoryOutcomeReserve(body)), sealer, nil)
		require.NoError(t, parked.Put(ctx, park))
		reserved := parked.mem.Usage()

		written := newSealedStore(NewMemoryStore(), sealer, nil)
		require.NoError(t, written.Put(ctx, &Record{ID: usedID("a token"), Kind: KindUsed, Park: park.ID, Created: now, Expires: exp}))
		require.NoError(t, written.Put(ctx, &Record{ID: grantID(grantOwner(make([]byte, 32), park.UserID), 0), Kind: KindGrant,
			UserID: park.UserID, Action: park.Action, Park: park.ID, Created: now, Expires: exp, VerificationMethod: longestMethod}))
		require.NoError(t, written.Put(ctx, &Record{ID: outcomeID(park.ID), Kind: KindOutcome, Park: park.ID, Status: 599,
			Header: http.Header{"Content-Type": {value}, "Location": {value}}, Body: make([]byte, body), Created: now, Expires: exp}))
		held := written.mem.Usage()
		require.Equal(t, held.Records, reserved.ReservedEntries, "body %d", body)
		require.Equal(t, held.Bytes, reserved.ReservedBytes, "body %d", body)
	}
}

func seq(from, to int) []int {
	var out []int
	for i := from; i < to; i++ {
		out = append(out, i)
	}
	return out
}

// A record seals and opens whatever its shape within what Record.check
// allows: ids and park ids at their longest, a header of many empty
// values.
func TestSealAnyShape(t *testing.T) {
	sealer := testSealer(t, "a 32-byte record key for testing")
	now := time.Now().Truncate(time.Millisecond)
	for _, rec := range []*Record{
		{ID: strings.Repeat("i", 128), Kind: KindPark, Expires: now},
		{ID: "i", Park: strings.Repeat("p", 128), Kind: KindUsed, Expires: now},
		{ID: "i", Kind: KindPark, Header: http.Header{"X": make([]string, 200)}, Expires: now},
	} {
		sealed, err := sealer.seal(rec)
		require.NoError(t, err)
		out, err := sealer.open(rec.ID, sealed)
		require.NoError(t, err)
		assert.Equal(t, rec, out)
	}
}

// The sealed-fields decoder refuses, without a panic, a plaintext whose
// value or name runs past its end, or names a field it does not know or
// out of order.
func TestDecodeSealedFieldsRefuses(t *testing.T) {
	for name, plain := range map[string]string{
		"a name and no value":            "\x06UserID",
		"a string one past the end":      "\x06UserID\x05abcd",
		"a name one past the end":        "\x07UserID",
		"bytes one past the end":         "\x04Body\x03ab",
		"a count one past the end":       "\x05Shown\x03\x00\x00",
		"an unknown field":               "\x04Nope\x01a",
		"a field out of order":           "\x06Action\x01a\x06UserID\x01b",
		"a field twice":                  "\x06UserID\x01a\x06UserID\x01b",
		"an unknown field after another": "\x06Status\x02\x04Nope\x01a",
	} {
		var rec Record
		assert.NotPanics(t, func() {
			assert.Error(t, decodeSealedFields([]byte(plain), &rec), name)
		}, name)
	}
	var rec Record
	require.NoError(t, decodeSealedFields([]byte("\x06UserID\x04abcd\x05Shown\x02\x00\x00"), &rec), "each at its end")
	assert.Equal(t, Record{UserID: "abcd", Shown: [][]byte{nil, nil}}, rec)
}

// A length or a count is refused when it is more than the bytes left after
// it, wherever in the plaintext it is read.
func TestSealedReaderBoundsByWhatIsLeft(t *testing.T) {
	buf := []byte("0123456789\x05abcd")
	r := &sealedReader{buf: buf, text: string(buf), at: 10}
	_, _, err := r.span()
	assert.ErrorIs(t, err, errSealedFormat)
	r.at = 10
	_, err = r.count()
	assert.ErrorIs(t, err, errSealedFormat)
	buf[10] = 4
	r = &sealedReader{buf: buf, text: string(buf), at: 10}
	n, err := r.count()
	require.NoError(t, err)
	assert.Equal(t, 4, n)
}

// The record keys derived from CookieKeys are not the cookie's: one secret
// gives two keys under two labels.
func TestRecordKeysFromCookieKeysAreTheirOwn(t *testing.T) {
	secret := []byte("a 32-byte secret for both uses!!")
	sealer, err := newRecordSealer(&Config{CookieKeys: [][]byte{secret}, Store: struct{ Store }{NewMemoryStore()}})
	require.NoError(t, err)
	cookie, err := newKeyedCookie([][]byte{secret}, "stepup")
	require.NoError(t, err)
	nonce := make([]byte, sealNonce)
	sealed := sealer.aeads[0].Seal(nil, nonce, []byte("plain"), nil)
	_, ok := openAny(cookie.aeads, nil, nonce, sealed, nil)
	assert.False(t, ok, "the cookie's key does not open a record")
	_, ok = openAny(sealer.aeads, nil, nonce, sealed, nil)
	assert.True(t, ok)
}

// fuzzSeed is the one record the fuzz target's key has sealed.
func fuzzSeed() *Record {
	at := time.Date(2026, 12, 7, 10, 0, 0, 123_000_000, time.UTC) // whole milliseconds: sealed as they are
	return &Record{ID: "AAAAAAAAAAAAAAAAAAAAAA", Kind: KindPark, UserID: "alice", Action: "transfer", Method: http.MethodPost,
		Path: "/transfer", Query: "a=1", Header: http.Header{"Content-Type": {"application/x-www-form-urlencoded"}},
		Body: []byte("amount=5000"), Remember: time.Minute, Created: at, Expires: at.Add(10 * time.Minute), Park: ""}
}

// FuzzOpenRecord feeds the opener what a Store may hand back: any bytes,
// decoded as a byte store decodes them, and any sealed bytes under the
// seed's clear fields. Nothing panics, and whatever opens is the one
// record the key sealed, unchanged.
//
//	go test -run '^$' -fuzz FuzzOpenRecord -fuzztime 30s .
func FuzzOpenRecord(f *testing.F) {
	sealer := testSealer(f, "a 32-byte record key for fuzzing")
	seed := fuzzSeed()
	sealed, err := sealer.seal(seed)
	require.NoError(f, err)
	encoded, err := MarshalRecord(sealed)
	require.NoError(f, err)
	decoded, err := UnmarshalRecord(encoded)
	require.NoError(f, err)
	opened, err := sealer.open(seed.ID, decoded)
	require.NoError(f, err, "the seed opens after a byte store's round trip")
	require.Equal(f, seed, opened)
	f.Add(encoded)
	f.Add(sealed.Sealed)
	f.Add([]byte(`{"v":1,"id":"x","kind":1,"expires":"2026-12-07T10:10:00Z","body":"YW1vdW50PTk5OTk5"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		check := func(id string, stored *Record) {
			rec, err := sealer.open(id, stored)
			if err != nil {
				return
			}
			want := *seed
			want.Consumed = stored.Consumed
			assert.Equal(t, &want, rec, "only the sealed record opens, as it was sealed")
		}
		if stored, err := UnmarshalRecord(data); err == nil {
			check(stored.ID, stored)
			check(seed.ID, stored)
		}
		raw := *sealed
		raw.Sealed = data
		check(seed.ID, &raw)
	})
}

// Every field of Record is sealed, or kept in clear beside the sealed
// bytes, and comes back as it went in: filled field by field through
// reflection, so that a field added to Record later is checked too (one
// whose type the codec does not know is carried as JSON, and comes back as
// a JSON round trip brings it).
func TestSealKeepsEveryField(t *testing.T) {
	sealer := testSealer(t, "a 32-byte record key for testing")
	rng := rand.New(rand.NewSource(1))
	for round := range 50 {
		in := &Record{}
		v := reflect.ValueOf(in).Elem()
		for _, f := range sealedFields {
			v.Field(f.index).Set(someValue(t, v.Field(f.index).Type(), rng))
		}
		// The clear fields, and what Record.check demands of a record read back.
		in.ID, in.Park, in.Kind = newID(), newID(), Kind(1+round%int(KindOutcome))
		in.Method, in.Path, in.Query = http.MethodPost, "/transfer/"+newID(), "a=1&b="+newID()
		in.Shown = [][]byte{make([]byte, 32), []byte(strings.Repeat("s", 32))}
		in.Judged = []byte(strings.Repeat("j", 32))
		in.Trace = "00-" + newID() + "-" + newID() + "-01" // printable, as a park's trace must be
		in.Created, in.Expires = time.Unix(rng.Int63n(1<<40), rng.Int63n(1e9)), time.Unix(rng.Int63n(1<<40)+1, rng.Int63n(1e9))
		in.Consumed = round%2 == 0
		in.VerificationMethod = knownVerificationMethods[rng.Intn(len(knownVerificationMethods))]
		in.Methods = MethodSet(rng.Int63n(1 << len(knownVerificationMethods)))

		sealed, err := sealer.seal(in)
		require.NoError(t, err)
		out, err := sealer.open(in.ID, sealed)
		require.NoError(t, err)

		want := *in
		want.Created, want.Expires = in.Created.Truncate(time.Millisecond), in.Expires.Truncate(time.Millisecond)
		for _, f := range sealedFields {
			fv := reflect.ValueOf(&want).Elem().Field(f.index)
			switch {
			case f.codec == codecJSON:
				data, err := json.Marshal(fv.Interface())
				require.NoError(t, err)
				back := reflect.New(fv.Type())
				require.NoError(t, json.Unmarshal(data, back.Interface()))
				fv.Set(back.Elem())
			case f.codec == codecBytes && fv.Len() == 0:
				fv.SetZero() // an empty byte slice comes back nil, as a MemoryStore's copy does
			}
		}
		for i, b := range want.Shown {
			if len(b) == 0 {
				want.Shown[i] = nil
			}
		}
		assert.Equal(t, &want, out, "round %d", round)
	}
}

// someValue is a random value of typ (testing/quick), or, for a type quick
// cannot make (an interface, a struct with unexported fields), the first
// of a few JSON documents that decodes into it as something not zero.
func someValue(t *testing.T, typ reflect.Type, rng *rand.Rand) reflect.Value {
	t.Helper()
	if val, ok := func() (val reflect.Value, ok bool) {
		defer func() {
			if recover() != nil {
				ok = false
			}
		}()
		return quick.Value(typ, rng)
	}(); ok {
		return val
	}
	for _, doc := range []string{`{"amount":5000,"to":"bob"}`, `[{"amount":5000}]`, `"5000"`, `5000`, `true`} {
		p := reflect.New(typ)
		if json.Unmarshal([]byte(doc), p.Interface()) == nil && !p.Elem().IsZero() {
			return p.Elem()
		}
	}
	t.Fatalf("no value for a field of type %s", typ)
	return reflect.Value{}
}

// Whatever bytes the sealed-fields decoder is given (only its own
// encoding ever is: it runs after the AEAD authenticated them), it never
// panics, and what it accepts encodes to bytes that decode to the same.
func FuzzDecodeSealedFields(f *testing.F) {
	seed, err := appendSealedFields(nil, fuzzSeed())
	require.NoError(f, err)
	f.Add(seed)
	f.Add([]byte("\x06Header\x02\x01\x01A\x00\x01B\x02\x01v"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var rec Record
		if decodeSealedFields(data, &rec) != nil {
			return
		}
		again, err := appendSealedFields(nil, &rec)
		require.NoError(t, err)
		var back Record
		require.NoError(t, decodeSealedFields(again, &back))
		assert.Equal(t, rec, back)
	})
}

// benchRecords are a parked POST as the challenge-flow benchmark parks it
// (a short form, its allow-listed headers, two shown tokens) and a
// Remember grant.
func benchRecords() map[string]*Record {
	now := time.Now()
	return map[string]*Record{
		"park": {ID: newID(), Kind: KindPark, UserID: "alice", Action: "transfer", Method: http.MethodPost, Path: "/transfer",
			Header: http.Header{"Content-Type": {"application/x-www-form-urlencoded"}, "Accept": {"text/html"}},
			Body:   []byte("amount=5000&to=bob&note=rent+for+november"), Shown: [][]byte{make([]byte, 32), make([]byte, 32)},
			Created: now, Expires: now.Add(10 * time.Minute)},
		"grant": {ID: newID(), Kind: KindGrant, UserID: "alice", Action: "statement", Park: newID(),
			Created: now, Expires: now.Add(5 * time.Minute)},
	}
}

// The cost of sealing and opening one record by itself; a challenge flow
// seals three (park, spent token, kept answer) and opens three (the park
// twice, then as Consume returns it), a request let through by a Remember
// grant opens one:
//
//	go test -run '^$' -bench 'Record(Seal|Open)' -benchmem .
func BenchmarkRecordSeal(b *testing.B) {
	sealer := testSealer(b, "a 32-byte record key for benches")
	for _, name := range []string{"park", "grant"} {
		rec := benchRecords()[name]
		b.Run("rec="+name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := sealer.seal(rec); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkRecordOpen(b *testing.B) {
	sealer := testSealer(b, "a 32-byte record key for benches")
	for _, name := range []string{"park", "grant"} {
		sealed, err := sealer.seal(benchRecords()[name])
		require.NoError(b, err)
		b.Run("rec="+name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := sealer.open(sealed.ID, sealed); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// storeReturning is a Store whose Get and Consume return rec for any id.
type storeReturning struct {
	Store
	rec *Record
}

func (s storeReturning) Get(context.Context, string) (*Record, error)     { return s.rec, nil }
func (s storeReturning) Consume(context.Context, string) (*Record, error) { return s.rec, nil }

// A record the Store returns that does not open (none at all, or one not
// sealed by the guard) is refused: ErrNotFound to errors.Is and no other
// sentinel, logged with the kind the Store gave (0 for none).
func TestRefusedRecordIsNotFound(t *testing.T) {
	ctx := context.Background()
	sealer := testSealer(t, "a 32-byte record key for testing")
	for _, tc := range []struct {
		rec  *Record
		kind string
	}{
		{nil, "kind=0"},
		{&Record{ID: "i", Kind: KindGrant, Expires: time.Now().Add(time.Minute)}, "kind=4"},
	} {
		var logs strings.Builder // one goroutine
		s := newSealedStore(storeReturning{rec: tc.rec}, sealer, slog.New(slog.NewTextHandler(&logs, nil)))
		for _, read := range []func(context.Context, string) (*Record, error){s.Get, s.Consume} {
			rec, err := read(ctx, "i")
			assert.Nil(t, rec)
			require.ErrorIs(t, err, ErrNotFound)
			for _, other := range []error{ErrExists, ErrStoreFull, errSealedFormat} {
				assert.NotErrorIs(t, err, other)
			}
			var refused *recordRefused
			assert.ErrorAs(t, err, &refused)
		}
		assert.Contains(t, logs.String(), "event=record_refused")
		assert.Contains(t, logs.String(), tc.kind)
	}
}
