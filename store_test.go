package stepup_test

import (
	"context"
	"fmt"
	"net/http"
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
	rec := func(id string, body int, ttl time.Duration) *stepup.Record {
		return &stepup.Record{ID: id, Kind: stepup.KindPark, Method: http.MethodPost, Path: "/x",
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
		assert.Equal(t, 1, s.Len())
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
		empty.Kind = stepup.KindUsed
		empty.Header = http.Header{"Referer": make([]string, 100_000)} // 1.6 MB of string headers
		assert.ErrorIs(t, s.Put(ctx, empty), stepup.ErrStoreFull)
		keys := rec("many-keys", 0, time.Minute)
		keys.Kind = stepup.KindUsed
		keys.Header = http.Header{}
		for i := range 10_000 {
			keys.Header[fmt.Sprintf("X-%d", i)] = []string{""}
		}
		assert.ErrorIs(t, s.Put(ctx, keys), stepup.ErrStoreFull)
		assert.Zero(t, s.Len())
	})
	t.Run("reserve: new challenges stop short of full, what follows a passed one fits", func(t *testing.T) {
		for _, challenge := range []stepup.Kind{stepup.KindPark, stepup.KindAPI} {
			s := stepup.NewMemoryStore(stepup.MemoryClock(clock.Now), stepup.MemoryLimits(16, 0))
			for i := range 14 {
				r := rec(fmt.Sprint("c", i), 1, time.Minute)
				r.Kind = challenge
				require.NoError(t, s.Put(ctx, r))
			}
			r := rec("c14", 1, time.Minute)
			r.Kind = challenge
			assert.ErrorIs(t, s.Put(ctx, r), stepup.ErrStoreFull, "an eighth is kept back from new challenges")
			for i, kind := range []stepup.Kind{stepup.KindUsed, stepup.KindOutcome} {
				r := rec(fmt.Sprint("after", i), 1, time.Minute)
				r.Kind = kind
				require.NoError(t, s.Put(ctx, r), "kind %d uses the reserve", kind)
			}
			for _, kind := range []stepup.Kind{stepup.KindPass, stepup.KindGrant, stepup.KindUsed} {
				r := rec("full", 1, time.Minute)
				r.Kind = kind
				assert.ErrorIs(t, s.Put(ctx, r), stepup.ErrStoreFull, "the reserve is bounded too")
			}
		}
		s := stepup.NewMemoryStore(stepup.MemoryClock(clock.Now), stepup.MemoryLimits(0, 80_000))
		require.NoError(t, s.Put(ctx, rec("park", 60_000, time.Minute)))
		assert.ErrorIs(t, s.Put(ctx, rec("park2", 9_800, time.Minute)), stepup.ErrStoreFull, "70,000 bytes is the challenges' share")
		used := rec("used", 9_800, time.Minute)
		used.Kind = stepup.KindUsed
		require.NoError(t, s.Put(ctx, used))
	})
}

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
		"shown":        func(r *stepup.Record) { r.Shown = [][]byte{[]byte(big)} },
		"header key":   func(r *stepup.Record) { r.Header = http.Header{big: {"v"}} },
		"header value": func(r *stepup.Record) { r.Header = http.Header{"K": {big}} },
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
