package stepupecho_test

// SECURITY.md threat 19, echo side: wiring that silently protects
// nothing. The guard registered with e.Pre, a method override after
// routing and e.Any routes under a single-method policy must fail closed at
// request time or be reported by CheckRoutes.

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/gorilla/sessions"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup"
	stepupecho "github.com/stepupkit/stepup/adapters/stepupecho"
	"github.com/stepupkit/stepup/authsignal"
	"github.com/stepupkit/stepup/stepuptest"
)

// refusals keeps what the adapter hands to Config.ErrorHandler.
type refusals struct {
	mu   sync.Mutex
	errs []error
}

func (r *refusals) handler(_ echo.Context, err error) error {
	r.mu.Lock()
	r.errs = append(r.errs, err)
	r.mu.Unlock()
	return err
}

func (r *refusals) all() []error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]error(nil), r.errs...)
}

// misconfigured returns the reasons of the guard's ErrMisconfigured
// refusals, as logged.
func misconfigured(env *stepuptest.Env) []string {
	var out []string
	for _, ev := range env.Events.All() {
		if ev.Type == stepup.EventRefuse && errors.Is(ev.Err, stepup.ErrMisconfigured) {
			out = append(out, ev.Err.Error())
		}
	}
	return out
}

func TestEchoMiddlewareInPreFailsClosed(t *testing.T) {
	app := echoAdapter
	app.Mount = func(t testing.TB, g *stepup.Guard, h stepuptest.Handlers) http.Handler {
		e := echo.New()
		e.Pre(stepupecho.Middleware(g)) // the mistake: no route is matched yet
		mount(e, g, h)
		return e
	}
	env := stepuptest.NewEnv(t, app, stepuptest.Options{})
	b := env.NewBrowser()

	for _, req := range []struct{ method, path, handler string }{
		{http.MethodPost, "/transfer", "transfer"},
		{http.MethodGet, "/admin", "admin"},
		{http.MethodDelete, "/items/7", "deleteItem"},
		{http.MethodGet, "/open", "open"}, // open or not, the guard cannot tell before routing
	} {
		resp := b.Do(req.method, req.path, stepuptest.Form, "amount=5000&to=mallory", nil)
		assert.Equal(t, http.StatusInternalServerError, resp.StatusCode, "%s %s", req.method, req.path)
		assert.Empty(t, env.Ledger.Runs(req.handler), "%s ran though the guard never decided", req.handler)
	}
	assert.Empty(t, env.Emulator.Tracked())
	reasons := misconfigured(env)
	require.Len(t, reasons, 4)
	assert.Contains(t, reasons[0], "register it with e.Use, not e.Pre")

	resp := b.Do(http.MethodGet, "/nowhere", "", "", nil)
	assert.Equal(t, http.StatusNotFound, resp.StatusCode, "a request no route matches stays echo's 404")
}

func TestEchoMiddlewareInUseKeepsRouteMissesAs404(t *testing.T) {
	// After routing, a miss has an empty c.Path() too: the guard must tell
	// it from e.Pre and leave echo's 404 alone.
	env := stepuptest.NewEnv(t, echoAdapter, stepuptest.Options{})
	b := env.NewBrowser()
	b.Login("alice")
	for _, path := range []string{"/nowhere", "/transfer/x", "/items"} {
		assert.Equal(t, http.StatusNotFound, b.Do(http.MethodPost, path, stepuptest.Form, "a=1", nil).StatusCode, path)
	}
	assert.Empty(t, misconfigured(env))
}

// overrideApp mounts the suite's application with echo's MethodOverride
// before routing (pre) or after it (the mistake), errors going through
// Config.ErrorHandler into got; extra adds routes.
func overrideApp(pre bool, got *refusals, extra func(e *echo.Echo, g *stepup.Guard, h stepuptest.Handlers)) stepuptest.Adapter {
	app := echoAdapter
	app.Mount = func(t testing.TB, g *stepup.Guard, h stepuptest.Handlers) http.Handler {
		e := echo.New()
		if pre {
			e.Pre(middleware.MethodOverride())
		}
		e.Pre(stepupecho.PreserveBody(g))
		if !pre {
			e.Use(middleware.MethodOverride())
		}
		e.Use(stepupecho.MiddlewareWithConfig(g, stepupecho.Config{ErrorHandler: got.handler}))
		mount(e, g, h)
		if extra != nil {
			extra(e, g, h)
		}
		return e
	}
	return app
}

