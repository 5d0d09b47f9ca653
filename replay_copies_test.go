package stepup_test

import (
	"io"
	"net/http"
	"slices"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup"
	"github.com/stepupkit/stepup/stepuptest"
)

// replaySeen is what a handler saw of a replayed request.
type replaySeen struct {
	body, again      string // read from Body, then from a reader GetBody gave
	getBodyNoBody    bool   // GetBody gave http.NoBody
	cookies          bool   // the live callback's cookies came along
	scribbledNothing bool   // appending to each header value left every other value as it was
}

// A replayed request is the handler's own, as one http.NewRequest makes:
// Body reads the parked bytes, GetBody hands out a fresh reader of them
// (http.NoBody for an empty body), and each header value is a slice of its
// own (appending to one writes into no other, though they share one
// allocation).
func TestReplayedRequestIsTheHandlers(t *testing.T) {
	var mu sync.Mutex
	var seen []replaySeen
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := replaySeen{cookies: len(r.Cookies()) > 0}
		b, err := io.ReadAll(r.Body)
		require.NoError(t, err)
		s.body = string(b)
		require.NotNil(t, r.GetBody, "GetBody as http.NewRequest sets it")
		rc, err := r.GetBody()
		require.NoError(t, err)
		s.getBodyNoBody = rc == http.NoBody
		b, err = io.ReadAll(rc)
		require.NoError(t, err)
		s.again = string(b)

		before := map[string][]string{}
		for k, vs := range r.Header {
			before[k] = slices.Clone(vs)
		}
		for k := range r.Header {
			r.Header[k] = append(r.Header[k], "scribbled")
		}
		s.scribbledNothing = true
		for k, vs := range before {
			s.scribbledNothing = s.scribbledNothing && slices.Equal(vs, r.Header[k][:len(vs)])
		}
		mu.Lock()
		seen = append(seen, s)
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})
	app := muxAdapter(func(mux *http.ServeMux, _ *stepup.Guard, _ stepuptest.Handlers) {
		mux.Handle("POST /transfer", handler)
		mux.Handle("DELETE /items/{id}", handler)
	})
	env := stepuptest.NewEnv(t, app, stepuptest.Options{})
	b := env.NewBrowser()
	b.Login("alice")
	header := http.Header{"Accept-Language": {"fr", "en"}, "X-Csrf-Token": {"kept"}, "User-Agent": {"parked/1"}}

	resp := b.Do(http.MethodPost, "/transfer", stepuptest.Form, "amount=5000&to=bob", header)
	require.Equal(t, http.StatusNoContent, b.Get(b.Complete(b.Challenge(resp))).StatusCode)
	resp = b.Do(http.MethodDelete, "/items/7", "", "", header)
	require.Equal(t, http.StatusNoContent, b.Get(b.Complete(b.Challenge(resp))).StatusCode)

	require.Len(t, seen, 2)
	assert.Equal(t, replaySeen{body: "amount=5000&to=bob", again: "amount=5000&to=bob", cookies: true, scribbledNothing: true}, seen[0])
	assert.Equal(t, replaySeen{getBodyNoBody: true, cookies: true, scribbledNothing: true}, seen[1])
}
