package stepup_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup"
	"github.com/stepupkit/stepup/stepuptest"
)

// answerApp serves POST /transfer (action "transfer", judged by its form
// amount) with the answer its form asks for: a Location ("next") and a
// body of "size" bytes. It stands for an application whose replayed
// response the callback keeps for a refresh.
var answerApp = muxAdapter(func(mux *http.ServeMux, _ *stepup.Guard, h stepuptest.Handlers) {
	mux.Handle("POST /transfer", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		_ = r.ParseForm()
		r.Body = io.NopCloser(bytes.NewReader(body))
		h.Transfer.ServeHTTP(discard{}, r) // record the run in the ledger
		if next := r.PostFormValue("next"); next != "" {
			w.Header().Set("Location", next)
			w.WriteHeader(http.StatusSeeOther)
			return
		}
		n, _ := strconv.Atoi(r.PostFormValue("size"))
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte(strings.Repeat("x", n)))
	}))
})

type discard struct{}

func (discard) Header() http.Header         { return http.Header{} }
func (discard) Write(b []byte) (int, error) { return len(b), nil }
func (discard) WriteHeader(int)             {}

func answerPolicies() []stepup.Policy {
	return []stepup.Policy{{Method: http.MethodPost, Route: "/transfer", Action: "transfer",
		Attributes: []stepup.Attribute{{Name: "amount", From: stepup.FromForm, Key: "amount", Type: "number"}}}}
}

// verifiedTransfer parks a large transfer with the given extra form
// fields, completes the challenge and visits the callback once; it
// returns the callback URL for a refresh.
func verifiedTransfer(t *testing.T, env *stepuptest.Env, b *stepuptest.Browser, extra url.Values) (string, *stepuptest.Response) {
	t.Helper()
	form := url.Values{"amount": {"5000"}}
	for k, vs := range extra {
		form[k] = vs
	}
	cb := b.Complete(b.Challenge(b.Do(http.MethodPost, "/transfer", stepuptest.Form, form.Encode(), nil)))
	resp := b.Get(cb)
	require.Len(t, env.Ledger.Runs("transfer"), 1)
	return cb, resp
}

// A refresh of the callback shows the kept answer of the replay, but
// writes a kept Location only when it stays on this origin: a replayed
// handler's redirect must not turn the callback URL into an open redirect
// or a header-injection point.
func TestRefreshKeepsOnlySameOriginLocations(t *testing.T) {
	tests := []struct {
		next string
		keep bool
	}{
		{"/done", true},
		{"/done?id=7&x=%2F", true},
		{"//evil.example/x", false},
		{"/\\evil.example", false},
		{"https://evil.example/", false},
		{"done", false},
		{"/a b", false},
		{"/caf\u00e9", false},
		{"/ok?a b", false},
		{"/ok?a=1#frag", false},
		{"/ok?caf\u00e9", false},
	}
	for _, tc := range tests {
		t.Run(tc.next, func(t *testing.T) {
			env := newPolicyEnv(t, answerApp, answerPolicies())
			b := env.NewBrowser()
			b.Login("alice")
			cb, first := verifiedTransfer(t, env, b, url.Values{"next": {tc.next}})
			require.Equal(t, http.StatusSeeOther, first.StatusCode, "the live answer is the application's own")

			again := b.Get(cb)
			assert.Equal(t, http.StatusSeeOther, again.StatusCode)
			if tc.keep {
				assert.Equal(t, tc.next, again.Header.Get("Location"))
			} else {
				assert.Empty(t, again.Header.Get("Location"), "an off-origin or unsafe Location is never written by the guard")
			}
			assert.Len(t, env.Ledger.Runs("transfer"), 1, "a refresh runs nothing")
		})
	}
}

// The kept answer is bounded by MaxBodyBytes: up to it, a refresh shows
// the answer again; beyond it, a refresh says the request already ran.
func TestRefreshKeepsAnswersUpToMaxBodyBytes(t *testing.T) {
	const limit = 1000
	for _, size := range []int{limit, limit + 1} {
		t.Run(strconv.Itoa(size), func(t *testing.T) {
			env := newPolicyEnv(t, answerApp, answerPolicies(), func(c *stepup.Config) { c.MaxBodyBytes = limit })
			b := env.NewBrowser()
			b.Login("alice")
			cb, first := verifiedTransfer(t, env, b, url.Values{"size": {strconv.Itoa(size)}})
			require.Equal(t, http.StatusOK, first.StatusCode)
			require.Len(t, first.Body, size, "the live answer is whole")

			again := b.Get(cb)
			if size <= limit {
				assert.Equal(t, http.StatusOK, again.StatusCode)
				assert.Equal(t, first.Body, again.Body)
			} else {
				assert.Equal(t, http.StatusConflict, again.StatusCode)
				assert.NotContains(t, again.Body, strings.Repeat("x", 100))
			}
			assert.Len(t, env.Ledger.Runs("transfer"), 1)
		})
	}
}

