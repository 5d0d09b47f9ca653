package stepupchi_test

// SECURITY.md threat 19, chi side: wiring that silently protects nothing.
// The table registered with r.Use, where chi has not routed yet, must fail
// closed at request time; routes open for methods a policy leaves out must
// be reported by CheckRoutes.

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/gorilla/sessions"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup"
	"github.com/stepupkit/stepup/adapters/stepupchi"
	"github.com/stepupkit/stepup/authsignal"
	"github.com/stepupkit/stepup/stepuptest"
)

// misconfigured returns the reasons of the guard's ErrMisconfigured
// refusals, as logged.
func misconfigured(env *stepuptest.Env) []string {
	var out []string
	for _, ev := range env.Events.Of(stepup.EventRefuse) {
		if errors.Is(ev.Err, stepup.ErrMisconfigured) {
			out = append(out, ev.Err.Error())
		}
	}
	return out
}

func TestChiMiddlewareBeforeRoutingFailsClosed(t *testing.T) {
	onRoot := func(t testing.TB, g *stepup.Guard, h stepuptest.Handlers) http.Handler {
		r := chi.NewRouter()
		r.Use(stepupchi.Middleware(g)) // the mistake: chi has not routed yet
		routes(r, h)
		r.Get(stepuptest.CallbackPath, stepupchi.Callback(g, r).ServeHTTP)
		return r
	}
	onSubRouter := func(t testing.TB, g *stepup.Guard, h stepuptest.Handlers) http.Handler {
		r := chi.NewRouter()
		sub := chi.NewRouter()
		sub.Use(stepupchi.Middleware(g)) // the mistake: the pattern is the mount point
		routes(sub, h)
		r.Mount("/", sub)
		return r
	}
	onMount := func(t testing.TB, g *stepup.Guard, h stepuptest.Handlers) http.Handler {
		r := chi.NewRouter()
		sub := chi.NewRouter()
		routes(sub, h)
		r.With(stepupchi.Middleware(g)).Mount("/", sub) // inline, but on the mount point
		return r
	}
	for name, mount := range map[string]func(testing.TB, *stepup.Guard, stepuptest.Handlers) http.Handler{
		"r.Use on the root router":  onRoot,
		"r.Use on a mounted router": onSubRouter,
		"r.With on a mount point":   onMount,
	} {
		t.Run(name, func(t *testing.T) {
			a := chiAdapter
			a.Mount = mount
			env := stepuptest.NewEnv(t, a, stepuptest.Options{})
			b := env.NewBrowser()
			for _, req := range []struct{ method, path, handler string }{
				{http.MethodPost, "/transfer", "transfer"},
				{http.MethodGet, "/admin", "admin"},
				{http.MethodDelete, "/items/7", "deleteItem"},
				{http.MethodGet, "/open", "open"}, // open or not, the guard cannot tell before routing
			} {
				resp := b.Do(req.method, req.path, stepuptest.Form, "amount=5000&to=mallory", nil)
				assert.Equal(t, http.StatusInternalServerError, resp.StatusCode, "%s %s", req.method, req.path)
				assert.Contains(t, resp.Body, "not wired correctly")
				assert.Empty(t, env.Ledger.Runs(req.handler), "%s ran though the guard never decided", req.handler)
			}
			assert.Empty(t, env.Emulator.Tracked())
			reasons := misconfigured(env)
			require.Len(t, reasons, 4)
			assert.Contains(t, reasons[0], "register it inline, with r.With(stepupchi.Middleware(guard))")

			assert.Equal(t, http.StatusNotFound, b.Do(http.MethodGet, "/nowhere", "", "", nil).StatusCode,
				"a request no route matches stays chi's 404")
			assert.Equal(t, http.StatusMethodNotAllowed, b.Do(http.MethodGet, "/transfer", "", "", nil).StatusCode,
				"and one no method matches chi's 405")
			assert.Len(t, misconfigured(env), 4)
		})
	}
}

