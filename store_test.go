package stepup_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup"
	"github.com/stepupkit/stepup/stepuptest"
)

func TestMemoryStoreContract(t *testing.T) {
	stepuptest.RunStore(t, func(now func() time.Time) stepup.Store {
		return stepup.NewMemoryStore(stepup.MemoryClock(now))
	})
}

func TestMemoryStoreBounds(t *testing.T) {
	ctx := context.Background()
	clock := stepuptest.NewClock()
	// A grant written without its challenge reserves nothing and takes no
	// reservation: it shows the plain limits.
	rec := func(id string, body int, ttl time.Duration) *stepup.Record {
		return &stepup.Record{ID: id, Kind: stepup.KindGrant, UserID: "alice", Action: "transfer",
			Body: make([]byte, body), Created: clock.Now(), Expires: clock.Now().Add(ttl)}
	}

	t.Run("entries: full of live records refuses, never evicts", func(t *testing.T) {
		s := stepup.NewMemoryStore(stepup.MemoryClock(clock.Now), stepup.MemoryLimits(3, 0))
		for i := range 3 {
			require.NoError(t, s.Put(ctx, rec(fmt.Sprint(i), 1, time.Minute)))
		}
		assert.ErrorIs(t, s.Put(ctx, rec("x", 1, time.Minute)), stepup.ErrStoreFull)
		for i := range 3 {
			_, err := s.Get(ctx, fmt.Sprint(i))
			assert.NoError(t, err, "nothing pending was evicted")
		}
	})
	t.Run("entries: expired records make room", func(t *testing.T) {
		s := stepup.NewMemoryStore(stepup.MemoryClock(clock.Now), stepup.MemoryLimits(3, 0))
		for i := range 3 {
			require.NoError(t, s.Put(ctx, rec(fmt.Sprint("e", i), 1, time.Second)))
		}
		clock.Advance(time.Second)
		require.NoError(t, s.Put(ctx, rec("fresh", 1, time.Minute)))
		require.NoError(t, s.Put(ctx, rec("fresh2", 1, time.Minute)))
		require.NoError(t, s.Put(ctx, rec("fresh3", 1, time.Minute)))
		assert.Equal(t, 3, s.Len(), "the expired records were dropped")
	})
	t.Run("bytes", func(t *testing.T) {
		s := stepup.NewMemoryStore(stepup.MemoryClock(clock.Now), stepup.MemoryLimits(0, 10_000))
		require.NoError(t, s.Put(ctx, rec("a", 6000, time.Minute)))
		assert.ErrorIs(t, s.Put(ctx, rec("b", 6000, time.Minute)), stepup.ErrStoreFull)
		require.NoError(t, s.Delete(ctx, "a"))
		require.NoError(t, s.Put(ctx, rec("b", 6000, time.Minute)), "deleting frees the bytes")
	})
	t.Run("bytes: every header key and value counts, empty or not", func(t *testing.T) {
		s := stepup.NewMemoryStore(stepup.MemoryClock(clock.Now), stepup.MemoryLimits(0, 1<<20))
		empty := rec("empty-values", 0, time.Minute)
		empty.Header = http.Header{"Referer": make([]string, 100_000)} // 1.6 MB of string headers
		assert.ErrorIs(t, s.Put(ctx, empty), stepup.ErrStoreFull)
		keys := rec("many-keys", 0, time.Minute)
		keys.Header = http.Header{}
		for i := range 20_000 {
			keys.Header[fmt.Sprintf("X-%d", i)] = []string{""} // 2 MB of map slots
		}
		assert.ErrorIs(t, s.Put(ctx, keys), stepup.ErrStoreFull)
		assert.Zero(t, s.Len())
	})
	t.Run("reserve: new challenges stop short of full, what follows a passed one fits", func(t *testing.T) {
		for _, challenge := range []stepup.Kind{stepup.KindPark, stepup.KindAPI} {
			s := stepup.NewMemoryStore(stepup.MemoryClock(clock.Now), stepup.MemoryLimits(64, 0))
			opened := 0
			for ; ; opened++ {
				r := rec(fmt.Sprint("c", opened), 1, time.Minute)
				r.Kind, r.Method, r.Path = challenge, http.MethodPost, "/x"
				if err := s.Put(ctx, r); err != nil {
					require.ErrorIs(t, err, stepup.ErrStoreFull)
					break
				}
			}
			u := s.Usage()
			assert.LessOrEqual(t, u.Records+u.ReservedEntries, 56, "an eighth is kept back from new challenges")
			assert.Greater(t, u.Records+u.ReservedEntries, 56-3, "the challenges' share is used")
			for i := 0; ; i++ {
				if err := s.Put(ctx, rec(fmt.Sprint("other", i), 1, time.Minute)); err != nil {
					require.ErrorIs(t, err, stepup.ErrStoreFull)
					break
				}
			}
			u = s.Usage()
			assert.Equal(t, 64, u.Records+u.ReservedEntries, "records that follow no challenge use the reserve, up to full")
		}
		s := stepup.NewMemoryStore(stepup.MemoryClock(clock.Now), stepup.MemoryLimits(0, 80_000))
		park := rec("park", 60_000, time.Minute)
		park.Kind, park.Method, park.Path = stepup.KindPark, http.MethodPost, "/x"
		require.NoError(t, s.Put(ctx, park))
		park2 := rec("park2", 8_000, time.Minute)
		park2.Kind, park2.Method, park2.Path = stepup.KindPark, http.MethodPost, "/x"
		assert.ErrorIs(t, s.Put(ctx, park2), stepup.ErrStoreFull, "70,000 bytes is the challenges' share")
		require.NoError(t, s.Put(ctx, rec("grant", 8_000, time.Minute)))
	})
}