// dropOutcomes is a Store that loses kept answers, as a store under
// pressure may.
type dropOutcomes struct{ stepup.Store }

func (s dropOutcomes) Put(ctx context.Context, rec *stepup.Record) error {
	if rec.Kind == stepup.KindOutcome {
		return errors.New("lost")
	}
	return s.Store.Put(ctx, rec)
}

// Single use does not depend on the kept answer: without one, a refresh is
// a plain 409, never a second run or a crash.
func TestRefreshWithoutAKeptAnswerRunsNothing(t *testing.T) {
	env := stepuptest.NewEnv(t, answerApp, stepuptest.Options{
		Config: func(c *stepup.Config) { c.Policies = answerPolicies() },
		Store: func(now func() time.Time) stepup.Store {
			return dropOutcomes{stepup.NewMemoryStore(stepup.MemoryClock(now))}
		},
	})
	b := env.NewBrowser()
	b.Login("alice")
	cb, first := verifiedTransfer(t, env, b, url.Values{"size": {"10"}})
	require.Equal(t, http.StatusOK, first.StatusCode)
	again := b.Get(cb)
	assert.Equal(t, http.StatusConflict, again.StatusCode)
	assert.Len(t, env.Ledger.Runs("transfer"), 1)
}

// csrfApp puts a form-reading CSRF check in front of the guard, with or
// without Guard.PreserveBody outermost.
func csrfApp(preserve bool) stepuptest.Adapter {
	return stepuptest.Adapter{
		Name:  "servemux+csrf",
		Param: func(name string) string { return "{" + name + "}" },
		Mount: func(t testing.TB, g *stepup.Guard, h stepuptest.Handlers) http.Handler {
			mux := http.NewServeMux()
			mux.Handle("POST /login", h.Login)
			mux.Handle("POST /transfer", h.Transfer)
			csrf := func(next http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if r.Method == http.MethodPost && r.URL.Path != "/login" && r.FormValue("_csrf") != "good" {
						http.Error(w, "csrf", http.StatusForbidden)
						return
					}
					next.ServeHTTP(w, r)
				})
			}
			var root http.Handler = csrf(g.Middleware(mux))
			if preserve {
				root = g.PreserveBody(root)
			}
			mux.Handle("GET "+stepuptest.CallbackPath, g.Callback(root))
			return root
		},
	}
}

// Middleware that reads the body before the guard (a CSRF check reading a
// form field) needs Guard.PreserveBody outermost: with it, the exact bytes
// are parked and replayed through the CSRF check again; without it, the
// guard refuses rather than park a body it no longer has.
func TestPreserveBodyKeepsExactBytesBehindBodyReaders(t *testing.T) {
	const body = "amount=5000&to=bob&_csrf=good&note=caf%C3%A9"
	t.Run("with PreserveBody", func(t *testing.T) {
		env := newPolicyEnv(t, csrfApp(true), answerPolicies())
		b := env.NewBrowser()
		b.Login("alice")
		resp := b.Get(b.Complete(b.Challenge(b.Do(http.MethodPost, "/transfer", stepuptest.Form, body, nil))))
		require.Equal(t, http.StatusOK, resp.StatusCode, resp.Body)
		runs := env.Ledger.Runs("transfer")
		require.Len(t, runs, 1)
		assert.Equal(t, body, string(runs[0].Body), "byte-identical")
	})
	t.Run("without PreserveBody", func(t *testing.T) {
		env := newPolicyEnv(t, csrfApp(false), answerPolicies())
		b := env.NewBrowser()
		b.Login("alice")
		resp := b.Do(http.MethodPost, "/transfer", stepuptest.Form, body, nil)
		assert.Equal(t, http.StatusInternalServerError, resp.StatusCode)
		assert.Empty(t, env.Emulator.Tracked())
		assert.Empty(t, env.Ledger.Runs("transfer"))
		var refused error
		for _, ev := range env.Events.All() {
			if ev.Type == stepup.EventRefuse {
				refused = ev.Err
			}
		}
		assert.ErrorIs(t, refused, stepup.ErrBodyConsumed)
	})
	t.Run("PreserveBody past the limit", func(t *testing.T) {
		env := newPolicyEnv(t, csrfApp(true), answerPolicies(), func(c *stepup.Config) { c.MaxBodyBytes = 64 })
		b := env.NewBrowser()
		b.Login("alice")
		resp := b.Do(http.MethodPost, "/transfer", stepuptest.Form, body+"&pad="+strings.Repeat("p", 64), nil)
		assert.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)
		assert.Empty(t, env.Emulator.Tracked())
	})
}
