package redisstore_test

// Benchmarks of the Redis store against the MemoryStore, measured in the
// same run: the store's own operations, and a whole challenge through the
// guard (park, callback, replay). miniredis runs in this process; the real
// redis-server (when installed) is on the loopback, without persistence,
// so its numbers are one round trip per operation on an idle machine.

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stepupkit/stepup"
	"github.com/stepupkit/stepup/stepuptest"
	redisstore "github.com/stepupkit/stepup/stores/redis"
)

// benchStores are the stores compared, each on clock.
func benchStores(b *testing.B) []struct {
	name string
	new  func(now func() time.Time) stepup.Store
} {
	out := []struct {
		name string
		new  func(now func() time.Time) stepup.Store
	}{{"memory", func(now func() time.Time) stepup.Store {
		return stepup.NewMemoryStore(stepup.MemoryClock(now), stepup.MemoryLimits(1<<30, 1<<40))
	}}}
	for _, be := range backends(b) {
		out = append(out, struct {
			name string
			new  func(now func() time.Time) stepup.Store
		}{be.name, func(now func() time.Time) stepup.Store {
			return redisstore.New(be.client(b), freshPrefix(), redisstore.Clock(now))
		}})
	}
	return out
}

func benchRecord(id string, now time.Time) *stepup.Record {
	return &stepup.Record{ID: id, Kind: stepup.KindPark, UserID: "alice", Action: "transfer", Method: http.MethodPost,
		Path: "/transfer", Header: http.Header{"Content-Type": {"application/x-www-form-urlencoded"}},
		Body: []byte(strings.Repeat("amount=5000&to=bob&", 50)), Created: now, Expires: now.Add(10 * time.Minute)}
}

var benchRun atomic.Int64

// BenchmarkRoundTrip: one PING, the floor under every operation of the
// Redis store (each is one command or one script: one round trip).
func BenchmarkRoundTrip(b *testing.B) {
	ctx := context.Background()
	for _, be := range backends(b) {
		b.Run("redis="+be.name, func(b *testing.B) {
			c := be.client(b)
			b.ReportAllocs()
			for b.Loop() {
				if err := c.Ping(ctx).Err(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkPut: one parked request with a 1 KiB body, a new id each time.
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

// BenchmarkFlow: a whole challenge through the guard (stepuptest.BenchFlow,
// which the PostgreSQL store's benchmark runs too), with the round trips
// to Redis per flow (roundtrips/op: a command or a pipeline is one).
func BenchmarkFlow(b *testing.B) {
	b.Run("store=memory", func(b *testing.B) {
		stepuptest.BenchFlow(b, func(now func() time.Time) stepup.Store {
			return stepup.NewMemoryStore(stepup.MemoryClock(now), stepup.MemoryLimits(1<<30, 1<<40))
		}, nil)
	})
	for _, be := range backends(b) {
		b.Run("store="+be.name, func(b *testing.B) {
			c := be.client(b)
			trips := &tripCounter{quiet: true}
			c.AddHook(trips)
			stepuptest.BenchFlow(b, func(now func() time.Time) stepup.Store {
				return redisstore.New(c, freshPrefix(), redisstore.Clock(now))
			}, trips.count)
		})
	}
}

// BenchmarkDurable: what Durable costs on a primary with one replica, both
// on the loopback, without persistence: a Consume, and a whole challenge
// flow through the guard (whose spent token, Consume and kept answer
// wait), each without and with Durable(1, time.Second), in the same run.
func BenchmarkDurable(b *testing.B) {
	primary := serverT(b)
	replicaT(b, primary.addr())
	c := primary.client()
	b.Cleanup(func() { c.Close() })
	ctx := context.Background()
	for _, mode := range []struct {
		name string
		opts []redisstore.Option
	}{{"off", nil}, {"on", []redisstore.Option{redisstore.Durable(1, time.Second)}}} {
		newStore := func(now func() time.Time) stepup.Store {
			return redisstore.New(c, append([]redisstore.Option{freshPrefix(), redisstore.Clock(now)}, mode.opts...)...)
		}
		b.Run("op=consume/durable="+mode.name, func(b *testing.B) {
			now := time.Now()
			s := newStore(func() time.Time { return now })
			i := 0
			b.ReportAllocs()
			for b.Loop() {
				i++
				id := fmt.Sprint("d", i)
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
		b.Run("op=flow/durable="+mode.name, func(b *testing.B) { stepuptest.BenchFlow(b, newStore, nil) })
	}
}