func TestEchoMethodOverrideAfterRoutingFailsClosed(t *testing.T) {
	got := &refusals{}
	env := stepuptest.NewEnv(t, overrideApp(false, got, nil), stepuptest.Options{})
	b := env.NewBrowser()
	b.Login("alice")

	// The router runs the POST /transfer handler; the guard would see PUT,
	// PATCH or DELETE /transfer, which no policy covers.
	for _, m := range []string{http.MethodPut, http.MethodPatch, http.MethodDelete, "PROPFIND"} {
		resp := b.Do(http.MethodPost, "/transfer", stepuptest.Form, "amount=5000&to=mallory",
			http.Header{"X-Http-Method-Override": {m}})
		assert.Equal(t, http.StatusInternalServerError, resp.StatusCode, m)
	}
	assert.Empty(t, env.Ledger.Runs("transfer"), "the transfer ran without a step-up")
	assert.Empty(t, env.Emulator.Tracked())

	errs := got.all()
	require.Len(t, errs, 4)
	var he *echo.HTTPError
	require.True(t, errors.As(errs[0], &he), "refusals speak echo")
	assert.Equal(t, http.StatusInternalServerError, he.Code)
	assert.ErrorIs(t, he.Internal, stepup.ErrMisconfigured)
	reasons := misconfigured(env)
	require.Len(t, reasons, 4)
	assert.Contains(t, reasons[0], "register middleware.MethodOverride (or whatever rewrites the method) with e.Pre")

	t.Run("requests the override leaves alone are decided as before", func(t *testing.T) {
		before := len(got.all())
		assert.True(t, strings.HasPrefix(b.Challenge(b.Do(http.MethodPost, "/transfer", stepuptest.Form, "amount=5000&to=bob", nil)),
			env.Emulator.URL), "a plain POST is challenged")
		assert.Equal(t, http.StatusMethodNotAllowed, b.Do(http.MethodGet, "/transfer", "", "", nil).StatusCode, "echo's 405 stays")
		assert.Equal(t, http.StatusMethodNotAllowed, b.Do(http.MethodDelete, "/transfer", "", "", nil).StatusCode, "echo's 405 stays")
		assert.Equal(t, http.StatusOK, b.Do(http.MethodPost, "/open", stepuptest.Form, "a=1",
			http.Header{"X-Http-Method-Override": {http.MethodDelete}}).StatusCode, "an open e.Any route")
		assert.Len(t, got.all(), before)
	})
}

func TestEchoAnyMethodRewriteAfterRoutingFailsClosed(t *testing.T) {
	// Not only echo's MethodOverride: a middleware of the application that
	// turns DELETE into GET after routing. DELETE /items/new reaches the
	// protected DELETE /items/:id handler; GET routes to /items/new.
	app := echoAdapter
	app.Mount = func(t testing.TB, g *stepup.Guard, h stepuptest.Handlers) http.Handler {
		e := echo.New()
		e.Use(func(next echo.HandlerFunc) echo.HandlerFunc {
			return func(c echo.Context) error {
				if m := c.Request().Header.Get("X-Rewrite-Method"); m != "" {
					c.Request().Method = m
				}
				return next(c)
			}
		})
		e.Use(stepupecho.Middleware(g))
		mount(e, g, h)
		e.GET("/items/new", echo.WrapHandler(h.Open))
		return e
	}
	env := stepuptest.NewEnv(t, app, stepuptest.Options{})
	b := env.NewBrowser()
	b.Login("alice")
	resp := b.Do(http.MethodDelete, "/items/new", "", "", http.Header{"X-Rewrite-Method": {http.MethodGet}})
	assert.Equal(t, http.StatusInternalServerError, resp.StatusCode)
	assert.Empty(t, env.Ledger.Runs("deleteItem"), "the protected DELETE handler ran undecided")
	reasons := misconfigured(env)
	require.Len(t, reasons, 1)
	assert.Contains(t, reasons[0], `echo routes GET to "/items/new", not to /items/:id`)

	assert.Equal(t, http.StatusOK, b.Do(http.MethodGet, "/items/new", "", "", nil).StatusCode, "the open route itself")
}