// Each successor a passed challenge may write, by the kind of challenge.
var successorsOf = []struct {
	name    string
	park    func(r *stepup.Record)
	follows []stepup.Kind // in the order the guard writes them
}{
	{"parked POST", func(r *stepup.Record) { r.Kind, r.Method = stepup.KindPark, http.MethodPost },
		[]stepup.Kind{stepup.KindUsed, stepup.KindOutcome}},
	{"parked POST with Remember", func(r *stepup.Record) { r.Kind, r.Method, r.Remember = stepup.KindPark, http.MethodPost, time.Hour },
		[]stepup.Kind{stepup.KindUsed, stepup.KindGrant, stepup.KindOutcome}},
	{"parked GET", func(r *stepup.Record) { r.Kind, r.Method = stepup.KindPark, http.MethodGet },
		[]stepup.Kind{stepup.KindUsed, stepup.KindPass, stepup.KindOutcome}},
	{"parked HEAD with Remember", func(r *stepup.Record) { r.Kind, r.Method, r.Remember = stepup.KindPark, http.MethodHead, time.Hour },
		[]stepup.Kind{stepup.KindUsed, stepup.KindGrant, stepup.KindPass, stepup.KindOutcome}},
	{"API challenge", func(r *stepup.Record) { r.Kind, r.Method = stepup.KindAPI, http.MethodPost },
		[]stepup.Kind{stepup.KindUsed}},
	{"API challenge with Remember", func(r *stepup.Record) { r.Kind, r.Method, r.Remember = stepup.KindAPI, http.MethodPost, time.Hour },
		[]stepup.Kind{stepup.KindUsed, stepup.KindGrant}},
}

// successor is the record of kind k the guard writes after park was
// passed, shaped as verify.go, callback.go and replay.go write it.
func successor(park *stepup.Record, k stepup.Kind, now time.Time) *stepup.Record {
	r := &stepup.Record{ID: "s." + park.ID + fmt.Sprint(k), Kind: k, Park: park.ID, Created: now, Expires: now.Add(time.Minute)}
	switch k {
	case stepup.KindUsed:
		r.ID = "t.0123456789012345678901234567890123456789abc"
	case stepup.KindGrant:
		r.UserID, r.Action = park.UserID, park.Action
	case stepup.KindPass:
		r.UserID, r.Action, r.Method, r.Path, r.Query = park.UserID, park.Action, http.MethodGet, park.Path, park.Query
		r.Judged = park.Judged // the pass carries the park's judged digest
	case stepup.KindOutcome:
		r.ID, r.Status = "o."+park.ID, http.StatusSeeOther
		r.Header = http.Header{"Location": {park.Path + "?" + park.Query}}
		if park.Method == http.MethodPost {
			r.Status, r.Header = http.StatusOK, http.Header{"Content-Type": {"text/html; charset=utf-8"}}
			r.Body = make([]byte, 1000)
		}
	}
	return r
}

