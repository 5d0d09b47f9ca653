package stepupchi_test

import (
	"net/http"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/stepupkit/stepup"
	"github.com/stepupkit/stepup/adapters/stepupchi"
	"github.com/stepupkit/stepup/stepuptest"
)

// chiReaders reads every key of stepuptest.DiffAttributes the ways a chi
// handler does: chi.URLParam on top of the net/http readers.
func chiReaders(r *http.Request) []stepuptest.Observation {
	var seen []stepuptest.Observation
	for _, a := range stepuptest.DiffAttributes {
		if v := chi.URLParam(r, a.Key); v != "" {
			seen = append(seen, stepuptest.Observation{Reader: "chi.URLParam", Key: a.Key, Value: v})
		}
	}
	return append(seen, stepuptest.NetHTTPReaders(r)...)
}

// FuzzAttributesAgreeWithChi: whatever the method, Content-Type, query and
// body, either the guard refuses before tracking, or chi's URLParam and
// the net/http readers get the value the rules judged, or nothing. The
// request goes through the policy table under a mounted sub-router (even
// inputs) or through Require (odd ones). Seeds run with every `go test`;
// CI fuzzes it for a bounded time.
func FuzzAttributesAgreeWithChi(f *testing.F) {
	for _, s := range stepuptest.DiffSeeds {
		f.Add(s.Method, s.CT, s.Query, s.Body)
	}
	d := stepuptest.NewDifferential()
	d.Handler = chiApp(f, d, stepuptest.DiffAttributes)
	f.Fuzz(func(t *testing.T, method uint8, contentType, query, body string) {
		d.Check(t, method, chiTarget(method), contentType, query, body)
	})
}

// FuzzRetryRunsWhatWasJudgedChi is the retry mode of the chi differential
// (stepuptest.Differential.CheckRetry): a retry carrying the token of a
// judged request runs, under chi's readers, on what was judged, or not at
// all.
func FuzzRetryRunsWhatWasJudgedChi(f *testing.F) {
	for _, s := range stepuptest.RetrySeeds {
		f.Add(s.Method, s.CTA, s.CTB, s.Query, s.Body, s.FeeA, s.FeeB)
	}
	d := stepuptest.NewDifferential()
	d.Handler = chiApp(f, d, stepuptest.RetryAttributes)
	f.Fuzz(func(t *testing.T, method uint8, contentA, contentB, query, body, feeA, feeB string) {
		d.CheckRetry(t, method, chiTarget(method), contentA, contentB, query, body, feeA, feeB)
	})
}

// chiApp is the differential's chi application, judging attrs: the policy
// table under a sub-router mounted at /t, Require under /r.
func chiApp(tb testing.TB, d *stepuptest.Differential, attrs []stepup.Attribute) http.Handler {
	var policies []stepup.Policy
	for _, m := range stepuptest.DiffMethods {
		policies = append(policies, stepup.Policy{Method: m, Route: "/t/{id}", Action: "transfer", Attributes: attrs})
	}
	g := d.Guard(tb, policies...)
	record := func(w http.ResponseWriter, r *http.Request) { d.Record(chiReaders(r)) }
	r := chi.NewRouter()
	r.With(stepupchi.Require(g, "transfer", stepup.WithAttributes(attrs...))).HandleFunc("/r/{id}", record)
	sub := chi.NewRouter()
	sub.With(stepupchi.Middleware(g)).HandleFunc("/{id}", record)
	r.Mount("/t", sub)
	return r
}

// chiTarget sends even method numbers through the table, odd ones
// through Require.
func chiTarget(method uint8) string {
	if method%2 == 1 {
		return "/r/7"
	}
	return "/t/7"
}
