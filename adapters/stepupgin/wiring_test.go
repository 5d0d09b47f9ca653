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
		{"the same handler on another path is no concern", getAdmin,
			func(e *gin.Engine) { e.GET("/admin", admin); e.POST("/other", admin) }, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := newGuard(t, tc.policies)
			e := gin.New()
			e.Use(stepupgin.Middleware(g, e))
			tc.routes(e)
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
