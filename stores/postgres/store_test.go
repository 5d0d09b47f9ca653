package pgstore_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup"
	"github.com/stepupkit/stepup/stepuptest"
	pgstore "github.com/stepupkit/stepup/stores/postgres"
)

func TestStoreContract(t *testing.T) {
	srv := mustServer(t)
	stepuptest.RunStore(t, func(now func() time.Time) stepup.Store {
		return pgstore.New(srv.newPool(t, 16), pgstore.Clock(now))
	})
}

func TestCounterContract(t *testing.T) {
	srv := mustServer(t)
	stepuptest.RunCounter(t, func() stepup.Counter { return pgstore.New(srv.newPool(t, 16)) })
}

func park(now time.Time, id string) *stepup.Record {
	return &stepup.Record{ID: id, Kind: stepup.KindPark, UserID: "alice", Action: "transfer", Method: http.MethodPost,
		Path: "/transfer", Body: []byte("amount=5000"), Created: now, Expires: now.Add(time.Minute)}
}

// TestConsumeAcrossInstances: 50 concurrent Consumes of one record, half
// through each of two pools (two instances), as many connections as
// callers: exactly one gets the record, every other one ErrConsumed.
func TestConsumeAcrossInstances(t *testing.T) {
	srv := mustServer(t)
	ctx := context.Background()
	first := srv.newPool(t, 25)
	schema := first.Config().ConnConfig.RuntimeParams["search_path"]
	now := time.Now()
	second := srv.pool(t, schema, 25)
	warm(t, first, 25)
	warm(t, second, 25)
	stores := []*pgstore.Store{pgstore.New(first), pgstore.New(second)}
	for round := range 5 {
		id := fmt.Sprint("park-", round)
		require.NoError(t, stores[0].Put(ctx, park(now, id)))
		var wg sync.WaitGroup
		start := make(chan struct{})
		results := make([]error, 50)
		for i := range results {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				rec, err := stores[i%2].Consume(ctx, id)
				if err == nil {
					assert.Equal(t, "amount=5000", string(rec.Body))
				}
				results[i] = err
			}()
		}
		close(start)
		wg.Wait()
		wins := 0
		for _, err := range results {
			if err == nil {
				wins++
				continue
			}
			require.ErrorIs(t, err, stepup.ErrConsumed, "round %d", round)
		}
		require.Equal(t, 1, wins, "round %d: exactly one Consume wins", round)
	}
}

// TestUntrustedBytes: what the table holds is decoded as untrusted.
func TestUntrustedBytes(t *testing.T) {
	srv := mustServer(t)
	ctx := context.Background()
	future := time.Now().Add(time.Hour)
	for _, tc := range []struct {
		name   string
		given  []byte
		expect string
	}{
		{"not a record", []byte("{nope"), "pgstore: stepup: decoding record"},
		{"a record of another id", []byte(mustMarshal(t, park(time.Now(), "other"))),
			"pgstore: the record under this id names another"},
		{"an unsafe path", []byte(`{"v":1,"id":"p1","kind":1,"path":"//evil.example","expires":"2999-01-01T00:00:00Z"}`),
			"unsafe path"},
		{"an unknown version", []byte(`{"v":2,"id":"p1","kind":1,"expires":"2999-01-01T00:00:00Z"}`),
			"unknown version"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pool := srv.newPool(t, 4)
			_, err := pool.Exec(ctx, `INSERT INTO stepup_records (id, expires, consumed, record) VALUES ('p1', $1, false, $2)`,
				future, tc.given)
			require.NoError(t, err)
			s := pgstore.New(pool)
			_, err = s.Get(ctx, "p1")
			assert.ErrorContains(t, err, tc.expect)
			_, err = s.Consume(ctx, "p1")
			assert.ErrorContains(t, err, tc.expect)
		})
	}
	t.Run("a record whose own expiry passed is not found, whatever the row says", func(t *testing.T) {
		pool := srv.newPool(t, 4)
		rec := park(time.Now().Add(-time.Hour), "p1")
		_, err := pool.Exec(ctx, `INSERT INTO stepup_records (id, expires, consumed, record) VALUES ('p1', $1, false, $2)`,
			future, []byte(mustMarshal(t, rec)))
		require.NoError(t, err)
		_, err = pgstore.New(pool).Get(ctx, "p1")
		assert.ErrorIs(t, err, stepup.ErrNotFound)
	})
}