func TestChiMiddlewareInlineKeepsMissesAndCatchAlls(t *testing.T) {
	a := chiAdapter
	a.Mount = func(t testing.TB, g *stepup.Guard, h stepuptest.Handlers) http.Handler {
		r := chi.NewRouter()
		r.Group(func(r chi.Router) {
			r.Use(stepupchi.Middleware(g))
			routes(r, h)
			r.NotFound(http.NotFound) // wrapped by the group's middleware
			r.Handle("/files/*", h.Open)
		})
		r.Get(stepuptest.CallbackPath, stepupchi.Callback(g, r).ServeHTTP)
		return r
	}
	env := stepuptest.NewEnv(t, a, stepuptest.Options{})
	b := env.NewBrowser()
	b.Login("alice")
	for _, path := range []string{"/nowhere", "/transfer/x", "/items"} {
		assert.Equal(t, http.StatusNotFound, b.Do(http.MethodPost, path, stepuptest.Form, "a=1", nil).StatusCode, path)
	}
	assert.Equal(t, http.StatusOK, b.Do(http.MethodPost, "/files/a/b", stepuptest.Form, "a=1", nil).StatusCode,
		"a catch-all endpoint is a finished route")
	assert.Empty(t, misconfigured(env))
}

func TestChiMiddlewareOutsideChiFailsClosed(t *testing.T) {
	a := chiAdapter
	a.Mount = func(t testing.TB, g *stepup.Guard, h stepuptest.Handlers) http.Handler {
		mux := http.NewServeMux()
		mux.Handle("POST /transfer", h.Transfer)
		return stepupchi.Middleware(g)(mux)
	}
	env := stepuptest.NewEnv(t, a, stepuptest.Options{})
	b := env.NewBrowser()
	resp := b.API(http.MethodPost, "/transfer", `{"amount":5000}`, nil)
	assert.Equal(t, http.StatusInternalServerError, resp.StatusCode)
	assert.Contains(t, resp.Body, `"error":"misconfigured"`, "JSON for an API client")
	assert.Empty(t, env.Ledger.Runs("transfer"))
	reasons := misconfigured(env)
	require.Len(t, reasons, 1)
	assert.Contains(t, reasons[0], "outside a chi router")
}

// A Middleware whose guard declares no policies protects nothing, so it has
// nothing to be miswired for: even with r.Use it lets every request
// through (the routes are protected with Require).
func TestChiMiddlewareWithoutPoliciesLetsEverythingThrough(t *testing.T) {
	g, err := stepup.New(stepup.Config{
		Provider:    authsignal.NewClient("unused", authsignal.WithBaseURL("http://127.0.0.1:1")), // never called
		Sessions:    sessions.NewCookieStore([]byte("0123456789abcdef0123456789abcdef")),
		UserID:      func(*http.Request) (string, error) { return "alice", nil },
		CallbackURL: "https://app.example/stepup/callback",
	})
	require.NoError(t, err)
	r := chi.NewRouter()
	r.Use(stepupchi.Middleware(g))
	r.Get("/profile", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("profile")) })
	for path, want := range map[string]int{"/profile": http.StatusOK, "/missing": http.StatusNotFound} {
		rec := httptest.NewRecorder()
		r.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		assert.Equal(t, want, rec.Code, path)
	}
}