func TestEchoRequireHoldsWhenTheMethodChangesAfterRouting(t *testing.T) {
	// The one override the table middleware cannot see: into a method with
	// its own route at the same pattern. Require runs with the route that
	// was dispatched, so the POST handler is still decided (the suite's
	// "wire" action is held for review: 403).
	got := &refusals{}
	env := stepuptest.NewEnv(t, overrideApp(false, got, func(e *echo.Echo, g *stepup.Guard, h stepuptest.Handlers) {
		e.POST("/wire", echo.WrapHandler(h.Transfer), stepupecho.Require(g, "wire"))
		e.DELETE("/wire", echo.WrapHandler(h.Open))
	}), stepuptest.Options{})
	b := env.NewBrowser()
	b.Login("alice")
	resp := b.Do(http.MethodPost, "/wire", stepuptest.Form, "amount=5000", http.Header{"X-Http-Method-Override": {http.MethodDelete}})
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)
	assert.Empty(t, env.Ledger.Runs("transfer"))
}

func TestEchoMethodOverrideBeforeRoutingStillWorks(t *testing.T) {
	// Correct wiring: the router dispatches the overridden method. An open
	// PUT /transfer beside the protected POST must still be reachable, and
	// an override to a method without a route stays echo's 405.
	got := &refusals{}
	env := stepuptest.NewEnv(t, overrideApp(true, got, func(e *echo.Echo, _ *stepup.Guard, h stepuptest.Handlers) {
		e.PUT("/transfer", echo.WrapHandler(h.Open))
	}), stepuptest.Options{})
	b := env.NewBrowser()
	b.Login("alice")

	resp := b.Do(http.MethodPost, "/transfer", stepuptest.Form, "a=1", http.Header{"X-Http-Method-Override": {http.MethodPut}})
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	require.Len(t, env.Ledger.Runs("open"), 1)
	assert.Equal(t, http.MethodPut, env.Ledger.Runs("open")[0].Method)
	resp = b.Do(http.MethodPost, "/transfer", stepuptest.Form, "a=1", http.Header{"X-Http-Method-Override": {http.MethodDelete}})
	assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
	assert.Empty(t, env.Ledger.Runs("transfer"))
	assert.Empty(t, got.all())
}

func TestEchoMethodOverrideAfterRoutingPastARouteNotFound(t *testing.T) {
	// echo registers a RouteNotFound handler at a group's prefix. At a
	// pattern that has one, a method without a route is the app's 404, not
	// a sign of a changed method, unless echo's MethodOverride could have
	// turned a protected POST into that method.
	group := func(e *echo.Echo, _ *stepup.Guard, _ stepuptest.Handlers) {
		e.Group("/transfer", func(next echo.HandlerFunc) echo.HandlerFunc { return next })
		e.Group("/admin", func(next echo.HandlerFunc) echo.HandlerFunc { return next })
	}
	t.Run("after routing, a protected POST turned into DELETE is refused", func(t *testing.T) {
		got := &refusals{}
		env := stepuptest.NewEnv(t, overrideApp(false, got, group), stepuptest.Options{})
		b := env.NewBrowser()
		b.Login("alice")
		resp := b.Do(http.MethodPost, "/transfer", stepuptest.Form, "amount=5000&to=mallory",
			http.Header{"X-Http-Method-Override": {http.MethodDelete}})
		assert.Equal(t, http.StatusInternalServerError, resp.StatusCode)
		assert.Empty(t, env.Ledger.Runs("transfer"))
	})
	t.Run("methods without a route stay the app's 404", func(t *testing.T) {
		got := &refusals{}
		env := stepuptest.NewEnv(t, overrideApp(true, got, group), stepuptest.Options{})
		b := env.NewBrowser()
		b.Login("alice")
		for _, m := range []string{http.MethodPost, http.MethodDelete, http.MethodPut} {
			assert.Equal(t, http.StatusNotFound, b.Do(m, "/admin", stepuptest.Form, "a=1", nil).StatusCode, "%s /admin, GET protected", m)
		}
		for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodOptions} {
			assert.Equal(t, http.StatusNotFound, b.Do(m, "/transfer", "", "", nil).StatusCode,
				"%s /transfer, POST protected: MethodOverride never produces %s", m, m)
		}
		assert.Empty(t, got.all())
		assert.Empty(t, env.Ledger.Runs("admin"))
	})
}