// A challenge reserves, when it is created, the room of every record the
// guard writes once it is passed: a store filled to the last entry still
// takes them, and the reservation is given back as they are written or
// when the challenge goes.
func TestMemoryStoreReservesForSuccessors(t *testing.T) {
	ctx := context.Background()
	clock := stepuptest.NewClock()
	newPark := func(shape func(*stepup.Record)) *stepup.Record {
		r := &stepup.Record{ID: "p0123456789abcdefghijk", UserID: "alice", Action: "transfer", Path: "/transfer", Query: "a=1",
			Body: make([]byte, 1024), Header: http.Header{"Content-Type": {"application/x-www-form-urlencoded"}},
			Judged: make([]byte, 32), Created: clock.Now(), Expires: clock.Now().Add(10 * time.Minute)}
		shape(r)
		return r
	}
	fill := func(t *testing.T, s *stepup.MemoryStore) { // with big records, then small ones: not a byte to spare
		t.Helper()
		for _, body := range []int{512, 0} {
			for {
				err := s.Put(ctx, &stepup.Record{ID: fmt.Sprint("filler", body, ".", s.Len()), Kind: stepup.KindGrant,
					Body: make([]byte, body), Created: clock.Now(), Expires: clock.Now().Add(time.Hour)})
				if err != nil {
					require.ErrorIs(t, err, stepup.ErrStoreFull)
					break
				}
			}
		}
	}
	for _, tc := range successorsOf {
		for _, limit := range []string{"entries", "bytes"} {
			t.Run(tc.name+"/"+limit, func(t *testing.T) {
				s := stepup.NewMemoryStore(stepup.MemoryClock(clock.Now), stepup.MemoryLimits(64, 0))
				if limit == "bytes" {
					s = stepup.NewMemoryStore(stepup.MemoryClock(clock.Now), stepup.MemoryLimits(1<<20, 64<<10))
				}
				park := newPark(tc.park)
				require.NoError(t, s.Put(ctx, park))
				assert.Equal(t, len(tc.follows), s.Usage().ReservedEntries, "one entry reserved per successor")
				fill(t, s)
				other := newPark(tc.park)
				other.ID = "another-challenge"
				require.ErrorIs(t, s.Put(ctx, other), stepup.ErrStoreFull, "a new challenge is refused")

				for i, k := range tc.follows {
					require.NoError(t, s.Put(ctx, successor(park, k, clock.Now())), "kind %d takes its reserved room", k)
					if i == 0 {
						_, err := s.Consume(ctx, park.ID)
						require.NoError(t, err)
					}
				}
				u := s.Usage()
				assert.Zero(t, u.ReservedEntries, "every reservation was taken or given back")
				assert.Zero(t, u.ReservedBytes)
				fill(t, s) // what a smaller kept answer left of its reservation
				again := successor(park, stepup.KindUsed, clock.Now())
				again.ID = "t.another-token-for-the-same-challenge-xxxxxx"
				assert.ErrorIs(t, s.Put(ctx, again), stepup.ErrStoreFull, "a record is reserved once per challenge")
			})
		}
	}
	t.Run("the kept answer gives back what its challenge no longer needs", func(t *testing.T) {
		s := stepup.NewMemoryStore(stepup.MemoryClock(clock.Now))
		park := newPark(func(r *stepup.Record) { r.Kind, r.Method, r.Remember = stepup.KindPark, http.MethodPost, time.Hour })
		require.NoError(t, s.Put(ctx, park))
		require.Equal(t, 3, s.Usage().ReservedEntries)
		require.NoError(t, s.Put(ctx, successor(park, stepup.KindOutcome, clock.Now())))
		assert.Zero(t, s.Usage().ReservedEntries, "the grant that was not written is not waited for")
	})
	t.Run("a challenge that ends gives its reservation back", func(t *testing.T) {
		s := stepup.NewMemoryStore(stepup.MemoryClock(clock.Now))
		deleted := newPark(func(r *stepup.Record) { r.Kind, r.Method = stepup.KindPark, http.MethodGet })
		require.NoError(t, s.Put(ctx, deleted))
		require.NoError(t, s.Delete(ctx, deleted.ID))
		assert.Equal(t, stepup.MemoryUsage{}, s.Usage())

		expired := newPark(func(r *stepup.Record) { r.Kind, r.Method = stepup.KindAPI, http.MethodPost })
		require.NoError(t, s.Put(ctx, expired))
		clock.Advance(10 * time.Minute)
		_, err := s.Get(ctx, expired.ID)
		require.ErrorIs(t, err, stepup.ErrNotFound)
		assert.Equal(t, stepup.MemoryUsage{}, s.Usage())
	})
	t.Run("a successor of a challenge that is gone takes free room only", func(t *testing.T) {
		s := stepup.NewMemoryStore(stepup.MemoryClock(clock.Now), stepup.MemoryLimits(64, 0))
		park := newPark(func(r *stepup.Record) { r.Kind, r.Method = stepup.KindPark, http.MethodPost })
		fill(t, s)
		assert.ErrorIs(t, s.Put(ctx, successor(park, stepup.KindUsed, clock.Now())), stepup.ErrStoreFull)
	})
	t.Run("a kept answer beyond its reservation is kept only when there is room", func(t *testing.T) {
		s := stepup.NewMemoryStore(stepup.MemoryClock(clock.Now), stepup.MemoryLimits(0, 64<<10))
		park := newPark(func(r *stepup.Record) { r.Kind, r.Method = stepup.KindPark, http.MethodPost })
		require.NoError(t, s.Put(ctx, park))
		fill(t, s)
		out := successor(park, stepup.KindOutcome, clock.Now())
		out.Body = make([]byte, 8<<10)
		assert.ErrorIs(t, s.Put(ctx, out), stepup.ErrStoreFull)
		require.NoError(t, s.Put(ctx, successor(park, stepup.KindUsed, clock.Now())), "the refusal took nothing reserved")
	})
}

