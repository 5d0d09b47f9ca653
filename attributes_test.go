package stepup_test

import (
	"net/http"
	"testing"

	"github.com/stepupkit/stepup"
	"github.com/stepupkit/stepup/stepuptest"
)

// FuzzAttributesAgreeWithNetHTTP: whatever the method, Content-Type, query
// and body, either the guard refuses before tracking, or every net/http and
// encoding/json reader of the request gets the value the rules judged (or
// nothing). Its seeds, the splits the review found, run with every
// `go test`; CI fuzzes it for a bounded time on top of them.
func FuzzAttributesAgreeWithNetHTTP(f *testing.F) {
	for _, s := range stepuptest.DiffSeeds {
		f.Add(s.Method, s.CT, s.Query, s.Body)
	}
	d := stepuptest.NewDifferential()
	cfg := validConfig()
	cfg.Provider = d.Provider
	g, err := stepup.New(cfg)
	if err != nil {
		f.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/{id}", g.Require("transfer", stepup.WithAttributes(stepuptest.DiffAttributes...))(
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { d.Record(stepuptest.NetHTTPReaders(r)) })))
	d.Handler = mux
	f.Fuzz(func(t *testing.T, method uint8, contentType, query, body string) {
		d.Check(t, method, "/7", contentType, query, body)
	})
}

// FuzzRetryRunsWhatWasJudged is the differential's retry mode: request A
// is judged and challenged; B, resent with A's token, the same method,
// path, query and body, but its own Content-Type and header attribute,
// either runs on exactly what was judged for A (every net/http reader and
// the handler's Verification) or does not run. A itself, resent, runs.
func FuzzRetryRunsWhatWasJudged(f *testing.F) {
	for _, s := range stepuptest.RetrySeeds {
		f.Add(s.Method, s.CTA, s.CTB, s.Query, s.Body, s.FeeA, s.FeeB)
	}
	d := stepuptest.NewDifferential()
	g := d.Guard(f)
	mux := http.NewServeMux()
	mux.Handle("/{id}", g.Require("transfer", stepup.WithAttributes(stepuptest.RetryAttributes...))(
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { d.Record(stepuptest.NetHTTPReaders(r)) })))
	d.Handler = mux
	f.Fuzz(func(t *testing.T, method uint8, contentA, contentB, query, body, feeA, feeB string) {
		d.CheckRetry(t, method, "/7", contentA, contentB, query, body, feeA, feeB)
	})
}