func TestCheckRoutesReportsHandlersOpenForOtherMethods(t *testing.T) {
	admin := func(c echo.Context) error { return c.NoContent(http.StatusOK) }
	other := func(c echo.Context) error { return c.NoContent(http.StatusAccepted) }
	getAdmin := []stepup.Policy{{Method: http.MethodGet, Route: "/admin", Action: "admin"}}
	tests := []struct {
		name     string
		policies []stepup.Policy
		routes   func(e *echo.Echo)
		expect   []string // nil: no error
	}{
		{"e.Any under a GET policy", getAdmin,
			func(e *echo.Echo) { e.Any("/admin", admin) },
			[]string{"route /admin", "protected for GET, HEAD", "POST", "PUT", "DELETE", "PROPFIND", `use Method "*"`}},
		{"e.Match under a GET policy", getAdmin,
			func(e *echo.Echo) { e.Match([]string{http.MethodGet, http.MethodPost}, "/admin", admin) },
			[]string{"route /admin", "protected for GET but registered for POST too"}},
		{"e.Any in a group under a GET policy", getAdmin,
			func(e *echo.Echo) { e.Group("/admin").Any("", admin) },
			[]string{"route /admin", "POST"}},
		{"e.Any on a host's router under a GET policy", getAdmin,
			func(e *echo.Echo) { e.GET("/admin", other); e.Host("admin.example").Any("/admin", admin) },
			[]string{"route /admin", "POST"}},
		{"e.Any under a * policy", []stepup.Policy{{Method: "*", Route: "/admin", Action: "admin"}},
			func(e *echo.Echo) { e.Any("/admin", admin) }, nil},
		{"e.Match with a policy for every method it registers",
			[]stepup.Policy{{Method: http.MethodGet, Route: "/admin", Action: "admin"}, {Method: http.MethodPost, Route: "/admin", Action: "admin"}},
			func(e *echo.Echo) { e.Match([]string{http.MethodGet, http.MethodPost}, "/admin", admin) }, nil},
		{"another handler for another method", getAdmin,
			func(e *echo.Echo) { e.GET("/admin", admin); e.POST("/admin", other) }, nil},
		{"one handler factory, routes named apart", getAdmin,
			func(e *echo.Echo) {
				e.GET("/admin", echo.WrapHandler(http.NotFoundHandler())).Name = "admin-page"
				e.POST("/admin", echo.WrapHandler(http.NotFoundHandler())).Name = "admin-form"
			}, nil},
		{"the same handler under another route", getAdmin,
			func(e *echo.Echo) { e.GET("/admin", admin); e.POST("/other", admin) },
			[]string{"protected at GET /admin but also registered at POST /other", "stepupecho.Require(guard, action)(handler)"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			app := echoAdapter
			app.Mount = func(t testing.TB, g *stepup.Guard, h stepuptest.Handlers) http.Handler {
				e := echo.New()
				e.Use(stepupecho.Middleware(g))
				tc.routes(e)
				e.GET(stepuptest.CallbackPath, stepupecho.Callback(g, e))
				err := stepupecho.CheckRoutes(g, e)
				if tc.expect == nil {
					assert.NoError(t, err)
					return e
				}
				require.Error(t, err)
				for _, want := range tc.expect {
					assert.Contains(t, err.Error(), want)
				}
				assert.NotContains(t, err.Error(), "no such echo route")
				return e
			}
			stepuptest.NewEnv(t, app, stepuptest.Options{Config: func(c *stepup.Config) { c.Policies = tc.policies }})
		})
	}
}