// A store filled with challenges, and then to the last entry with other
// records, refuses a new challenge with 503 and Retry-After, and still
// completes every challenge it accepted: replayed POSTs, GETs resumed with
// a pass, Remember grants, kept answers for a refresh, API retries with
// their token.
func TestFullStoreCompletesEveryAcceptedChallenge(t *testing.T) {
	var store *stepup.MemoryStore
	env := stepuptest.NewEnv(t, guardedApp, stepuptest.Options{Store: func(now func() time.Time) stepup.Store {
		store = stepup.NewMemoryStore(stepup.MemoryClock(now), stepup.MemoryLimits(160, 0))
		return store
	}})
	type flow struct {
		b         *stepuptest.Browser
		path      string
		challenge string
	}
	var flows []flow
	routes := []string{"/transfer", "/report", "/admin", "/api/transfer"}
	refused := false
	for u := 0; !refused; u++ {
		b := env.NewBrowser()
		b.Login(fmt.Sprint("user", u))
		for _, path := range routes {
			var resp *stepuptest.Response
			switch path {
			case "/transfer":
				resp = b.Do(http.MethodPost, path, stepuptest.Form, "amount=5000&to=bob", nil)
			case "/api/transfer":
				resp = b.API(http.MethodPost, path, apiTransfer, nil)
			default:
				resp = b.Get(path)
			}
			if resp.StatusCode == http.StatusServiceUnavailable {
				assert.NotEmpty(t, resp.Header.Get("Retry-After"))
				refused = true
				break
			}
			if path == "/api/transfer" {
				require.Equal(t, http.StatusUnauthorized, resp.StatusCode, resp.Body)
				var doc struct{ URL string }
				require.NoError(t, json.Unmarshal([]byte(resp.Body), &doc))
				flows = append(flows, flow{b, path, doc.URL})
				continue
			}
			flows = append(flows, flow{b, path, b.Challenge(resp)})
		}
	}
	require.Greater(t, len(flows), 20)
	for i := 0; ; i++ {
		err := store.Put(context.Background(), &stepup.Record{ID: fmt.Sprint("filler", i), Kind: stepup.KindGrant,
			Created: env.Clock.Now(), Expires: env.Clock.Now().Add(time.Hour)})
		if err != nil {
			require.ErrorIs(t, err, stepup.ErrStoreFull)
			break
		}
	}
	late := env.NewBrowser()
	late.Login("late")
	assert.Equal(t, http.StatusServiceUnavailable, late.Do(http.MethodPost, "/transfer", stepuptest.Form, "amount=5000", nil).StatusCode,
		"a full store refuses new challenges")

	runs := map[string]int{}
	for _, f := range flows {
		runs[f.path]++
		cb := f.b.Complete(f.challenge)
		if f.path == "/api/transfer" {
			token := stepuptest.Param(cb, "token")
			resp := f.b.API(http.MethodPost, f.path, apiTransfer, http.Header{stepup.TokenHeader: {token}})
			require.Equal(t, http.StatusOK, resp.StatusCode, "the API retry completes: %s", resp.Body)
			continue
		}
		resp := f.b.Get(cb)
		if f.path != "/transfer" { // a GET resumes with a pass
			require.Equal(t, http.StatusSeeOther, resp.StatusCode, "%s: %s", f.path, resp.Body)
			resp = f.b.Get(resp.Header.Get("Location"))
		}
		require.Equal(t, http.StatusOK, resp.StatusCode, "%s completes: %s", f.path, resp.Body)
		if f.path == "/transfer" {
			assert.Equal(t, resp.Body, f.b.Get(cb).Body, "a refresh shows the kept answer")
		}
		if f.path == "/admin" {
			assert.Equal(t, http.StatusOK, f.b.Get("/admin").StatusCode, "the Remember grant was kept")
		}
	}
	assert.Len(t, env.Ledger.Runs("transfer"), runs["/transfer"])
	assert.Len(t, env.Ledger.Runs("apiTransfer"), runs["/api/transfer"])
}

