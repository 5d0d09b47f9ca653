package redisstore_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup"
	"github.com/stepupkit/stepup/stepuptest"
	redisstore "github.com/stepupkit/stepup/stores/redis"
)

func TestStoreContract(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			stepuptest.RunStore(t, func(now func() time.Time) stepup.Store {
				return redisstore.New(b.client(t), freshPrefix(), redisstore.Clock(now))
			})
		})
	}
}

func TestCounterContract(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			stepuptest.RunCounter(t, func() stepup.Counter { return redisstore.New(b.client(t), freshPrefix()) })
		})
	}
}

func park(now time.Time, id string) *stepup.Record {
	return &stepup.Record{ID: id, Kind: stepup.KindPark, UserID: "alice", Action: "transfer", Method: http.MethodPost,
		Path: "/transfer", Body: []byte("amount=5000"), Created: now, Expires: now.Add(time.Minute)}
}

func TestKeysAndNativeExpiry(t *testing.T) {
	ctx := context.Background()
	mr := miniredis.RunT(t)
	t0 := time.Now()
	s := redisstore.New(redis.NewClient(&redis.Options{Addr: mr.Addr()}), redisstore.Prefix("app:"),
		redisstore.Clock(func() time.Time { return t0 }))
	require.NoError(t, s.Put(ctx, park(t0, "p1")))
	_, err := s.Reserve(ctx, stepup.Slot{ID: "s1", User: "alice@example.com", Session: "secret-session",
		At: t0, Expires: t0.Add(10 * time.Minute)}, 3, 2)
	require.NoError(t, err)

	keys := mr.Keys()
	require.Len(t, keys, 3)
	assert.Contains(t, keys, "app:r:p1")
	for _, k := range keys {
		assert.NotContains(t, k, "alice", "user ids stay out of keys")
		assert.NotContains(t, k, "secret-session", "session ids stay out of keys")
		assert.Greater(t, mr.TTL(k), time.Duration(0), "%s expires in Redis", k)
	}
	assert.Equal(t, time.Minute, mr.TTL("app:r:p1"))
	var tags []string
	for _, k := range keys {
		if k != "app:r:p1" {
			assert.Equal(t, 10*time.Minute, mr.TTL(k))
			tags = append(tags, k[len("app:c:"):len("app:c:")+45])
		}
	}
	require.Len(t, tags, 2)
	assert.Equal(t, tags[0], tags[1], "the user's and the session's sets share a hash tag")

	mr.FastForward(time.Minute)
	_, err = s.Get(ctx, "p1")
	assert.ErrorIs(t, err, stepup.ErrNotFound, "Redis forgot the record")
}

func TestUntrustedBytes(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		given  map[string]string
		expect string
	}{
		{"not a record", map[string]string{"r": "{nope", "c": "0"}, "redisstore: stepup: decoding record"},
		{"a record of another id", map[string]string{"r": mustMarshal(t, park(time.Now(), "other")), "c": "0"},
			"redisstore: the record under this id names another"},
		{"an unsafe path", map[string]string{"r": `{"v":1,"id":"p1","kind":1,"path":"//evil.example","expires":"2999-01-01T00:00:00Z"}`, "c": "0"},
			"unsafe path"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mr := miniredis.RunT(t)
			mr.HSet("stepup:r:p1", "r", tc.given["r"], "c", tc.given["c"], "e", "99999999999999999999")
			s := redisstore.New(redis.NewClient(&redis.Options{Addr: mr.Addr()}))
			_, err := s.Get(ctx, "p1")
			assert.ErrorContains(t, err, tc.expect)
			_, err = s.Consume(ctx, "p1")
			assert.ErrorContains(t, err, tc.expect)
		})
	}
	t.Run("a consumed mark that is not the pending one counts as consumed", func(t *testing.T) {
		mr := miniredis.RunT(t)
		mr.HSet("stepup:r:p1", "r", mustMarshal(t, park(time.Now(), "p1")), "e", "99999999999999999999")
		s := redisstore.New(redis.NewClient(&redis.Options{Addr: mr.Addr()}))
		got, err := s.Get(ctx, "p1")
		require.NoError(t, err)
		assert.True(t, got.Consumed)
		_, err = s.Consume(ctx, "p1")
		assert.ErrorIs(t, err, stepup.ErrConsumed)
	})
}

func mustMarshal(t testing.TB, rec *stepup.Record) string {
	b, err := stepup.MarshalRecord(rec)
	require.NoError(t, err)
	return string(b)
}