// A Middleware whose guard declares no policies protects nothing, so it has
// nothing to be miswired for: even in e.Pre it lets every request through
// rather than refuse the whole application (the routes are protected with
// Require, which never depends on where Middleware sits).
func TestEchoMiddlewareWithoutPoliciesLetsEverythingThrough(t *testing.T) {
	g, err := stepup.New(stepup.Config{
		Provider:    authsignal.NewClient("unused", authsignal.WithBaseURL("http://127.0.0.1:1")), // never called
		Sessions:    sessions.NewCookieStore([]byte("0123456789abcdef0123456789abcdef")),
		UserID:      func(*http.Request) (string, error) { return "alice", nil },
		CallbackURL: "https://app.example/stepup/callback",
	})
	require.NoError(t, err)
	e := echo.New()
	e.Pre(stepupecho.Middleware(g))
	e.GET("/profile", func(c echo.Context) error { return c.String(http.StatusOK, "profile") })
	for _, path := range []string{"/profile", "/missing"} {
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		want := map[string]int{"/profile": http.StatusOK, "/missing": http.StatusNotFound}[path]
		assert.Equal(t, want, rec.Code, path)
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

func (*bank) Transfer(echo.Context) error { return nil }

func healthz(echo.Context) error { return nil }

// SECURITY.md threat 24: one handler protected under one route and
// registered under another where nothing protects it.
func TestCheckRoutesReportsAliases(t *testing.T) {
	apiTransfer := stepup.Policy{Method: http.MethodPost, Route: "/api/transfer", Action: "transfer"}
	tests := []struct {
		name   string
		routes func(e *echo.Echo, g *stepup.Guard)
		expect []string // nil: no error
	}{
		{"a handler in two groups",
			func(e *echo.Echo, _ *stepup.Guard) {
				b := &bank{}
				e.Group("/api").POST("/transfer", b.Transfer)
				e.Group("/api/v1").POST("/transfer", b.Transfer)
			},
			[]string{"(*bank).Transfer-fm is protected at POST /api/transfer but also registered at POST /api/v1/transfer"}},
		{"under another host's router",
			func(e *echo.Echo, _ *stepup.Guard) {
				b := &bank{}
				e.POST("/api/transfer", b.Transfer)
				e.Host("legacy.example").POST("/transfer", b.Transfer)
			},
			[]string{"registered at POST legacy.example/transfer"}},
		{"Require around the handler, under two routes",
			func(e *echo.Echo, g *stepup.Guard) {
				h := stepupecho.Require(g, "transfer")((&bank{}).Transfer)
				e.POST("/api/transfer", h)
				e.POST("/api/v1/transfer", h)
			}, nil},
		{"handlers shared among open routes only",
			func(e *echo.Echo, _ *stepup.Guard) {
				e.POST("/api/transfer", (&bank{}).Transfer)
				e.GET("/healthz", healthz)
				e.GET("/api/healthz", healthz)
				e.Static("/static", ".")
				e.Static("/assets", ".")
			}, nil},
		{"net/http handlers wrapped by echo",
			func(e *echo.Echo, _ *stepup.Guard) {
				w := echo.WrapHandler
				e.POST("/api/transfer", w(http.NotFoundHandler()))
				e.POST("/login", w(http.NotFoundHandler()))
			}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := newGuard(t, apiTransfer)
			e := echo.New()
			e.Use(stepupecho.Middleware(g))
			e.GET("/stepup/callback", stepupecho.Callback(g, e))
			tc.routes(e, g)
			err := stepupecho.CheckRoutes(g, e)
			if tc.expect == nil {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			for _, want := range tc.expect {
				assert.Contains(t, err.Error(), want)
			}
			assert.Contains(t, err.Error(), "stepupecho.Require(guard, action)(handler)")
		})
	}
}

// Issue 19: the user passes the challenge and lands on a 404 unless the
// callback is mounted at Config.CallbackURL's path.
func TestCheckRoutesReportsTheCallbackNotMounted(t *testing.T) {
	tests := []struct {
		name   string
		mount  func(e *echo.Echo, g *stepup.Guard)
		expect string // "": no error
	}{
		{"mounted", func(e *echo.Echo, g *stepup.Guard) {
			e.GET("/stepup/callback", stepupecho.Callback(g, e))
		}, ""},
		{"in a group, with route middleware", func(e *echo.Echo, g *stepup.Guard) {
			e.Group("/stepup").GET("/callback", stepupecho.Callback(g, e), middleware.Logger())
		}, ""},
		{"on the callback's host", func(e *echo.Echo, g *stepup.Guard) {
			e.Host("bank.example").GET("/stepup/callback", stepupecho.Callback(g, e))
		}, ""},
		{"not mounted", func(*echo.Echo, *stepup.Guard) {}, "its path names no GET route"},
		{"for POST only", func(e *echo.Echo, g *stepup.Guard) {
			e.POST("/stepup/callback", stepupecho.Callback(g, e))
		}, "its path names no GET route"},
		{"on another host", func(e *echo.Echo, g *stepup.Guard) {
			e.Host("admin.example").GET("/stepup/callback", stepupecho.Callback(g, e))
		}, "its path names no GET route"},
		{"a catch-all there", func(e *echo.Echo, _ *stepup.Guard) {
			e.GET("/*", healthz)
		}, "echo routes it to /*, whose handler is github.com/stepupkit/stepup/adapters/stepupecho_test.healthz, not stepupecho.Callback"},
		{"the net/http callback, wrapped", func(e *echo.Echo, g *stepup.Guard) {
			e.GET("/stepup/callback", echo.WrapHandler(g.Callback(e)))
		}, "not stepupecho.Callback"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := newGuard(t)
			e := echo.New()
			tc.mount(e, g)
			err := stepupecho.CheckRoutes(g, e)
			if tc.expect == "" {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), "stepupecho: Config.CallbackURL https://bank.example/stepup/callback")
			assert.Contains(t, err.Error(), tc.expect)
		})
	}
}