const apiTransfer = `{"amount": 6000, "to": "bob"}`

// Every part of a record counts against the store's byte limit: a part
// left out of the count would let one account fill the store's memory
// past its bound with that part alone.
func TestMemoryStoreCountsEveryPartOfARecord(t *testing.T) {
	const limit = 1 << 20
	big := string(make([]byte, 600<<10)) // two of these never fit in 1 MiB
	parts := map[string]func(*stepup.Record){
		"id":           func(r *stepup.Record) { r.ID += big },
		"user":         func(r *stepup.Record) { r.UserID = big },
		"action":       func(r *stepup.Record) { r.Action = big },
		"method":       func(r *stepup.Record) { r.Method = big },
		"path":         func(r *stepup.Record) { r.Path = big },
		"query":        func(r *stepup.Record) { r.Query = big },
		"body":         func(r *stepup.Record) { r.Body = []byte(big) },
		"body hash":    func(r *stepup.Record) { r.BodyHash = []byte(big) },
		"judged":       func(r *stepup.Record) { r.Judged = []byte(big) },
		"shown":        func(r *stepup.Record) { r.Shown = [][]byte{[]byte(big)} },
		"header key":   func(r *stepup.Record) { r.Header = http.Header{big: {"v"}} },
		"header value": func(r *stepup.Record) { r.Header = http.Header{"K": {big}} },
		"park":         func(r *stepup.Record) { r.Park = big },
	}
	for name, set := range parts {
		t.Run(name, func(t *testing.T) {
			s := stepup.NewMemoryStore(stepup.MemoryLimits(100, limit))
			now := time.Now()
			put := func(id string) error {
				r := &stepup.Record{ID: id, Kind: stepup.KindGrant, Created: now, Expires: now.Add(time.Hour)}
				set(r)
				return s.Put(context.Background(), r)
			}
			require.NoError(t, put("a"))
			assert.ErrorIs(t, put("b"), stepup.ErrStoreFull, "the %s counts", name)
		})
	}
}

// A store whose bytes are taken by expired records makes room for a new
// one instead of refusing it: expired records never hold capacity.
func TestMemoryStoreSweepsExpiredBytesWhenFull(t *testing.T) {
	clock := stepuptest.NewClock()
	s := stepup.NewMemoryStore(stepup.MemoryLimits(1000, 1<<20), stepup.MemoryClock(clock.Now))
	big := make([]byte, 600<<10)
	put := func(id string) error {
		return s.Put(context.Background(), &stepup.Record{ID: id, Kind: stepup.KindGrant, Body: big,
			Created: clock.Now(), Expires: clock.Now().Add(time.Minute)})
	}
	require.NoError(t, put("a"))
	require.ErrorIs(t, put("b"), stepup.ErrStoreFull)
	clock.Advance(time.Minute)
	assert.NoError(t, put("c"), "the expired record's bytes are swept")
}

