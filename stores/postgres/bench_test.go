package pgstore_test

// Benchmarks of the PostgreSQL store against the MemoryStore, measured in
// the same run: the store's own operations, and a whole challenge through
// the guard (reserve, park, callback, replay). The server is the one the
// tests start, on the loopback, fsync off: the numbers are round trips and
// the server's work, not a disk's.

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup"
	"github.com/stepupkit/stepup/stepuptest"
	pgstore "github.com/stepupkit/stepup/stores/postgres"
)

type benchStore struct {
	name string
	new  func(now func() time.Time) stepup.Store
	// statements counts the round trips to the database: each statement
	// and each batch is one.
	statements *atomic.Int64
}

// benchStores are the stores compared, each on clock.
func benchStores(b *testing.B) []benchStore {
	srv := mustServer(b)
	counter := &statementCounter{}
	return []benchStore{
		{"memory", func(now func() time.Time) stepup.Store {
			return stepup.NewMemoryStore(stepup.MemoryClock(now), stepup.MemoryLimits(1<<30, 1<<40))
		}, nil},
		{"postgres", func(now func() time.Time) stepup.Store {
			pool := srv.newPool(b, 4, func(c *pgxpool.Config) { c.ConnConfig.Tracer = counter })
			return pgstore.New(pool, pgstore.Clock(now))
		}, &counter.n},
	}
}

// statementCounter is a pgx tracer that counts statements and batches.
type statementCounter struct{ n atomic.Int64 }

func (c *statementCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	c.n.Add(1)
	return ctx
}

func (c *statementCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (c *statementCounter) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	c.n.Add(1)
	return ctx
}

func (c *statementCounter) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}

func (c *statementCounter) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}

func benchRecord(id string, now time.Time) *stepup.Record {
	return &stepup.Record{ID: id, Kind: stepup.KindPark, UserID: "alice", Action: "transfer", Method: http.MethodPost,
		Path: "/transfer", Header: http.Header{"Content-Type": {"application/x-www-form-urlencoded"}},
		Body: []byte(strings.Repeat("amount=5000&to=bob&", 50)), Created: now, Expires: now.Add(10 * time.Minute)}
}

var benchRun atomic.Int64

// BenchmarkRoundTrip: one SELECT 1 through the pool, the floor under
// every operation of the store (each is one statement or one batch: one
// round trip).
func BenchmarkRoundTrip(b *testing.B) {
	ctx := context.Background()
	pool := mustServer(b).newPool(b, 4)
	var one int
	b.ReportAllocs()
	for b.Loop() {
		if err := pool.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPut: one parked request with a 1 KiB body, a new id each time
// (every 32nd Put also runs a cleanup batch, as by default).
func BenchmarkPut(b *testing.B) {
	ctx := context.Background()
	for _, st := range benchStores(b) {
		b.Run("store="+st.name, func(b *testing.B) {
			now := time.Now()
			s := st.new(func() time.Time { return now })
			run := benchRun.Add(1)
			i := 0
			b.ReportAllocs()
			for b.Loop() {
				i++
				if err := s.Put(ctx, benchRecord(fmt.Sprintf("p%d.%d", run, i), now)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkGet: one read of a parked request, decoded and checked.
func BenchmarkGet(b *testing.B) {
	ctx := context.Background()
	for _, st := range benchStores(b) {
		b.Run("store="+st.name, func(b *testing.B) {
			now := time.Now()
			s := st.new(func() time.Time { return now })
			require.NoError(b, s.Put(ctx, benchRecord("g", now)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.Get(ctx, "g"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkConsume: the atomic move of a parked request from pending to
// consumed, which returns the record.
func BenchmarkConsume(b *testing.B) {
	ctx := context.Background()
	for _, st := range benchStores(b) {
		b.Run("store="+st.name, func(b *testing.B) {
			now := time.Now()
			s := st.new(func() time.Time { return now })
			run := benchRun.Add(1)
			i := 0
			b.ReportAllocs()
			for b.Loop() {
				i++
				id := fmt.Sprintf("c%d.%d", run, i)
				b.StopTimer()
				if err := s.Put(ctx, benchRecord(id, now)); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				if _, err := s.Consume(ctx, id); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkReserve: both caps checked and a slot counted, under the
// user's lock; the slots expire as fast as they are taken, so that the
// cap never refuses.
func BenchmarkReserve(b *testing.B) {
	ctx := context.Background()
	s := pgstore.New(mustServer(b).newPool(b, 4))
	at := time.Now()
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		i++
		at = at.Add(time.Second)
		sl := stepup.Slot{ID: fmt.Sprint("s", i), User: "alice", Session: "session", At: at, Expires: at.Add(time.Second)}
		if _, err := s.Reserve(ctx, sl, 20, 5); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFlow: a whole challenge through the guard (stepuptest.BenchFlow,
// which the Redis store's benchmark runs too), with the statements it
// sends the database counted as roundtrips/op.
func BenchmarkFlow(b *testing.B) {
	for _, st := range benchStores(b) {
		b.Run("store="+st.name, func(b *testing.B) {
			var calls func() int64
			if st.statements != nil {
				calls = st.statements.Load
			}
			stepuptest.BenchFlow(b, st.new, calls)
		})
	}
}
