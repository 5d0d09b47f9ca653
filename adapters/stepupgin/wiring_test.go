package stepupgin_test

// SECURITY.md threat 19, gin side: wiring that silently protects nothing.
// CheckRoutes reports policies naming no route and handlers open for
// methods a policy leaves out; a guard without policies lets everything
// through.

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/gorilla/sessions"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup"
	"github.com/stepupkit/stepup/adapters/stepupgin"
	"github.com/stepupkit/stepup/authsignal"
)

// newGuard builds a guard that never reaches a provider.
func newGuard(t testing.TB, policies []stepup.Policy) *stepup.Guard {
	t.Helper()
	g, err := stepup.New(stepup.Config{
		Provider:    authsignal.NewClient("unused", authsignal.WithBaseURL("http://127.0.0.1:1")), // never called
		Sessions:    sessions.NewCookieStore([]byte("0123456789abcdef0123456789abcdef")),
		UserID:      func(*http.Request) (string, error) { return "", nil },
		CallbackURL: "https://app.example/stepup/callback",
		Policies:    policies,
	})
	require.NoError(t, err)
	return g
}

func TestCheckRoutes(t *testing.T) {
	admin := func(c *gin.Context) { c.Status(http.StatusOK) }
	other := func(c *gin.Context) { c.Status(http.StatusAccepted) }
	getAdmin := []stepup.Policy{{Method: http.MethodGet, Route: "/admin", Action: "admin"}}
	tests := []struct {
		name     string
		policies []stepup.Policy
		routes   func(e *gin.Engine)
		expect   []string // nil: no error
	}{
		{"engine.Any under a GET policy", getAdmin,
			func(e *gin.Engine) { e.Any("/admin", admin) },
			[]string{"route /admin", "protected for GET, HEAD", "POST", "PUT", "DELETE", `use Method "*"`}},
		{"engine.Match under a GET policy", getAdmin,
			func(e *gin.Engine) { e.Match([]string{http.MethodGet, http.MethodPost}, "/admin", admin) },
			[]string{"route /admin", "protected for GET but registered for POST too"}},
		{"one function for two methods in a group", getAdmin,
			func(e *gin.Engine) { g := e.Group("/"); g.GET("/admin", admin); g.POST("/admin", admin) },
			[]string{"route /admin", "POST"}},
		{"a policy naming no route", []stepup.Policy{{Method: http.MethodPut, Route: "/profile", Action: "profile"}},
			func(e *gin.Engine) { e.POST("/profile", admin) },
			[]string{"policy PUT /profile: no such gin route"}},
		{"a policy in echo's or chi's syntax", []stepup.Policy{{Method: http.MethodDelete, Route: "/items/{id}", Action: "deleteItem"}},
			func(e *gin.Engine) { e.DELETE("/items/:id", admin) },
			[]string{"policy DELETE /items/{id}: no such gin route"}},
		{"engine.Any under a * policy", []stepup.Policy{{Method: "*", Route: "/admin", Action: "admin"}},
			func(e *gin.Engine) { e.Any("/admin", admin) }, nil},
		{"another handler for another method", getAdmin,
			func(e *gin.Engine) { e.GET("/admin", admin); e.POST("/admin", other) }, nil},
		{"two closures of one factory", getAdmin,
			func(e *gin.Engine) {
				e.GET("/admin", gin.WrapH(http.NotFoundHandler()))
				e.POST("/admin", gin.WrapH(http.NotFoundHandler()))
			}, nil},
		{"the same handler under another route", getAdmin,
			func(e *gin.Engine) { e.GET("/admin", admin); e.POST("/other", admin) },
			[]string{"protected at GET /admin but also registered at POST /other", "stepupgin.Require(guard, action)"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := newGuard(t, tc.policies)
			e := gin.New()
			e.Use(stepupgin.Middleware(g, e))
			tc.routes(e)
			e.GET("/stepup/callback", stepupgin.Callback(g, e))
			err := stepupgin.CheckRoutes(g, e)
			if tc.expect == nil {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			for _, want := range tc.expect {
				assert.Contains(t, err.Error(), want)
			}
		})
	}
}

// A Middleware whose guard declares no policies protects nothing, so it
// has nothing to be miswired for.
func TestGinMiddlewareWithoutPoliciesLetsEverythingThrough(t *testing.T) {
	g := newGuard(t, nil)
	e := gin.New()
	e.Use(stepupgin.Middleware(g, nil))
	e.GET("/profile", func(c *gin.Context) { c.String(http.StatusOK, "profile") })
	for path, want := range map[string]int{"/profile": http.StatusOK, "/missing": http.StatusNotFound} {
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		assert.Equal(t, want, rec.Code, path)
	}
}

// Without the engine the middleware cannot tell a method changed after
// routing from a route of that method, so at a protected pattern it
// refuses the methods no policy covers.
func TestGinMiddlewareWithoutEngineFailsClosed(t *testing.T) {
	g := newGuard(t, []stepup.Policy{{Method: http.MethodPost, Route: "/transfer", Action: "transfer"}})
	e := gin.New()
	e.Use(stepupgin.Middleware(g, nil))
	ran := false
	e.Any("/transfer", func(c *gin.Context) { ran = true })
	e.GET("/open", func(c *gin.Context) { c.Status(http.StatusOK) })
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, httptest.NewRequest(http.MethodPut, "/transfer", nil))
	assert.Equal(t, http.StatusInternalServerError, rec.Code)
	assert.False(t, ran)
	rec = httptest.NewRecorder()
	e.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/open", nil))
	assert.Equal(t, http.StatusOK, rec.Code, "patterns no policy covers pass")
}