// Expired records are dropped by their expiry, whatever the order they
// were written in: a full store takes exactly as many new records as have
// expired, and every record still live stays.
func TestMemoryStoreExpiresInOrderOfExpiry(t *testing.T) {
	ctx := context.Background()
	clock := stepuptest.NewClock()
	const n = 500
	s := stepup.NewMemoryStore(stepup.MemoryClock(clock.Now), stepup.MemoryLimits(n, 0))
	ttl := make([]time.Duration, n)
	for i, p := range rand.New(rand.NewPCG(1, 2)).Perm(n) {
		ttl[i] = time.Duration(p+1) * time.Second // every TTL from 1 s to n s, shuffled
		require.NoError(t, s.Put(ctx, &stepup.Record{ID: fmt.Sprint("r", i), Kind: stepup.KindUsed,
			Created: clock.Now(), Expires: clock.Now().Add(ttl[i])}))
	}
	start := clock.Now()
	for _, step := range []int{1, 9, 90, 150, 249} { // seconds of expiry to let pass, n in all
		clock.Advance(time.Duration(step) * time.Second)
		elapsed := clock.Now().Sub(start)
		for j := 0; j < step; j++ {
			require.NoError(t, s.Put(ctx, &stepup.Record{ID: fmt.Sprint("new", elapsed, ".", j), Kind: stepup.KindUsed,
				Created: clock.Now(), Expires: clock.Now().Add(time.Hour)}), "one room per expired record")
		}
		assert.ErrorIs(t, s.Put(ctx, &stepup.Record{ID: "one-too-many", Kind: stepup.KindUsed,
			Created: clock.Now(), Expires: clock.Now().Add(time.Hour)}), stepup.ErrStoreFull, "no live record was evicted")
		for i := range n {
			_, err := s.Get(ctx, fmt.Sprint("r", i))
			if ttl[i] <= elapsed {
				assert.ErrorIs(t, err, stepup.ErrNotFound)
			} else {
				assert.NoError(t, err, "record %d lives until %s", i, ttl[i])
			}
		}
	}
	assert.Equal(t, n, s.Len())
}

// Concurrent Puts at the limit never take the store past it, in entries
// or in bytes, for plain records and for challenges with their
// reservations.
func TestMemoryStoreNeverOvershootsUnderConcurrentPuts(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	const workers, each = 8, 200
	run := func(s *stepup.MemoryStore, mk func(id string) *stepup.Record) int {
		var ok atomic.Int64
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				for i := range each {
					switch err := s.Put(ctx, mk(fmt.Sprint(w, ".", i))); {
					case err == nil:
						ok.Add(1)
					case !errors.Is(err, stepup.ErrStoreFull):
						t.Error(err)
					}
				}
			})
		}
		wg.Wait()
		return int(ok.Load())
	}
	grant := func(id string) *stepup.Record {
		return &stepup.Record{ID: fmt.Sprintf("%08s", id), Kind: stepup.KindGrant, UserID: "alice", Action: "transfer",
			Created: now, Expires: now.Add(time.Hour)}
	}
	park := func(id string) *stepup.Record {
		return &stepup.Record{ID: fmt.Sprintf("%08s", id), Kind: stepup.KindPark, UserID: "alice", Action: "transfer",
			Method: http.MethodPost, Path: "/transfer", Body: make([]byte, 100), Created: now, Expires: now.Add(time.Hour)}
	}
	one := stepup.NewMemoryStore()
	require.NoError(t, one.Put(ctx, grant("x")))
	size := one.Usage().Bytes

	t.Run("entries", func(t *testing.T) {
		s := stepup.NewMemoryStore(stepup.MemoryLimits(1000, 0))
		assert.Equal(t, 1000, run(s, grant))
		assert.Equal(t, 1000, s.Len())
	})
	t.Run("bytes", func(t *testing.T) {
		s := stepup.NewMemoryStore(stepup.MemoryLimits(0, 700*size+size/2))
		assert.Equal(t, 700, run(s, grant))
		assert.LessOrEqual(t, s.Usage().Bytes, 700*size+size/2)
	})
	t.Run("challenges and their reservations", func(t *testing.T) {
		s := stepup.NewMemoryStore(stepup.MemoryLimits(1200, 0)) // 1,050 for challenges: 350 parks and 700 reserved
		assert.Equal(t, 350, run(s, park))
		u := s.Usage()
		assert.Equal(t, 350, u.Records)
		assert.Equal(t, 700, u.ReservedEntries)
	})
}

