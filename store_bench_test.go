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
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stepupkit/stepup"
)

// typicalRecords make the records a guard writes, with strings allocated
// per record as a parsed request's are: a parked POST with a 1 KiB body
// and 10 headers, an API challenge, and what follows a passed challenge.
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
	for _, name := range []string{"park", "api", "used", "grant", "outcome"} {
		b.Run(name, func(b *testing.B) {
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