func mustMarshal(t testing.TB, rec *stepup.Record) string {
	b, err := stepup.MarshalRecord(rec)
	require.NoError(t, err)
	return string(b)
}

// TestEveryFieldRoundTrips: the store keeps what MarshalRecord encodes,
// every field of the Record (each one set here: a new field fails the test
// until it is), whatever wraps the records it is given.
func TestEveryFieldRoundTrips(t *testing.T) {
	srv := mustServer(t)
	ctx := context.Background()
	now := time.Date(2026, 11, 27, 10, 0, 0, 123456789, time.UTC)
	in := &stepup.Record{ID: "p1", Kind: stepup.KindOutcome, UserID: "alice", Action: "transfer", Method: http.MethodPost,
		Path: "/transfer", Query: "a=1&b=2", Header: http.Header{"Content-Type": {"text/html"}, "X-Many": {"1", "2"}},
		Body: []byte("body"), BodyHash: []byte("0123456789abcdef0123456789abcdef"), Remember: 5 * time.Minute,
		Shown: [][]byte{[]byte("fedcba9876543210fedcba9876543210")}, Status: http.StatusCreated,
		Judged:  []byte("judged0123456789judged0123456789"),
		Sealed:  []byte("\x01 sealed by the guard, kept as it is"),
		Created: now, Expires: now.Add(time.Minute), Consumed: true, Park: "the-park",
		VerificationMethod: stepup.MethodPalmBiometricsRR, Methods: 1,
		Trace: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", Session: "session-id"}
	fields := reflect.ValueOf(*in)
	for i := range fields.NumField() {
		require.False(t, fields.Field(i).IsZero(), "set Record.%s here too", fields.Type().Field(i).Name)
	}
	s := pgstore.New(srv.newPool(t, 4), pgstore.Clock(func() time.Time { return now }))
	require.NoError(t, s.Put(ctx, in))
	got, err := s.Get(ctx, "p1")
	require.NoError(t, err)
	assert.Equal(t, in, got, "nanoseconds included")
}

// TestMigrate: Migrate is idempotent and safe to run from many instances
// at once, and a store on a database without the schema says what to run.
func TestMigrate(t *testing.T) {
	srv := mustServer(t)
	ctx := context.Background()
	pool := srv.newPool(t, 8)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			assert.NoError(t, pgstore.Migrate(ctx, pool))
		}()
	}
	wg.Wait()
	s := pgstore.New(pool)
	require.NoError(t, s.Put(ctx, park(time.Now(), "p1")))

	_, err := pool.Exec(ctx, "CREATE SCHEMA empty_schema")
	require.NoError(t, err)
	empty := pgstore.New(srv.pool(t, "empty_schema", 2))
	err = empty.Put(ctx, park(time.Now(), "p1"))
	assert.ErrorContains(t, err, "pgstore: put: ")
	assert.ErrorContains(t, err, "run pgstore.Migrate")
	_, err = empty.Reserve(ctx, stepup.Slot{ID: "s", User: "alice", At: time.Now(), Expires: time.Now().Add(time.Minute)}, 1, 1)
	assert.ErrorContains(t, err, "pgstore: reserve: ")
	assert.NotErrorIs(t, err, stepup.ErrTooManyChallenges)
}