// The alias CheckRoutes reports is an open door: nobody is logged in, so
// the protected route refuses, and the same handler in another group runs.
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
	transfer := func(c echo.Context) error { runs++; return c.NoContent(http.StatusOK) }
	e := echo.New()
	e.Use(stepupecho.Middleware(g))
	e.Group("/api").POST("/transfer", transfer)
	e.Group("/api/v1").POST("/transfer", transfer)
	e.GET("/stepup/callback", stepupecho.Callback(g, e))

	for target, want := range map[string]int{"/api/transfer": http.StatusUnauthorized, "/api/v1/transfer": http.StatusOK} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodPost, target, nil)
		req.Header.Set("Accept", "application/json")
		e.ServeHTTP(rec, req)
		assert.Equal(t, want, rec.Code, target)
	}
	assert.Equal(t, 1, runs, "run once, under the alias")
	assert.ErrorContains(t, stepupecho.CheckRoutes(g, e), "registered at POST /api/v1/transfer")
}

// echo compares route names: two handlers that share one (one method on
// two receivers) are reported until a route gets a Name of its own.
func TestCheckRoutesAliasesByRouteName(t *testing.T) {
	g := newGuard(t, stepup.Policy{Method: http.MethodPost, Route: "/admin/transfer", Action: "transfer"})
	e := echo.New()
	e.Use(stepupecho.Middleware(g))
	e.GET("/stepup/callback", stepupecho.Callback(g, e))
	admin, public := &bank{}, &bank{}
	e.POST("/admin/transfer", admin.Transfer)
	route := e.POST("/public/transfer", public.Transfer)
	err := stepupecho.CheckRoutes(g, e)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "give one of the routes a Name of its own")

	route.Name = "public-transfer"
	assert.NoError(t, stepupecho.CheckRoutes(g, e))
}
