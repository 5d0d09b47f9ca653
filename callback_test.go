package stepup_test

// The callback's replay behind a TLS-terminating proxy and behind
// middleware that refuses it (SECURITY.md threats 4 and 11).

import (
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup"
	"github.com/stepupkit/stepup/stepuptest"
)

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