func TestCheckRoutes(t *testing.T) {
	admin := func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }
	other := func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusAccepted) }
	getAdmin := []stepup.Policy{{Method: http.MethodGet, Route: "/admin", Action: "admin"}}
	tests := []struct {
		name     string
		policies []stepup.Policy
		routes   func(r chi.Router)
		expect   []string // nil: no error
	}{
		{"r.HandleFunc under a GET policy", getAdmin,
			func(r chi.Router) { r.HandleFunc("/admin", admin) },
			[]string{"route /admin", "protected for GET, HEAD", "POST", "PUT", "DELETE", `use Method "*"`}},
		{"one function for two methods under a GET policy", getAdmin,
			func(r chi.Router) { r.Get("/admin", admin); r.Post("/admin", admin) },
			[]string{"route /admin", "protected for GET but registered for POST too"}},
		{"r.Handle in a mounted router under a GET policy", getAdmin,
			func(r chi.Router) { r.Route("/admin", func(r chi.Router) { r.HandleFunc("/", admin) }) },
			[]string{"route /admin", "POST"}},
		{"a policy naming no route", []stepup.Policy{{Method: http.MethodPut, Route: "/profile", Action: "profile"}},
			func(r chi.Router) { r.Post("/profile", admin) },
			[]string{"policy PUT /profile: no such chi route"}},
		{"a policy with a trailing slash", []stepup.Policy{{Method: http.MethodGet, Route: "/admin/", Action: "admin"}},
			func(r chi.Router) { r.Get("/admin/", admin) },
			[]string{`no such chi route (chi's RoutePattern has no trailing slash: name it "/admin")`}},
		{"a sub-router hidden behind a wrapper", []stepup.Policy{{Method: http.MethodPost, Route: "/api/transfer", Action: "transfer"}},
			func(r chi.Router) {
				sub := chi.NewRouter()
				sub.Post("/transfer", admin)
				r.Mount("/api", http.HandlerFunc(sub.ServeHTTP)) // logging(sub), say
			},
			[]string{"policy POST /api/transfer: no such chi route"}},
		{"r.HandleFunc under a * policy", []stepup.Policy{{Method: "*", Route: "/admin", Action: "admin"}},
			func(r chi.Router) { r.HandleFunc("/admin", admin) }, nil},
		{"a policy for every method a function is registered for",
			[]stepup.Policy{{Method: http.MethodGet, Route: "/admin", Action: "admin"}, {Method: http.MethodPost, Route: "/admin", Action: "admin"}},
			func(r chi.Router) { r.Get("/admin", admin); r.Post("/admin", admin) }, nil},
		{"another handler for another method", getAdmin,
			func(r chi.Router) { r.Get("/admin", admin); r.Post("/admin", other) }, nil},
		{"two closures of one factory", getAdmin,
			func(r chi.Router) {
				r.Method(http.MethodGet, "/admin", http.NotFoundHandler())
				r.Method(http.MethodPost, "/admin", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { admin(w, r) }))
			}, nil},
		{"the same handler under another route", getAdmin,
			func(r chi.Router) { r.Get("/admin", admin); r.Post("/other", admin) },
			[]string{"protected at GET /admin but also registered at POST /other", "stepupchi.Require(guard, action)(handler)"}},
		{"a mounted router's route", []stepup.Policy{{Method: http.MethodPost, Route: "/api/v1/transfer", Action: "transfer"}},
			func(r chi.Router) {
				r.Route("/api", func(r chi.Router) { r.Route("/v1", func(r chi.Router) { r.Post("/transfer", admin) }) })
			}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := chiAdapter
			a.Mount = func(t testing.TB, g *stepup.Guard, h stepuptest.Handlers) http.Handler {
				r := chi.NewRouter()
				r.Group(func(r chi.Router) {
					r.Use(stepupchi.Middleware(g))
					tc.routes(r)
				})
				r.Get(stepuptest.CallbackPath, stepupchi.Callback(g, r).ServeHTTP)
				err := stepupchi.CheckRoutes(g, r)
				if tc.expect == nil {
					assert.NoError(t, err)
					return r
				}
				require.Error(t, err)
				for _, want := range tc.expect {
					assert.Contains(t, err.Error(), want)
				}
				return r
			}
			stepuptest.NewEnv(t, a, stepuptest.Options{Config: func(c *stepup.Config) { c.Policies = tc.policies }})
		})
	}
}

func newGuard(t *testing.T, policies ...stepup.Policy) *stepup.Guard {
	t.Helper()
	g, err := stepup.New(stepup.Config{
		Provider:    authsignal.NewClient("secret"),
		Sessions:    sessions.NewCookieStore([]byte("0123456789abcdef0123456789abcdef")),
		UserID:      func(*http.Request) (string, error) { return "alice", nil },
		CallbackURL: "https://bank.example/stepup/callback",
		Policies:    policies,
	})
	require.NoError(t, err)
	return g
}

type bank struct{}

func (*bank) transfer(http.ResponseWriter, *http.Request) {}