// FuzzGet feeds what Redis could hold under a record's key to Get and
// Consume: an error or the record asked for, never a panic.
func FuzzGet(f *testing.F) {
	f.Add(mustMarshal(f, park(time.Now(), "p1")), "0")
	f.Add(`{"v":1,"id":"p1","kind":9,"expires":"2999-01-01T00:00:00Z"}`, "x")
	f.Add("", "")
	mr := miniredis.RunT(f)
	s := redisstore.New(redis.NewClient(&redis.Options{Addr: mr.Addr()}))
	f.Fuzz(func(t *testing.T, data, consumed string) {
		ctx := context.Background()
		mr.HSet("stepup:r:p1", "r", data, "c", consumed, "e", "99999999999999999999")
		for _, op := range []func(context.Context, string) (*stepup.Record, error){s.Get, s.Consume} {
			rec, err := op(ctx, "p1")
			if err == nil {
				assert.Equal(t, "p1", rec.ID)
				assert.True(t, time.Now().Before(rec.Expires))
			}
		}
	})
}

// TestRedisNotAnswering: a Redis that accepts connections and never
// answers is an error named by the store, within its Timeout.
func TestRedisNotAnswering(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
		}
	}()
	s := redisstore.New(redis.NewClient(&redis.Options{Addr: ln.Addr().String(), MaxRetries: -1}),
		redisstore.Timeout(50*time.Millisecond))
	ctx := context.Background()
	now := time.Now()
	err = s.Put(ctx, park(now, "p1"))
	assert.ErrorContains(t, err, "redisstore: put: ")
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	_, err = s.Consume(ctx, "p1")
	assert.ErrorContains(t, err, "redisstore: consume: ")
	_, err = s.Reserve(ctx, stepup.Slot{ID: "s", User: "alice", At: now, Expires: now.Add(time.Minute)}, 1, 1)
	assert.ErrorContains(t, err, "redisstore: reserve: ")
	assert.NotErrorIs(t, err, stepup.ErrTooManyChallenges)
}

// TestRedisReserve: a Redis past 7/8 of its maxmemory refuses new
// challenges, and still takes what follows a passed one.
func TestRedisReserve(t *testing.T) {
	srv := startRedis(t)
	c := srv.client()
	t.Cleanup(func() { c.Close() })
	ctx := context.Background()
	s := redisstore.New(c)
	now := time.Now()
	require.NoError(t, s.Put(ctx, park(now, "before")), "no maxmemory: no reserve")

	info, err := c.InfoMap(ctx, "memory").Result()
	require.NoError(t, err)
	total, err := strconv.ParseInt(info["Memory"]["used_memory"], 10, 64)
	require.NoError(t, err)
	require.NoError(t, c.ConfigSet(ctx, "maxmemory", strconv.FormatInt(total+total/10, 10)).Err())

	for _, kind := range []stepup.Kind{stepup.KindPark, stepup.KindAPI} {
		rec := park(now, fmt.Sprint("new-", kind))
		rec.Kind = kind
		err := s.Put(ctx, rec)
		assert.ErrorIs(t, err, stepup.ErrStoreFull, "kind %d", kind)
		assert.ErrorContains(t, err, "redisstore: put: ")
	}
	for _, kind := range []stepup.Kind{stepup.KindUsed, stepup.KindOutcome, stepup.KindPass, stepup.KindGrant} {
		assert.NoError(t, s.Put(ctx, &stepup.Record{ID: fmt.Sprint("after-", kind), Kind: kind, UserID: "alice",
			Created: now, Expires: now.Add(time.Minute)}), "kind %d uses the reserve", kind)
	}
	_, err = s.Consume(ctx, "before")
	assert.NoError(t, err, "a park opened before completes")
}

// TestRedisFull: a Redis out of memory refuses writes with ErrStoreFull,
// which the guard answers with a 503.
func TestRedisFull(t *testing.T) {
	srv := startRedis(t)
	c := srv.client()
	ctx := context.Background()
	s := redisstore.New(c)
	require.NoError(t, c.ConfigSet(ctx, "maxmemory", "1").Err())
	err := s.Put(ctx, park(time.Now(), "p1"))
	assert.ErrorIs(t, err, stepup.ErrStoreFull)
	assert.ErrorContains(t, err, "redisstore: put: ")
	_, err = s.Get(ctx, "p1")
	assert.ErrorIs(t, err, stepup.ErrNotFound, "nothing was written")
}