type bank struct{ runs int }

func (b *bank) transfer(c *gin.Context) { b.runs++; c.Status(http.StatusOK) }

func healthz(c *gin.Context) { c.Status(http.StatusOK) }

// SECURITY.md threat 24: one handler protected under one route and
// registered under another where nothing protects it.
func TestCheckRoutesReportsAliases(t *testing.T) {
	apiTransfer := []stepup.Policy{{Method: http.MethodPost, Route: "/api/transfer", Action: "transfer"}}
	tests := []struct {
		name   string
		routes func(e *gin.Engine, g *stepup.Guard)
		expect []string // nil: no error
	}{
		{"a handler registered twice",
			func(e *gin.Engine, _ *stepup.Guard) {
				b := &bank{}
				e.POST("/api/transfer", b.transfer)
				e.POST("/api/v1/transfer", b.transfer)
			},
			[]string{"(*bank).transfer-fm is protected at POST /api/transfer but also registered at POST /api/v1/transfer"}},
		{"Require on one route, the handler open on another",
			func(e *gin.Engine, g *stepup.Guard) {
				b := &bank{}
				e.POST("/api/transfer", healthz)
				e.POST("/wire", stepupgin.Require(g, "wire"), b.transfer)
				e.POST("/v1/wire", b.transfer)
			},
			[]string{"protected at POST /wire but also registered at POST /v1/wire"}},
		{"Require under every route of the handler",
			func(e *gin.Engine, g *stepup.Guard) {
				b := &bank{}
				e.POST("/api/transfer", b.transfer)
				e.POST("/api/v1/transfer", stepupgin.Require(g, "transfer"), b.transfer)
			}, nil},
		{"handlers shared among open routes only",
			func(e *gin.Engine, _ *stepup.Guard) {
				e.POST("/api/transfer", (&bank{}).transfer)
				e.GET("/healthz", healthz)
				e.GET("/api/healthz", healthz)
				e.Static("/static", ".")
				e.Static("/assets", ".")
			}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := newGuard(t, apiTransfer)
			e := gin.New()
			require.NoError(t, stepupgin.Use(g, e))
			e.GET("/stepup/callback", stepupgin.Callback(g, e))
			tc.routes(e, g)
			err := stepupgin.CheckRoutes(g, e)
			if tc.expect == nil {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			for _, want := range tc.expect {
				assert.Contains(t, err.Error(), want)
			}
			assert.Contains(t, err.Error(), "put stepupgin.Require(guard, action) in the handler chain of each of its routes")
		})
	}
}