// SECURITY.md threat 24: one handler protected under one route and
// registered under another where nothing protects it.
func TestCheckRoutesReportsAliases(t *testing.T) {
	transfer := func(http.ResponseWriter, *http.Request) {}
	apiTransfer := stepup.Policy{Method: http.MethodPost, Route: "/api/transfer", Action: "transfer"}
	tests := []struct {
		name   string
		routes func(r chi.Router, g *stepup.Guard)
		expect []string // nil: no error
	}{
		{"a sub-router mounted at /api and /api/v1",
			func(r chi.Router, g *stepup.Guard) {
				api := chi.NewRouter()
				api.With(stepupchi.Middleware(g)).Post("/transfer", transfer)
				r.Mount("/api", api)
				r.Mount("/api/v1", api)
			},
			[]string{"protected at POST /api/transfer but also registered at POST /api/v1/transfer"}},
		{"a method value in two groups",
			func(r chi.Router, g *stepup.Guard) {
				b := &bank{}
				r.Group(func(r chi.Router) { r.Use(stepupchi.Middleware(g)); r.Post("/api/transfer", b.transfer) })
				r.Group(func(r chi.Router) { r.Post("/legacy/transfer", b.transfer) })
			},
			[]string{"(*bank).transfer", "registered at POST /legacy/transfer"}},
		{"Require on one route, the handler open on another",
			func(r chi.Router, g *stepup.Guard) {
				r.With(stepupchi.Middleware(g)).Post("/api/transfer", func(http.ResponseWriter, *http.Request) {})
				r.With(stepupchi.Require(g, "wire")).Post("/wire", transfer)
				r.Post("/v1/wire", transfer)
			},
			[]string{"protected at POST /wire but also registered at POST /v1/wire"}},
		{"a handler wrapped by Require, under two routes",
			func(r chi.Router, g *stepup.Guard) {
				h := stepupchi.Require(g, "transfer")(http.HandlerFunc(transfer))
				r.With(stepupchi.Middleware(g)).Post("/api/transfer", h.ServeHTTP)
				r.Post("/api/v1/transfer", h.ServeHTTP)
			}, nil},
		{"a sub-router mounted twice, protected under both",
			func(r chi.Router, g *stepup.Guard) {
				api := chi.NewRouter()
				api.With(stepupchi.Require(g, "transfer")).Post("/transfer", transfer)
				r.With(stepupchi.Middleware(g)).Mount("/api", api)
				r.Mount("/api/v1", api)
			}, nil},
		{"handlers shared among open routes only",
			func(r chi.Router, g *stepup.Guard) {
				r.With(stepupchi.Middleware(g)).Post("/api/transfer", transfer)
				files := http.FileServer(http.Dir("."))
				r.Handle("/static/*", files)
				r.Handle("/assets/*", files)
				r.Get("/gone", http.NotFound)
				r.Get("/missing", http.NotFound)
			}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := newGuard(t, apiTransfer)
			r := chi.NewRouter()
			r.Get("/stepup/callback", stepupchi.Callback(g, r).ServeHTTP)
			tc.routes(r, g)
			err := stepupchi.CheckRoutes(g, r)
			if tc.expect == nil {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			for _, want := range tc.expect {
				assert.Contains(t, err.Error(), want)
			}
			assert.Contains(t, err.Error(), "stepupchi.Require(guard, action)(handler)")
		})
	}
}

// Issue 19: the user passes the challenge and lands on a 404 unless the
// callback is mounted at Config.CallbackURL's path.
func TestCheckRoutesReportsTheCallbackNotMounted(t *testing.T) {
	logging := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { next.ServeHTTP(w, r) })
	}
	tests := []struct {
		name   string
		mount  func(r chi.Router, g, other *stepup.Guard)
		expect string // "": no error
	}{
		{"r.Get with ServeHTTP", func(r chi.Router, g, _ *stepup.Guard) {
			r.Get("/stepup/callback", stepupchi.Callback(g, r).ServeHTTP)
		}, ""},
		{"r.Method with the handler", func(r chi.Router, g, _ *stepup.Guard) {
			r.Method(http.MethodGet, "/stepup/callback", stepupchi.Callback(g, r))
		}, ""},
		{"inside a mounted router", func(r chi.Router, g, _ *stepup.Guard) {
			r.Route("/stepup", func(sub chi.Router) { sub.Handle("/callback", stepupchi.Callback(g, r)) })
		}, ""},
		{"with route middleware", func(r chi.Router, g, _ *stepup.Guard) {
			r.With(logging).Get("/stepup/callback", stepupchi.Callback(g, r).ServeHTTP)
		}, ""},
		{"not mounted", func(chi.Router, *stepup.Guard, *stepup.Guard) {}, "its path names no GET route"},
		{"for POST only", func(r chi.Router, g, _ *stepup.Guard) {
			r.Post("/stepup/callback", stepupchi.Callback(g, r).ServeHTTP)
		}, "its path names no GET route"},
		{"a typo in its path", func(r chi.Router, g, _ *stepup.Guard) {
			r.Get("/stepup/callbacks", stepupchi.Callback(g, r).ServeHTTP)
		}, "its path names no GET route"},
		{"a catch-all there", func(r chi.Router, _, _ *stepup.Guard) {
			r.Get("/*", http.NotFound)
		}, "chi routes it to /*, which serves net/http.NotFound, not stepupchi.Callback"},
		{"inside a wrapper", func(r chi.Router, g, _ *stepup.Guard) {
			r.Method(http.MethodGet, "/stepup/callback", logging(stepupchi.Callback(g, r)))
		}, "not stepupchi.Callback"},
		{"the net/http callback, which routes the replay with the callback's chi context", func(r chi.Router, g, _ *stepup.Guard) {
			r.Method(http.MethodGet, "/stepup/callback", g.Callback(r))
		}, "not stepupchi.Callback"},
		{"another guard's", func(r chi.Router, _, other *stepup.Guard) {
			r.Method(http.MethodGet, "/stepup/callback", stepupchi.Callback(other, r))
		}, "the callback of another guard"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g, other := newGuard(t), newGuard(t)
			r := chi.NewRouter()
			tc.mount(r, g, other)
			err := stepupchi.CheckRoutes(g, r)
			if tc.expect == "" {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), "stepupchi: Config.CallbackURL https://bank.example/stepup/callback")
			assert.Contains(t, err.Error(), tc.expect)
		})
	}
}

