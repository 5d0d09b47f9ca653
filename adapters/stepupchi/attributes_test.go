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
	var policies []stepup.Policy
	for _, m := range stepuptest.DiffMethods {
		policies = append(policies, stepup.Policy{Method: m, Route: "/t/{id}", Action: "transfer", Attributes: stepuptest.DiffAttributes})
	}
	g := d.Guard(f, policies...)
	record := func(w http.ResponseWriter, r *http.Request) { d.Record(chiReaders(r)) }
	r := chi.NewRouter()
	r.With(stepupchi.Require(g, "transfer", stepup.WithAttributes(stepuptest.DiffAttributes...))).HandleFunc("/r/{id}", record)
	sub := chi.NewRouter()
	sub.With(stepupchi.Middleware(g)).HandleFunc("/{id}", record)
	r.Mount("/t", sub)
	d.Handler = r
	f.Fuzz(func(t *testing.T, method uint8, contentType, query, body string) {
		target := "/t/7"
		if method%2 == 1 {
			target = "/r/7"
		}
		d.Check(t, method, target, contentType, query, body)
	})
}
