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
	"sync/atomic"
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
		if r.PostFormValue("late") != "" {
			w.WriteHeader(http.StatusTeapot) // superfluous: the answer is already a 200
		}
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
				assert.Equal(t, "text/plain", again.Header.Get("Content-Type"), "the kept answer keeps its type")
				assert.Equal(t, "nosniff", again.Header.Get("X-Content-Type-Options"))
			} else {
				assert.Equal(t, http.StatusConflict, again.StatusCode)
				assert.NotContains(t, again.Body, strings.Repeat("x", 100))
			}
			assert.Len(t, env.Ledger.Runs("transfer"), 1)
		})
	}
}

// The kept status is the one the browser got: a WriteHeader after the
// body was written changes nothing on the wire, and nothing on a refresh.
func TestRefreshKeepsTheStatusTheBrowserGot(t *testing.T) {
	env := newPolicyEnv(t, answerApp, answerPolicies())
	b := env.NewBrowser()
	b.Login("alice")
	cb, first := verifiedTransfer(t, env, b, url.Values{"size": {"3"}, "late": {"1"}})
	require.Equal(t, http.StatusOK, first.StatusCode)
	again := b.Get(cb)
	assert.Equal(t, http.StatusOK, again.StatusCode)
	assert.Equal(t, first.Body, again.Body)
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
	csrf := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPost && r.URL.Path != "/login" && r.FormValue("_csrf") != "good" {
				http.Error(w, "csrf", http.StatusForbidden)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
	front := func(g *stepup.Guard) func(http.Handler) http.Handler {
		if !preserve {
			return csrf
		}
		return func(h http.Handler) http.Handler { return g.PreserveBody(csrf(h)) }
	}
	return stepuptest.Adapter{
		Name:  "servemux+csrf",
		Param: func(name string) string { return "{" + name + "}" },
		Mount: func(t testing.TB, g *stepup.Guard, h stepuptest.Handlers) http.Handler {
			return fronted(front(g)).Mount(t, g, h)
		},
	}
}

// Middleware that reads the body before the guard (a CSRF check reading a
// form field) needs Guard.PreserveBody outermost: with it, the exact bytes
// are parked and replayed through the CSRF check again; without it, the
// guard refuses rather than park a body it no longer has.
func TestPreserveBodyKeepsExactBytesBehindBodyReaders(t *testing.T) {
	const body = "amount=5000&to=bob&_csrf=good&note=caf%C3%A9"
	for name, limit := range map[string]int64{"with PreserveBody": 64 << 10, "PreserveBody at the limit": int64(len(body))} {
		t.Run(name, func(t *testing.T) {
			env := newPolicyEnv(t, csrfApp(true), answerPolicies(), func(c *stepup.Config) { c.MaxBodyBytes = limit })
			b := env.NewBrowser()
			b.Login("alice")
			resp := b.Get(b.Complete(b.Challenge(b.Do(http.MethodPost, "/transfer", stepuptest.Form, body, nil))))
			require.Equal(t, http.StatusOK, resp.StatusCode, resp.Body)
			runs := env.Ledger.Runs("transfer")
			require.Len(t, runs, 1)
			assert.Equal(t, body, string(runs[0].Body), "byte-identical, a body of exactly MaxBodyBytes included")
		})
	}
	t.Run("without PreserveBody", func(t *testing.T) {
		env := newPolicyEnv(t, csrfApp(false), answerPolicies())
		b := env.NewBrowser()
		b.Login("alice")
		resp := b.Do(http.MethodPost, "/transfer", stepuptest.Form, body, nil)
		assert.Equal(t, http.StatusInternalServerError, resp.StatusCode)
		assert.Empty(t, env.Emulator.Tracked())
		assert.Empty(t, env.Ledger.Runs("transfer"))
		assert.ErrorIs(t, env.Events.LastRefusal(), stepup.ErrBodyConsumed)
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

// The callback's replay behind a TLS-terminating proxy and behind
// middleware that refuses it (SECURITY.md threats 4 and 11).

// fronted mounts the conformance application on a ServeMux with front
// between the server and the guard, inside the chain the callback replays
// through, as an application's own middleware is.
func fronted(front func(http.Handler) http.Handler) stepuptest.Adapter {
	return stepuptest.Adapter{
		Name:  "servemux+front",
		Param: guardedApp.Param,
		Mount: func(t testing.TB, g *stepup.Guard, h stepuptest.Handlers) http.Handler {
			mux := http.NewServeMux()
			mux.Handle("POST /login", h.Login)
			mux.Handle("POST /logout", h.Logout)
			guardedRoutes(mux, h)
			root := front(g.Middleware(mux))
			mux.Handle("GET "+stepuptest.CallbackPath, g.Callback(root))
			return root
		},
	}
}

// httpsOnly redirects requests that did not arrive over https, trusting
// the proxy's X-Forwarded-Proto, as echo's middleware.HTTPSRedirect does.
func httpsOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil && r.Header.Get("X-Forwarded-Proto") != "https" {
			http.Redirect(w, r, "https://"+r.Host+r.URL.RequestURI(), http.StatusMovedPermanently)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func TestReplayBehindATLSProxy(t *testing.T) {
	stepuptest.RunBehindTLSProxy(t, fronted(httpsOnly))
}

// doubleSubmit is a CSRF check: an unsafe request's X-CSRF-Token header
// must equal its csrf cookie.
func doubleSubmit(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path != "/login" {
			c, err := r.Cookie("csrf")
			if err != nil || c.Value != r.Header.Get("X-CSRF-Token") {
				http.Error(w, "CSRF check failed", http.StatusForbidden)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

func TestReplayRefusedBeforeItsRouteSpendsNothing(t *testing.T) {
	env := stepuptest.NewEnv(t, fronted(doubleSubmit), stepuptest.Options{})
	b := env.NewBrowser()
	b.Login("alice")
	app := mustParse(env.Server.URL)
	b.Jar.SetCookies(app, []*http.Cookie{{Name: "csrf", Value: "k1", Path: "/"}})
	cb := b.Complete(b.Challenge(b.Do(http.MethodPost, "/transfer", stepuptest.Form, "amount=5000&to=bob",
		http.Header{"X-Csrf-Token": {"k1"}})))

	// The CSRF cookie changed meanwhile (another tab rotated it): the CSRF
	// check refuses the replay before it reaches the guard at /transfer.
	b.Jar.SetCookies(app, []*http.Cookie{{Name: "csrf", Value: "k2", Path: "/"}})
	resp := b.Get(cb)
	assert.Equal(t, http.StatusInternalServerError, resp.StatusCode, resp.Body)
	assert.NotContains(t, resp.Body, "CSRF check failed", "the refusal in front is held back")
	assert.Contains(t, resp.Body, "reload this page to try again")
	assert.Equal(t, "no-store", resp.Header.Get("Cache-Control"))
	assert.Equal(t, "no-referrer", resp.Header.Get("Referrer-Policy"))
	assert.Empty(t, env.Ledger.Runs("transfer"))
	var notReached []stepup.Event
	for _, ev := range env.Events.All() {
		if ev.Type == stepup.EventRefuse && ev.Reason == "replay_not_reached" {
			notReached = append(notReached, ev)
		}
	}
	require.Len(t, notReached, 1, "the guard reports a replay that did not reach its route")
	assert.ErrorIs(t, notReached[0].Err, stepup.ErrReplayNotReached)
	assert.ErrorContains(t, notReached[0].Err, "answered 403", "the log names what the application answered first")
	assert.Equal(t, "transfer", notReached[0].Action)

	// Nothing was spent: once the cookie is back, the same callback runs
	// the transfer, once.
	b.Jar.SetCookies(app, []*http.Cookie{{Name: "csrf", Value: "k1", Path: "/"}})
	resp = b.Get(cb)
	require.Equal(t, http.StatusOK, resp.StatusCode, resp.Body)
	runs := env.Ledger.Runs("transfer")
	require.Len(t, runs, 1)
	assert.Equal(t, "amount=5000&to=bob", string(runs[0].Body))
	again := b.Get(cb)
	assert.Equal(t, resp.Body, again.Body, "a refresh shows the kept outcome")
	assert.Len(t, env.Ledger.Runs("transfer"), 1)
}

func TestReplayRedirectedBeforeItsRouteSendsTheBrowserNowhere(t *testing.T) {
	var redirect atomic.Bool
	env := stepuptest.NewEnv(t, fronted(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if redirect.Load() && r.Method == http.MethodPost {
				http.Redirect(w, r, "/elsewhere", http.StatusFound)
				return
			}
			next.ServeHTTP(w, r)
		})
	}), stepuptest.Options{})
	b := env.NewBrowser()
	b.Login("alice")
	cb := b.Complete(b.Challenge(b.Do(http.MethodPost, "/transfer", stepuptest.Form, "amount=5000", nil)))
	redirect.Store(true)
	resp := b.Get(cb)
	assert.Equal(t, http.StatusInternalServerError, resp.StatusCode)
	assert.Empty(t, resp.Header.Get("Location"), "no Location from a held-back answer")
	assert.Empty(t, env.Ledger.Runs("transfer"))
	redirect.Store(false)
	require.Equal(t, http.StatusOK, b.Get(cb).StatusCode)
	assert.Len(t, env.Ledger.Runs("transfer"), 1)
}
