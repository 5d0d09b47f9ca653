package stepupchi_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup"
	"github.com/stepupkit/stepup/adapters/stepupchi"
	"github.com/stepupkit/stepup/stepuptest"
)

// routes registers the conformance application's routes on r.
func routes(r chi.Router, h stepuptest.Handlers) {
	r.Method(http.MethodPost, "/login", h.Login)
	r.Method(http.MethodPost, "/logout", h.Logout)
	r.Method(http.MethodPost, "/signin", h.SignIn)
	r.Method(http.MethodPost, "/transfer", h.Transfer)
	r.Method(http.MethodPost, "/api/transfer", h.APITrans)
	r.Method(http.MethodPut, "/profile", h.Profile)
	r.Method(http.MethodDelete, "/items/{id}", h.DeleteItem)
	r.Method(http.MethodGet, "/report", h.Report)
	r.Method(http.MethodGet, "/admin", h.Admin)
	r.Method(http.MethodPost, "/block", h.Block)
	r.Method(http.MethodPost, "/review", h.Review)
	r.Handle("/open", h.Open)
}

// app builds the conformance application: front runs on the root router
// (r.Use), the guard's table inline in a group with the routes, and the
// callback replaying through the root.
func app(t testing.TB, g *stepup.Guard, h stepuptest.Handlers, front ...func(http.Handler) http.Handler) *chi.Mux {
	r := chi.NewRouter()
	r.Use(front...)
	r.Group(func(r chi.Router) {
		r.Use(stepupchi.Middleware(g))
		routes(r, h)
	})
	r.Get(stepuptest.CallbackPath, stepupchi.Callback(g, r).ServeHTTP)
	require.NoError(t, stepupchi.CheckRoutes(g, r))
	return r
}

var chiAdapter = stepuptest.Adapter{
	Name:  "chi",
	Param: func(name string) string { return "{" + name + "}" },
	Mount: func(t testing.TB, g *stepup.Guard, h stepuptest.Handlers) http.Handler {
		return app(t, g, h, stepupchi.PreserveBody(g))
	},
}

func TestConformanceChi(t *testing.T) {
	stepuptest.Run(t, chiAdapter)
}

func TestSignInChi(t *testing.T) {
	stepuptest.RunSignIn(t, chiAdapter)
}

// mountedAdapter serves the protected routes from a sub-router mounted at
// "/", with the table inline in it: the patterns chi reports join the
// mount point and the sub-router's route.
var mountedAdapter = stepuptest.Adapter{
	Name:  "chi mounted",
	Param: chiAdapter.Param,
	Mount: func(t testing.TB, g *stepup.Guard, h stepuptest.Handlers) http.Handler {
		r := chi.NewRouter()
		r.Use(stepupchi.PreserveBody(g))
		r.Get(stepuptest.CallbackPath, stepupchi.Callback(g, r).ServeHTTP)
		sub := chi.NewRouter()
		sub.With(stepupchi.Middleware(g)).Group(func(r chi.Router) { routes(r, h) })
		r.Mount("/", sub)
		require.NoError(t, stepupchi.CheckRoutes(g, r))
		return r
	},
}

func TestConformanceChiMounted(t *testing.T) {
	stepuptest.Run(t, mountedAdapter)
}