// The bytes a MemoryStore counts for a record are within 5% of the heap
// it really holds, for each record the guard writes.
func TestMemoryStoreCountsTheHeapItHolds(t *testing.T) {
	for name, mk := range typicalRecords {
		t.Run(name, func(t *testing.T) {
			measured, counted := heapPerRecord(t, 20_000, mk)
			assert.InEpsilon(t, measured, counted, 0.05, "measured %.0f B, counted %.0f B", measured, counted)
		})
	}
}

// The default limits hold a sustained 50 challenges a second with the
// guard's default TTLs, whether every challenge is passed (its park, spent
// token and kept answer live up to 11 minutes) or none is (each park keeps
// its reservation for 10 minutes), and refuse new challenges at twice that
// rate. Limits and rate are scaled down by ten together: the store's
// accounting is linear in both.
func TestMemoryStoreDefaultsHold50ChallengesPerSecond(t *testing.T) {
	const scale = 10
	ctx := context.Background()
	run := func(t *testing.T, perSecond int, complete bool) (refused int, peak stepup.MemoryUsage) {
		clock := stepuptest.NewClock()
		s := stepup.NewMemoryStore(stepup.MemoryClock(clock.Now),
			stepup.MemoryLimits(stepup.DefaultMemoryEntries/scale, stepup.DefaultMemoryBytes/scale))
		mkPark, mkUsed, mkOutcome := typicalRecords["park"], typicalRecords["used"], typicalRecords["outcome"]
		for sec := range 30 * 60 {
			for range perSecond {
				park := mkPark(clock.Now())
				if err := s.Put(ctx, park); err != nil {
					require.ErrorIs(t, err, stepup.ErrStoreFull)
					refused++
					continue
				}
				if !complete {
					continue
				}
				used, out := mkUsed(clock.Now()), mkOutcome(clock.Now())
				used.Park, out.Park, out.ID, out.Expires = park.ID, park.ID, "o."+park.ID, park.Expires
				require.NoError(t, s.Put(ctx, used), "a passed challenge completes")
				_, err := s.Consume(ctx, park.ID)
				require.NoError(t, err)
				require.NoError(t, s.Put(ctx, out))
			}
			if sec%60 == 59 {
				if u := s.Usage(); u.Bytes+u.ReservedBytes > peak.Bytes+peak.ReservedBytes {
					peak = u
				}
			}
			clock.Advance(time.Second)
		}
		return refused, peak
	}
	for _, complete := range []bool{true, false} {
		t.Run(fmt.Sprintf("passed=%t", complete), func(t *testing.T) {
			refused, peak := run(t, 50/scale, complete)
			assert.Zero(t, refused, "50 challenges a second are all taken")
			t.Logf("peak at 50/s: %d records, %d reserved entries, %.1f MiB held, %.1f MiB reserved", peak.Records*scale,
				peak.ReservedEntries*scale, float64(peak.Bytes*scale)/(1<<20), float64(peak.ReservedBytes*scale)/(1<<20))
			refused, _ = run(t, 100/scale, complete)
			assert.NotZero(t, refused, "100 challenges a second are beyond the defaults")
		})
	}
}

// A parked request reserves the room of the records written once its
// challenge is passed; they take it, and a full store still has it for
// them.
func ExampleMemoryStore_Usage() {
	ctx := context.Background()
	store := stepup.NewMemoryStore(stepup.MemoryLimits(100_000, 128<<20), stepup.MemoryOutcomeReserve(4<<10))
	now := time.Now()
	park := &stepup.Record{ID: "k7Qe0n3cDg2m9VvRZkT1xw", Kind: stepup.KindPark, UserID: "alice", Action: "transfer",
		Method: http.MethodPost, Path: "/transfer", Body: []byte("amount=5000&to=bob"),
		Created: now, Expires: now.Add(10 * time.Minute)}
	if err := store.Put(ctx, park); err != nil {
		fmt.Println(err)
		return
	}
	u := store.Usage()
	fmt.Println("after the park:", u.Records, "record,", u.ReservedEntries, "entries reserved (spent token, kept answer)")

	spent := &stepup.Record{ID: "t.spent-token-hash", Kind: stepup.KindUsed, Park: park.ID,
		Created: now, Expires: now.Add(11 * time.Minute)}
	if err := store.Put(ctx, spent); err != nil {
		fmt.Println(err)
		return
	}
	u = store.Usage()
	fmt.Println("after the spent token:", u.Records, "records,", u.ReservedEntries, "entry reserved")
	// Output:
	// after the park: 1 record, 2 entries reserved (spent token, kept answer)
	// after the spent token: 2 records, 1 entry reserved
}