// TestCleanup: expired records and slots are deleted in bounded batches,
// found by their expiry index, live ones never; Put runs a batch now and
// then on its own.
func TestCleanup(t *testing.T) {
	srv := mustServer(t)
	ctx := context.Background()
	clock := stepuptest.NewClock()
	pool := srv.newPool(t, 4)
	s := pgstore.New(pool, pgstore.Clock(clock.Now), pgstore.CleanupEvery(0))
	for i := range 600 {
		require.NoError(t, s.Put(ctx, park(clock.Now(), fmt.Sprint("old-", i))))
	}
	_, err := s.Reserve(ctx, stepup.Slot{ID: "old", User: "alice", Session: "s1", At: clock.Now(),
		Expires: clock.Now().Add(time.Minute)}, 5, 5)
	require.NoError(t, err)
	clock.Advance(time.Minute)
	require.NoError(t, s.Put(ctx, park(clock.Now(), "live")))
	assert.Equal(t, 601, count(t, pool, "stepup_records"), "nothing deleted with CleanupEvery(0)")

	deleted, err := s.Cleanup(ctx)
	require.NoError(t, err)
	assert.Equal(t, int64(602), deleted, "600 records, the user's slot and the session's")
	assert.Equal(t, 1, count(t, pool, "stepup_records"))
	assert.Equal(t, 0, count(t, pool, "stepup_slots"))
	_, err = s.Get(ctx, "live")
	assert.NoError(t, err)

	auto := pgstore.New(pool, pgstore.Clock(clock.Now), pgstore.CleanupEvery(4))
	for i := range 10 {
		require.NoError(t, auto.Put(ctx, park(clock.Now(), fmt.Sprint("soon-", i))))
	}
	clock.Advance(time.Minute)
	for i := range 4 {
		require.NoError(t, auto.Put(ctx, park(clock.Now(), fmt.Sprint("new-", i))))
	}
	assert.Equal(t, 4, count(t, pool, "stepup_records"), "every fourth Put deletes a batch of what expired")
}

// TestCleanupUsesTheIndex: the batch that Cleanup and Put run reads the
// expiry index, never the whole table.
func TestCleanupUsesTheIndex(t *testing.T) {
	srv := mustServer(t)
	ctx := context.Background()
	pool := srv.newPool(t, 2)
	_, err := pool.Exec(ctx, `INSERT INTO stepup_records (id, expires, consumed, record)
		SELECT 'r' || i, now() + interval '1 hour', false, '\x00' FROM generate_series(1, 20000) AS i`)
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `ANALYZE stepup_records`)
	require.NoError(t, err)
	rows, err := pool.Query(ctx, "EXPLAIN "+pgstore.CleanupSQL, time.Now(), 256)
	require.NoError(t, err)
	var lines []string
	for rows.Next() {
		var l string
		require.NoError(t, rows.Scan(&l))
		lines = append(lines, l)
	}
	require.NoError(t, rows.Err())
	plan := strings.Join(lines, "\n")
	assert.Contains(t, plan, "Index Scan using stepup_records_expires", "the expiry index")
	assert.Contains(t, plan, "Tid Scan on stepup_records", "the delete finds the rows by ctid")
	assert.NotContains(t, plan, "Seq Scan on stepup_records", plan)
}

func count(t testing.TB, pool *pgxpool.Pool, table string) int {
	var n int
	require.NoError(t, pool.QueryRow(context.Background(), "SELECT count(*) FROM "+table).Scan(&n))
	return n
}

