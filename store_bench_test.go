package stepup_test

// Benchmarks of MemoryStore at scale, each against legacyMemoryStore (the
// store before it was sharded and indexed) in the same run, and the heap a
// record really takes next to what the store counts for it.
//
//	go test -run '^$' -bench Memory -benchmem -count 3 .

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stepupkit/stepup"
)

// typicalRecords make the records a guard writes, with strings allocated
// per record as a parsed request's are: a parked POST with a 1 KiB body
// and 10 headers, an API challenge, and what follows a passed challenge;
// and two of them as the guard's sealedStore hands them to the store.
var typicalRecords = map[string]func(now time.Time) *stepup.Record{
	"park": func(now time.Time) *stepup.Record {
		return &stepup.Record{ID: randomID(), Kind: stepup.KindPark, UserID: fresh("user-4711"), Action: fresh("transfer"),
			Method: fresh(http.MethodPost), Path: fresh("/accounts/4711/transfer"), Query: fresh("from=main"),
			Header: http.Header{
				"Content-Type":    {fresh("application/x-www-form-urlencoded")},
				"Accept":          {fresh("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")},
				"Accept-Language": {fresh("en-GB,en;q=0.9")},
				"Origin":          {fresh("https://bank.example")},
				"Referer":         {fresh("https://bank.example/accounts/4711")},
				"Sec-Fetch-Dest":  {fresh("document")},
				"Sec-Fetch-Mode":  {fresh("navigate")},
				"Sec-Fetch-Site":  {fresh("same-origin")},
				"Sec-Fetch-User":  {fresh("?1")},
				"X-Csrf-Token":    {fresh("q4bVrEpTtAqZ6ldUe1KjRzH0bVfRMZjw9cSo2Xa1kxY")},
			},
			Body: make([]byte, 1024), Shown: [][]byte{make([]byte, 32), make([]byte, 32)},
			Created: now, Expires: now.Add(10 * time.Minute)}
	},
	"api": func(now time.Time) *stepup.Record {
		return &stepup.Record{ID: randomID(), Kind: stepup.KindAPI, UserID: fresh("user-4711"), Action: fresh("transfer"),
			Method: fresh(http.MethodPost), Path: fresh("/api/transfers"), BodyHash: make([]byte, 32),
			Shown: [][]byte{make([]byte, 32)}, Created: now, Expires: now.Add(10 * time.Minute)}
	},
	"api, 8 shown": func(now time.Time) *stepup.Record { // the most shown tokens a record keeps
		shown := make([][]byte, 8)
		for i := range shown {
			shown[i] = make([]byte, 32)
		}
		return &stepup.Record{ID: randomID(), Kind: stepup.KindAPI, UserID: fresh("user-4711"), Action: fresh("transfer"),
			Method: fresh(http.MethodPost), Path: fresh("/api/transfers"), BodyHash: make([]byte, 32),
			Shown: shown, Created: now, Expires: now.Add(10 * time.Minute)}
	},
	"used": func(now time.Time) *stepup.Record {
		return &stepup.Record{ID: "t." + randomID() + randomID()[:21], Kind: stepup.KindUsed, Park: randomID(),
			Created: now, Expires: now.Add(11 * time.Minute)}
	},
	"grant": func(now time.Time) *stepup.Record {
		return &stepup.Record{ID: randomID(), Kind: stepup.KindGrant, UserID: fresh("user-4711"), Action: fresh("transfer"),
			Park: randomID(), Created: now, Expires: now.Add(10 * time.Minute)}
	},
	"outcome": func(now time.Time) *stepup.Record {
		return &stepup.Record{ID: "o." + randomID(), Kind: stepup.KindOutcome, Status: http.StatusSeeOther,
			Header: http.Header{"Location": {fresh("/accounts/4711")}, "Content-Type": {fresh("text/html; charset=utf-8")}},
			Body:   []byte(`<a href="/accounts/4711">See Other</a>.` + "\n"), Park: randomID(),
			Created: now, Expires: now.Add(10 * time.Minute)}
	},
	// As the guard writes them (seal.go): the clear fields and the sealed
	// bytes, for the park above and for a spent token.
	"sealed park": func(now time.Time) *stepup.Record {
		return &stepup.Record{ID: randomID(), Kind: stepup.KindPark, Sealed: make([]byte, 1500),
			Created: now, Expires: now.Add(10 * time.Minute)}
	},
	"sealed used": func(now time.Time) *stepup.Record {
		return &stepup.Record{ID: "t." + randomID() + randomID()[:21], Kind: stepup.KindUsed, Park: randomID(),
			Sealed: make([]byte, 29), Created: now, Expires: now.Add(11 * time.Minute)}
	},
}

