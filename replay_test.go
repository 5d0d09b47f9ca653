package stepup_test

import (
	"context"
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

// liveKey is a context key of middleware in front of the guard.
type liveKey struct{}

// replaySeen is what a handler saw of a replayed request.
type replaySeen struct {
	body, again      string // read from Body, then from a reader GetBody gave
	getBodyNoBody    bool   // GetBody gave http.NoBody
	cookies          bool   // the live callback's cookies came along
	liveValue        any    // what the live callback's context holds under liveKey
	scribbledNothing bool   // appending to each header value left every other value as it was
}

// A replayed request is the handler's own, as one http.NewRequest makes:
// Body reads the parked bytes, GetBody hands out a fresh reader of them
// (http.NoBody for an empty body), and each header value is a slice of its
// own (appending to one writes into no other, though they share one
// allocation); its context is the live callback's, with its values.
func TestReplayedRequestIsTheHandlers(t *testing.T) {
	var mu sync.Mutex
	var seen []replaySeen
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := replaySeen{cookies: len(r.Cookies()) > 0, liveValue: r.Context().Value(liveKey{})}
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
	mount := app.Mount
	app.Mount = func(t testing.TB, g *stepup.Guard, h stepuptest.Handlers) http.Handler {
		root := mount(t, g, h)
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { // middleware in front of the guard
			root.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), liveKey{}, r.URL.Path)))
		})
	}
	env := stepuptest.NewEnv(t, app, stepuptest.Options{})
	b := env.NewBrowser()
	b.Login("alice")
	header := http.Header{"Accept-Language": {"fr", "en"}, "X-Csrf-Token": {"kept"}, "User-Agent": {"parked/1"}}

	resp := b.Do(http.MethodPost, "/transfer", stepuptest.Form, "amount=5000&to=bob", header)
	require.Equal(t, http.StatusNoContent, b.Get(b.Complete(b.Challenge(resp))).StatusCode)
	resp = b.Do(http.MethodDelete, "/items/7", "", "", header)
	require.Equal(t, http.StatusNoContent, b.Get(b.Complete(b.Challenge(resp))).StatusCode)

	require.Len(t, seen, 2)
	assert.Equal(t, replaySeen{body: "amount=5000&to=bob", again: "amount=5000&to=bob", cookies: true, liveValue: stepuptest.CallbackPath, scribbledNothing: true}, seen[0])
	assert.Equal(t, replaySeen{getBodyNoBody: true, cookies: true, liveValue: stepuptest.CallbackPath, scribbledNothing: true}, seen[1])
}