// Issue 19: gin gives a route only the middleware registered before it;
// Middleware added after the routes (or a group without it) protects
// nothing, and CheckRoutes says so.
func TestCheckRoutesReportsRoutesWithoutTheGuard(t *testing.T) {
	transfer := []stepup.Policy{{Method: http.MethodPost, Route: "/transfer", Action: "transfer"}}
	tests := []struct {
		name   string
		wire   func(e *gin.Engine, g *stepup.Guard, h gin.HandlerFunc)
		expect string // "": no error
	}{
		{"Middleware before the routes", func(e *gin.Engine, g *stepup.Guard, h gin.HandlerFunc) {
			e.Use(stepupgin.Middleware(g, e))
			e.POST("/transfer", h)
		}, ""},
		{"Middleware in the route's group", func(e *gin.Engine, g *stepup.Guard, h gin.HandlerFunc) {
			e.Group("/", stepupgin.Middleware(g, e)).POST("/transfer", h)
		}, ""},
		{"Require in the route's chain", func(e *gin.Engine, g *stepup.Guard, h gin.HandlerFunc) {
			e.POST("/transfer", stepupgin.Require(g, "transfer"), h)
		}, ""},
		{"Middleware after the routes", func(e *gin.Engine, g *stepup.Guard, h gin.HandlerFunc) {
			e.POST("/transfer", h)
			e.Use(stepupgin.Middleware(g, e))
		}, "route POST /transfer: a policy protects it, but neither stepupgin.Middleware nor stepupgin.Require is in its handler chain"},
		{"a group without it", func(e *gin.Engine, g *stepup.Guard, h gin.HandlerFunc) {
			e.Group("/admin", stepupgin.Middleware(g, e)).GET("/x", healthz)
			e.POST("/transfer", h)
		}, "route POST /transfer: a policy protects it"},
		{"no Middleware at all", func(e *gin.Engine, _ *stepup.Guard, h gin.HandlerFunc) {
			e.POST("/transfer", h)
		}, "add the guard with stepupgin.Use(guard, engine) before the routes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := newGuard(t, transfer)
			e := gin.New()
			b := &bank{}
			tc.wire(e, g, b.transfer)
			e.GET("/stepup/callback", stepupgin.Callback(g, e))
			err := stepupgin.CheckRoutes(g, e)
			if tc.expect == "" {
				require.NoError(t, err)
			} else {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.expect)
			}
			// What the check says is what a request meets: nobody is
			// logged in, so a guarded transfer is refused and an unguarded
			// one runs.
			rec := httptest.NewRecorder()
			e.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/transfer", nil))
			assert.Equal(t, tc.expect != "", b.runs == 1, "ran: %d (status %d)", b.runs, rec.Code)
		})
	}
}

// Use is the form that cannot come too late: it refuses an engine that
// already has a protected route, and guards the routes registered after it.
func TestUse(t *testing.T) {
	g := newGuard(t, []stepup.Policy{{Method: http.MethodPost, Route: "/transfer", Action: "transfer"}})
	late := gin.New()
	late.GET("/healthz", healthz)
	late.POST("/transfer", healthz)
	err := stepupgin.Use(g, late)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "POST /transfer registered before the guard's middleware")
	assert.Empty(t, late.Handlers, "nothing registered")

	e := gin.New()
	e.GET("/healthz", healthz) // no policy: may come first
	require.NoError(t, stepupgin.Use(g, e))
	e.POST("/transfer", (&bank{}).transfer)
	e.GET("/stepup/callback", stepupgin.Callback(g, e))
	assert.NoError(t, stepupgin.CheckRoutes(g, e))
}

// Issue 19: the user passes the challenge and lands on a 404 unless the
// callback is mounted at Config.CallbackURL's path.
func TestCheckRoutesReportsTheCallbackNotMounted(t *testing.T) {
	tests := []struct {
		name   string
		mount  func(e *gin.Engine, g *stepup.Guard)
		expect string // "": no error
	}{
		{"mounted", func(e *gin.Engine, g *stepup.Guard) { e.GET("/stepup/callback", stepupgin.Callback(g, e)) }, ""},
		{"in a group, with middleware", func(e *gin.Engine, g *stepup.Guard) {
			e.Group("/stepup", gin.Logger()).GET("/callback", stepupgin.Callback(g, e))
		}, ""},
		{"not mounted", func(*gin.Engine, *stepup.Guard) {}, "its path names no GET route"},
		{"for POST only", func(e *gin.Engine, g *stepup.Guard) { e.POST("/stepup/callback", stepupgin.Callback(g, e)) },
			"its path names no GET route"},
		{"the net/http callback, wrapped", func(e *gin.Engine, g *stepup.Guard) {
			e.GET("/stepup/callback", gin.WrapH(g.Callback(e)))
		}, "not stepupgin.Callback(guard, engine)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := newGuard(t, nil)
			e := gin.New()
			tc.mount(e, g)
			err := stepupgin.CheckRoutes(g, e)
			if tc.expect == "" {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), "stepupgin: Config.CallbackURL https://app.example/stepup/callback")
			assert.Contains(t, err.Error(), tc.expect)
		})
	}
}