// A route registered outside the group that holds the guard runs without
// it; CheckRoutes says so.
func TestCheckRoutesReportsRoutesWithoutTheGuard(t *testing.T) {
	transfer := func(http.ResponseWriter, *http.Request) {}
	tests := []struct {
		name   string
		routes func(r chi.Router, g *stepup.Guard)
		expect string // "": no error
	}{
		{"in the group", func(r chi.Router, g *stepup.Guard) {
			r.Group(func(r chi.Router) { r.Use(stepupchi.Middleware(g)); r.Post("/transfer", transfer) })
		}, ""},
		{"inline", func(r chi.Router, g *stepup.Guard) { r.With(stepupchi.Middleware(g)).Post("/transfer", transfer) }, ""},
		{"with Require", func(r chi.Router, g *stepup.Guard) {
			r.With(stepupchi.Require(g, "transfer")).Post("/transfer", transfer)
		}, ""},
		{"in a mounted router under the guard", func(r chi.Router, g *stepup.Guard) {
			r.Group(func(r chi.Router) {
				r.Use(stepupchi.Middleware(g))
				r.Route("/", func(r chi.Router) { r.Post("/transfer", transfer) })
			})
		}, ""},
		{"outside the group", func(r chi.Router, g *stepup.Guard) {
			r.Group(func(r chi.Router) { r.Use(stepupchi.Middleware(g)); r.Get("/report", transfer) })
			r.Post("/transfer", transfer)
		}, "route POST /transfer: a policy protects it, but neither stepupchi.Middleware nor stepupchi.Require is among its middlewares"},
		{"no guard at all", func(r chi.Router, _ *stepup.Guard) { r.Post("/transfer", transfer) },
			"so chi runs it without a step-up"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := newGuard(t, stepup.Policy{Method: http.MethodPost, Route: "/transfer", Action: "transfer"})
			r := chi.NewRouter()
			r.Get("/stepup/callback", stepupchi.Callback(g, r).ServeHTTP)
			tc.routes(r, g)
			err := stepupchi.CheckRoutes(g, r)
			if tc.expect == "" {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.expect)
		})
	}
}

// The alias CheckRoutes reports is an open door: nobody is logged in, so
// the protected route refuses, and the same handler mounted again runs.
func TestAliasRunsUnchallenged(t *testing.T) {
	g, err := stepup.New(stepup.Config{
		Provider:    authsignal.NewClient("unused", authsignal.WithBaseURL("http://127.0.0.1:1")), // never reached
		Sessions:    sessions.NewCookieStore([]byte("0123456789abcdef0123456789abcdef")),
		UserID:      func(*http.Request) (string, error) { return "", nil },
		CallbackURL: "https://bank.example/stepup/callback",
		Policies:    []stepup.Policy{{Method: http.MethodPost, Route: "/api/transfer", Action: "transfer"}},
	})
	require.NoError(t, err)
	runs := 0
	api := chi.NewRouter()
	api.With(stepupchi.Middleware(g)).Post("/transfer", func(http.ResponseWriter, *http.Request) { runs++ })
	r := chi.NewRouter()
	r.Mount("/api", api)
	r.Mount("/api/v1", api)
	r.Get("/stepup/callback", stepupchi.Callback(g, r).ServeHTTP)

	for target, want := range map[string]int{"/api/transfer": http.StatusUnauthorized, "/api/v1/transfer": http.StatusOK} {
		rec := httptest.NewRecorder()
		r.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, target, nil))
		assert.Equal(t, want, rec.Code, target)
	}
	assert.Equal(t, 1, runs, "run once, under the alias")
	assert.ErrorContains(t, stepupchi.CheckRoutes(g, r), "registered at POST /api/v1/transfer")
}