func randomID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// fresh is s in an allocation of its own.
func fresh(s string) string { return strings.Clone(s) }

// heapPerRecord puts n records made by mk into a new MemoryStore and
// returns, per record, the heap they hold (runtime.MemStats.HeapAlloc
// after a GC, before and after) and the bytes the store counts for them.
func heapPerRecord(tb testing.TB, n int, mk func(now time.Time) *stepup.Record) (measured, counted float64) {
	tb.Helper()
	ctx := context.Background()
	now := time.Now()
	s := stepup.NewMemoryStore(stepup.MemoryLimits(1<<30, 1<<40))
	heap := func() uint64 {
		runtime.GC()
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	before := heap()
	for range n {
		if err := s.Put(ctx, mk(now)); err != nil {
			tb.Fatal(err)
		}
	}
	after := heap()
	u := s.Usage()
	runtime.KeepAlive(s)
	if u.Records != n {
		tb.Fatalf("%d records held, want %d", u.Records, n)
	}
	return float64(after-before) / float64(n), float64(u.Bytes) / float64(n)
}

// BenchmarkMemoryStoreHeap reports the heap a typical record holds in a
// MemoryStore (heap-B/rec) next to what the store counts against its byte
// limit for it (counted-B/rec).
func BenchmarkMemoryStoreHeap(b *testing.B) {
	for _, name := range []string{"park", "api", "api, 8 shown", "used", "grant", "outcome"} {
		b.Run("rec="+name, func(b *testing.B) {
			var measured, counted float64
			for b.Loop() {
				measured, counted = heapPerRecord(b, 20_000, typicalRecords[name])
			}
			b.ReportMetric(measured, "heap-B/rec")
			b.ReportMetric(counted, "counted-B/rec")
			b.ReportMetric(100*(counted-measured)/measured, "error-%")
		})
	}
}

// storeImpls are the stores compared: the baseline first.
var storeImpls = []struct {
	name string
	make func(entries, bytes int) stepup.Store
}{
	{"legacy", func(entries, bytes int) stepup.Store { return stepup.NewLegacyMemoryStore(entries, bytes, time.Now) }},
	{"sharded", func(entries, bytes int) stepup.Store {
		return stepup.NewMemoryStore(stepup.MemoryLimits(entries, bytes))
	}},
}

// storeSizes are the numbers of records the store benchmarks run at; -short
// leaves out the million (the baseline takes a minute to fill it).
func storeSizes() []int {
	if testing.Short() {
		return []int{10_000, 100_000}
	}
	return []int{10_000, 100_000, 1_000_000}
}

// spentToken is a small record like the one a spent token leaves.
func spentToken(id string, now time.Time) *stepup.Record {
	return &stepup.Record{ID: id, Kind: stepup.KindUsed, Created: now, Expires: now.Add(11 * time.Minute)}
}

// filled returns a store of the kind holding n spent-token records, with
// room for as many more, and their ids.
func filled(b *testing.B, mk func(entries, bytes int) stepup.Store, n int) (stepup.Store, []string) {
	b.Helper()
	ctx := context.Background()
	s := mk(2*n+1024, 1<<40)
	ids := make([]string, n)
	now := time.Now()
	for i := range ids {
		ids[i] = fmt.Sprintf("t.%020d", i)
		if err := s.Put(ctx, spentToken(ids[i], now)); err != nil {
			b.Fatal(err)
		}
	}
	return s, ids
}

// BenchmarkMemoryStoreScale: Put, Get and Consume in a store that already
// holds n records, one goroutine.
func BenchmarkMemoryStoreScale(b *testing.B) {
	ctx := context.Background()
	for _, n := range storeSizes() {
		for _, impl := range storeImpls {
			var s stepup.Store
			var ids []string
			setup := func(b *testing.B) {
				if s == nil {
					s, ids = filled(b, impl.make, n)
				}
			}
			b.Run(fmt.Sprintf("op=Put+Delete/n=%d/impl=%s", n, impl.name), func(b *testing.B) {
				setup(b)
				now := time.Now()
				recs := make([]*stepup.Record, 1024)
				for i := range recs {
					recs[i] = spentToken(fmt.Sprintf("new.%020d", i), now)
				}
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					r := recs[i%len(recs)]
					i++
					if err := s.Put(ctx, r); err != nil {
						b.Fatal(err)
					}
					_ = s.Delete(ctx, r.ID)
				}
			})
			b.Run(fmt.Sprintf("op=Get/n=%d/impl=%s", n, impl.name), func(b *testing.B) {
				setup(b)
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					i += 7919
					if _, err := s.Get(ctx, ids[i%len(ids)]); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run(fmt.Sprintf("op=Put+Consume+Delete/n=%d/impl=%s", n, impl.name), func(b *testing.B) {
				setup(b)
				now := time.Now()
				r := spentToken("consumed.00000000000000", now)
				b.ReportAllocs()
				for b.Loop() {
					if err := s.Put(ctx, r); err != nil {
						b.Fatal(err)
					}
					if _, err := s.Consume(ctx, r.ID); err != nil {
						b.Fatal(err)
					}
					_ = s.Delete(ctx, r.ID)
				}
			})
			s, ids = nil, nil
		}
	}
}

// BenchmarkMemoryStoreFill: filling an empty store with n records, one
// after another; ns/op is the whole fill, p999-put-ns and max-put-ns the
// 99.9th percentile and the slowest Put of the last fill (the maximum
// includes whatever else the machine did: GC assists, other processes).
func BenchmarkMemoryStoreFill(b *testing.B) {
	ctx := context.Background()
	for _, n := range storeSizes() {
		recs := make([]*stepup.Record, n)
		now := time.Now()
		for i := range recs {
			recs[i] = spentToken(fmt.Sprintf("t.%020d", i), now)
		}
		took := make([]time.Duration, n)
		for _, impl := range storeImpls {
			b.Run(fmt.Sprintf("n=%d/impl=%s", n, impl.name), func(b *testing.B) {
				for b.Loop() {
					s := impl.make(n, 1<<40)
					for i, r := range recs {
						start := time.Now()
						if err := s.Put(ctx, r); err != nil {
							b.Fatal(err)
						}
						took[i] = time.Since(start)
					}
				}
				slices.Sort(took)
				b.ReportMetric(float64(took[n-1-n/1000]), "p999-put-ns")
				b.ReportMetric(float64(took[n-1]), "max-put-ns")
			})
		}
	}
}

// BenchmarkMemoryStoreGetAtCapacity: Gets from every goroutine while the
// store is full and one Put in 16 is refused, the load of a store that
// turns challenges away. p999-get-ns and max-get-ns are the 99.9th
// percentile and the longest a Get took (the maximum includes whatever
// else the machine did).
func BenchmarkMemoryStoreGetAtCapacity(b *testing.B) {
	ctx := context.Background()
	const n = 100_000
	for _, impl := range storeImpls {
		b.Run("impl="+impl.name, func(b *testing.B) {
			s := impl.make(n, 1<<40)
			ids := make([]string, n)
			now := time.Now()
			for i := range ids {
				ids[i] = fmt.Sprintf("t.%020d", i)
				if err := s.Put(ctx, spentToken(ids[i], now)); err != nil {
					b.Fatal(err)
				}
			}
			refused := spentToken("refused.000000000000000", now)
			var mu sync.Mutex
			var took []time.Duration
			var next atomic.Int64
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := int(next.Add(1)) * 7919
				mine := make([]time.Duration, 0, 1<<16)
				for pb.Next() {
					i++
					if i%16 == 0 {
						if err := s.Put(ctx, refused); !errors.Is(err, stepup.ErrStoreFull) {
							b.Errorf("put into a full store: %v", err)
							return
						}
						continue
					}
					start := time.Now()
					if _, err := s.Get(ctx, ids[i%n]); err != nil {
						b.Error(err)
						return
					}
					mine = append(mine, time.Since(start))
				}
				mu.Lock()
				took = append(took, mine...)
				mu.Unlock()
			})
			b.StopTimer()
			if len(took) > 0 {
				slices.Sort(took)
				b.ReportMetric(float64(took[len(took)-1-len(took)/1000]), "p999-get-ns")
				b.ReportMetric(float64(took[len(took)-1]), "max-get-ns")
			}
		})
	}
}