// httpsRedirect sends every request that did not come over https (as the
// proxy says) to https, as a proxy-aware redirect middleware does.
func httpsRedirect(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil && r.Header.Get("X-Forwarded-Proto") != "https" {
			http.Redirect(w, r, "https://"+r.Host+r.URL.RequestURI(), http.StatusMovedPermanently)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func TestChiReplayBehindATLSProxy(t *testing.T) {
	a := chiAdapter
	a.Mount = func(t testing.TB, g *stepup.Guard, h stepuptest.Handlers) http.Handler {
		return app(t, g, h, httpsRedirect, stepupchi.PreserveBody(g))
	}
	stepuptest.RunBehindTLSProxy(t, a)
}

// csrfForm stands for a CSRF check that reads a form field before the
// guard: it refuses a POST without _csrf=ok.
func csrfForm(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path != "/login" && r.PostFormValue("_csrf") != "ok" {
			http.Error(w, "csrf", http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func TestChiBodyReadInFront(t *testing.T) {
	t.Run("with PreserveBody the exact bytes are parked and replayed", func(t *testing.T) {
		a := chiAdapter
		a.Mount = func(t testing.TB, g *stepup.Guard, h stepuptest.Handlers) http.Handler {
			return app(t, g, h, stepupchi.PreserveBody(g), csrfForm)
		}
		env := stepuptest.NewEnv(t, a, stepuptest.Options{})
		b := env.NewBrowser()
		b.Login("alice")
		body := "_csrf=ok&amount=5000&to=bob"
		resp := b.Get(b.Complete(b.Challenge(b.Do(http.MethodPost, "/transfer", stepuptest.Form, body, nil))))
		require.Equal(t, http.StatusOK, resp.StatusCode, resp.Body)
		runs := env.Ledger.Runs("transfer")
		require.Len(t, runs, 1)
		assert.Equal(t, body, string(runs[0].Body))
		assert.EqualValues(t, 5000, env.Emulator.Tracked()[0].Custom["amount"], "the amount was judged")
	})
	t.Run("without it the guard refuses rather than park an empty body", func(t *testing.T) {
		a := chiAdapter
		a.Mount = func(t testing.TB, g *stepup.Guard, h stepuptest.Handlers) http.Handler {
			return app(t, g, h, csrfForm)
		}
		env := stepuptest.NewEnv(t, a, stepuptest.Options{})
		b := env.NewBrowser()
		b.Login("alice")
		resp := b.Do(http.MethodPost, "/transfer", stepuptest.Form, "_csrf=ok&amount=5000", nil)
		assert.Equal(t, http.StatusInternalServerError, resp.StatusCode)
		assert.ErrorIs(t, env.Events.LastRefusal(), stepup.ErrBodyConsumed)
		assert.Empty(t, env.Emulator.Tracked())
		assert.Empty(t, env.Ledger.Runs("transfer"))
	})
}

func TestChiRequireAndPathParameters(t *testing.T) {
	a := chiAdapter
	a.Mount = func(t testing.TB, g *stepup.Guard, h stepuptest.Handlers) http.Handler {
		r := app(t, g, h, stepupchi.PreserveBody(g))
		r.With(stepupchi.Require(g, "wire")).Post("/wire", h.Open.ServeHTTP)
		r.Route("/accounts/{account}", func(r chi.Router) {
			r.With(stepupchi.Require(g, "closeAccount", stepup.WithAttributes(
				stepup.Attribute{Name: "account", From: stepup.FromPath, Key: "account"},
				stepup.Attribute{Name: "entry", From: stepup.FromPath, Key: "entry"},
			))).Delete("/entries/{entry:[0-9]+}", h.DeleteItem.ServeHTTP)
		})
		return r
	}
	env := stepuptest.NewEnv(t, a, stepuptest.Options{})
	b := env.NewBrowser()
	b.Login("alice")
	assert.Equal(t, http.StatusForbidden, b.Do(http.MethodPost, "/wire", stepuptest.Form, "a=1", nil).StatusCode,
		"Require applies the wire action (REVIEW_REQUIRED in the suite's rules)")
	assert.Empty(t, env.Ledger.Runs("open"))

	b.Challenge(b.Do(http.MethodDelete, "/accounts/acc%2F1/entries/42", "", "", nil))
	tracked := env.Emulator.Tracked()
	require.NotEmpty(t, tracked)
	custom := tracked[len(tracked)-1].Custom
	assert.Equal(t, "acc%2F1", custom["account"], "the parameter as chi.URLParam reads it, from the sub-router's parent")
	assert.Equal(t, "42", custom["entry"], "a regexp parameter")

	// The table's FromPath attribute, through the group.
	b.Challenge(b.Do(http.MethodDelete, "/items/7", "", "", nil))
	tracked = env.Emulator.Tracked()
	assert.Equal(t, "7", tracked[len(tracked)-1].Custom["item"])

	assert.Panics(t, func() { stepupchi.Require(env.Guard, "bad action!") })
}

// methodOverride turns a POST into the method of X-HTTP-Method-Override
// before chi routes it, the way chi's router reads it: RouteMethod.
func methodOverride(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if m := r.Header.Get("X-Http-Method-Override"); m != "" && r.Method == http.MethodPost {
			chi.RouteContext(r.Context()).RouteMethod = m
		}
		next.ServeHTTP(w, r)
	})
}

func TestChiJudgesTheDispatchedMethod(t *testing.T) {
	a := chiAdapter
	a.Mount = func(t testing.TB, g *stepup.Guard, h stepuptest.Handlers) http.Handler {
		r := app(t, g, h, stepupchi.PreserveBody(g), methodOverride)
		r.Post("/items/{id}", h.Open.ServeHTTP)
		return r
	}
	env := stepuptest.NewEnv(t, a, stepuptest.Options{})
	b := env.NewBrowser()
	b.Login("alice")
	// chi dispatches DELETE, though r.Method says POST: the DELETE policy
	// decides, and the parked method is the dispatched one.
	challenge := b.Challenge(b.Do(http.MethodPost, "/items/7", stepuptest.Form, "", http.Header{"X-Http-Method-Override": {"DELETE"}}))
	resp := b.Get(b.Complete(challenge))
	require.Equal(t, http.StatusOK, resp.StatusCode, resp.Body)
	runs := env.Ledger.Runs("deleteItem")
	require.Len(t, runs, 1)
	assert.Equal(t, http.MethodDelete, runs[0].Method)
	assert.Empty(t, env.Ledger.Runs("open"))
	tracked := env.Emulator.Tracked()
	require.NotEmpty(t, tracked)
	assert.Equal(t, "7", tracked[0].Custom["item"])
}

func TestChiMethodChangedAfterRoutingDoesNotBypass(t *testing.T) {
	// An inline middleware before the guard rewrites r.Method after chi
	// routed POST /transfer: the guard still judges POST.
	a := chiAdapter
	a.Mount = func(t testing.TB, g *stepup.Guard, h stepuptest.Handlers) http.Handler {
		r := chi.NewRouter()
		r.Use(stepupchi.PreserveBody(g))
		r.Group(func(r chi.Router) {
			r.Use(func(next http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if m := r.Header.Get("X-Rewrite-Method"); m != "" {
						r.Method = m
					}
					next.ServeHTTP(w, r)
				})
			})
			r.Use(stepupchi.Middleware(g))
			routes(r, h)
		})
		r.Get(stepuptest.CallbackPath, stepupchi.Callback(g, r).ServeHTTP)
		return r
	}
	env := stepuptest.NewEnv(t, a, stepuptest.Options{})
	b := env.NewBrowser()
	b.Login("alice")
	for _, m := range []string{http.MethodPut, http.MethodDelete, http.MethodGet, "PROPFIND"} {
		b.Challenge(b.Do(http.MethodPost, "/transfer", stepuptest.Form, "amount=5000&to=mallory", http.Header{"X-Rewrite-Method": {m}}))
	}
	assert.Empty(t, env.Ledger.Runs("transfer"), "the transfer ran without a step-up")
}

func TestChiHeadServedByAGetRoute(t *testing.T) {
	a := chiAdapter
	a.Mount = func(t testing.TB, g *stepup.Guard, h stepuptest.Handlers) http.Handler {
		return app(t, g, h, stepupchi.PreserveBody(g), middleware.GetHead)
	}
	env := stepuptest.NewEnv(t, a, stepuptest.Options{})
	b := env.NewBrowser()
	b.Login("alice")
	b.Challenge(b.Do(http.MethodHead, "/admin", "", "", nil))
	assert.Empty(t, env.Ledger.Runs("admin"), "HEAD served by GET /admin is the GET policy's")
}

func TestChiPathVariantsNeverBypass(t *testing.T) {
	a := chiAdapter
	a.Mount = func(t testing.TB, g *stepup.Guard, h stepuptest.Handlers) http.Handler {
		return app(t, g, h, stepupchi.PreserveBody(g), middleware.CleanPath, middleware.StripSlashes)
	}
	for _, adapter := range []stepuptest.Adapter{chiAdapter, mountedAdapter, a} {
		t.Run(adapter.Name, func(t *testing.T) {
			env := stepuptest.NewEnv(t, adapter, stepuptest.Options{})
			b := env.NewBrowser()
			b.Login("alice")
			for _, p := range []string{"/transfer/", "//transfer", "/./transfer", "/x/../transfer", "/%74ransfer",
				"/TRANSFER", "/transfer;x", "/transfer%2F", "/transfer/.", "/transfer%00"} {
				req, err := http.NewRequest(http.MethodPost, env.Server.URL, strings.NewReader("amount=5000"))
				require.NoError(t, err)
				req.URL = &url.URL{Scheme: "http", Host: strings.TrimPrefix(env.Server.URL, "http://"), Opaque: p}
				req.Header.Set("Content-Type", stepuptest.Form)
				req.Header.Set("Accept", "text/html")
				resp := b.Send(req)
				if resp.StatusCode == http.StatusSeeOther {
					assert.True(t, strings.HasPrefix(resp.Header.Get("Location"), env.Emulator.URL), p)
				}
			}
			assert.Empty(t, env.Ledger.Runs("transfer"), "no variant reached the handler unchallenged")
		})
	}
}