// Get and Consume hand out copies: a caller that writes into a record it
// got back (its body, body hash, shown hashes or headers) changes nothing
// the store holds, so the next reader — the callback replaying the park —
// sees what was parked.
func TestMemoryStoreHandsOutCopies(t *testing.T) {
	ctx := context.Background()
	s := stepup.NewMemoryStore()
	now := time.Now()
	rec := &stepup.Record{ID: "p0123456789abcdefghijk", Kind: stepup.KindAPI, UserID: "alice", Action: "transfer",
		Method: http.MethodPost, Path: "/transfer", Header: http.Header{"Content-Type": {"application/json"}},
		Body: []byte(`{"amount":5000}`), BodyHash: []byte{1, 2, 3}, Shown: [][]byte{{4, 5, 6}},
		Created: now, Expires: now.Add(time.Minute)}
	require.NoError(t, s.Put(ctx, rec))
	scribble := func(r *stepup.Record) {
		r.Body[0] = 'X'
		r.BodyHash[0] = 9
		r.Shown[0][0] = 9
		r.Header.Set("Content-Type", "text/plain")
	}
	got, err := s.Get(ctx, rec.ID)
	require.NoError(t, err)
	scribble(got)
	got, err = s.Consume(ctx, rec.ID)
	require.NoError(t, err)
	assert.Equal(t, `{"amount":5000}`, string(got.Body))
	assert.Equal(t, []byte{1, 2, 3}, got.BodyHash)
	assert.Equal(t, [][]byte{{4, 5, 6}}, got.Shown)
	assert.Equal(t, "application/json", got.Header.Get("Content-Type"))
	scribble(got)
	got, err = s.Get(ctx, rec.ID)
	require.NoError(t, err)
	assert.Equal(t, `{"amount":5000}`, string(got.Body))
	assert.Equal(t, []byte{1, 2, 3}, got.BodyHash)
	assert.Equal(t, [][]byte{{4, 5, 6}}, got.Shown)
}

// A challenge reserves exactly what the guard writes after it is passed:
// for a GET park with a Remember grant, the spent token, the grant, the
// single-use pass and the kept redirect to the park's own location. The
// same records put into an empty store take exactly the bytes and entries
// the park reserved, so a full store can neither run out for a passed
// challenge nor hold back more than it needs.
func TestMemoryStoreReservesExactlyWhatAGetParkLeaves(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	exp := now.Add(time.Minute)
	for _, query := range []string{"", "from=2026-01-01&to=2026-02-01"} {
		park := &stepup.Record{ID: strings.Repeat("p", 22), Kind: stepup.KindPark, UserID: "alice", Action: "report",
			Method: http.MethodGet, Path: "/accounts/7/report", Query: query, Remember: 5 * time.Minute,
			Created: now, Expires: exp}
		parked := stepup.NewMemoryStore()
		require.NoError(t, parked.Put(ctx, park))
		reserved := parked.Usage()

		location := park.Path
		if query != "" {
			location += "?" + query
		}
		successors := []*stepup.Record{
			{ID: strings.Repeat("u", 45), Kind: stepup.KindUsed, Park: park.ID, Created: now, Expires: exp},
			// a grant's slot id ("g." + 20 + ".00") and the longest method
			{ID: strings.Repeat("g", 25), Kind: stepup.KindGrant, UserID: park.UserID, Action: park.Action, Park: park.ID,
				Created: now, Expires: exp, VerificationMethod: stepup.MethodPalmBiometricsRR},
			{ID: strings.Repeat("s", 22), Kind: stepup.KindPass, UserID: park.UserID, Action: park.Action,
				Method: http.MethodGet, Path: park.Path, Query: park.Query, Park: park.ID, Created: now, Expires: exp},
			{ID: strings.Repeat("o", 24), Kind: stepup.KindOutcome, Park: park.ID, Status: http.StatusSeeOther,
				Header: http.Header{"Location": {location}}, Created: now, Expires: exp},
		}
		written := stepup.NewMemoryStore()
		for _, r := range successors {
			require.NoError(t, written.Put(ctx, r))
		}
		held := written.Usage()
		assert.Equal(t, held.Records, reserved.ReservedEntries, "query %q", query)
		assert.Equal(t, held.Bytes, reserved.ReservedBytes, "query %q", query)
	}
}