// TestDatabaseNotAnswering: a server that accepts connections and never
// answers is an error named by the store, within its Timeout.
func TestDatabaseNotAnswering(t *testing.T) {
	ln := silentListener(t)
	cfg, err := pgxpool.ParseConfig("postgres://postgres@" + ln + "/postgres?sslmode=disable&connect_timeout=10")
	require.NoError(t, err)
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	s := pgstore.New(pool, pgstore.Timeout(50*time.Millisecond))
	ctx := context.Background()
	now := time.Now()
	begin := time.Now()
	err = s.Put(ctx, park(now, "p1"))
	assert.ErrorContains(t, err, "pgstore: put: ")
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	_, err = s.Consume(ctx, "p1")
	assert.ErrorContains(t, err, "pgstore: consume: ")
	_, err = s.Reserve(ctx, stepup.Slot{ID: "s", User: "alice", At: now, Expires: now.Add(time.Minute)}, 1, 1)
	assert.ErrorContains(t, err, "pgstore: reserve: ")
	assert.NotErrorIs(t, err, stepup.ErrTooManyChallenges)
	assert.Less(t, time.Since(begin), 5*time.Second, "each call gave up after its Timeout")
}

// silentListener accepts connections and never answers; it returns its
// address.
func silentListener(t *testing.T) string {
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
	return ln.Addr().String()
}

// TestReserveAcrossInstances: 50 concurrent Reserves for one user, half
// through each of two pools with a connection for each caller, over
// several rounds: never more slots than the cap.
func TestReserveAcrossInstances(t *testing.T) {
	srv := mustServer(t)
	ctx := context.Background()
	first := srv.newPool(t, 25)
	schema := first.Config().ConnConfig.RuntimeParams["search_path"]
	pools := []*pgxpool.Pool{first, srv.pool(t, schema, 25)}
	for _, p := range pools {
		warm(t, p, 25)
	}
	stores := []*pgstore.Store{pgstore.New(pools[0]), pgstore.New(pools[1])}
	at := time.Now()
	for round := range 10 {
		user := fmt.Sprint("user-", round)
		var wg sync.WaitGroup
		var wins atomic.Int32
		start := make(chan struct{})
		for i := range 50 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				sl := stepup.Slot{ID: fmt.Sprint("slot-", i), User: user, Session: fmt.Sprint("s", i%3), At: at,
					Expires: at.Add(time.Minute)}
				_, err := stores[i%2].Reserve(ctx, sl, 4, 2)
				if err == nil {
					wins.Add(1)
					return
				}
				assert.ErrorIs(t, err, stepup.ErrTooManyChallenges)
			}()
		}
		close(start)
		wg.Wait()
		require.Equal(t, int32(4), wins.Load(), "round %d: the per-user cap, exactly", round)
	}
}

// warm opens n connections of pool, so that a test's callers do not wait
// for them in turn.
func warm(t *testing.T, pool *pgxpool.Pool, n int) {
	conns := make([]*pgxpool.Conn, n)
	for i := range conns {
		c, err := pool.Acquire(context.Background())
		require.NoError(t, err)
		conns[i] = c
	}
	for _, c := range conns {
		c.Release()
	}
}

// FuzzGet feeds what a row could hold to Get and Consume: an error or the
// record asked for, live, never a panic.
func FuzzGet(f *testing.F) {
	f.Add([]byte(mustMarshal(f, park(time.Now(), "p1"))), false)
	f.Add([]byte(`{"v":1,"id":"p1","kind":9,"expires":"2999-01-01T00:00:00Z"}`), true)
	f.Add([]byte(""), false)
	srv := mustServer(f)
	pool := srv.newPool(f, 2)
	s := pgstore.New(pool)
	f.Fuzz(func(t *testing.T, data []byte, consumed bool) {
		ctx := context.Background()
		_, err := pool.Exec(ctx, `INSERT INTO stepup_records (id, expires, consumed, record) VALUES ('p1', 'infinity', $1, $2)
			ON CONFLICT (id) DO UPDATE SET consumed = EXCLUDED.consumed, record = EXCLUDED.record`, consumed, data)
		require.NoError(t, err)
		for _, op := range []func(context.Context, string) (*stepup.Record, error){s.Get, s.Consume} {
			rec, err := op(ctx, "p1")
			if err == nil {
				assert.Equal(t, "p1", rec.ID)
				assert.True(t, time.Now().Before(rec.Expires))
			}
		}
	})
}
