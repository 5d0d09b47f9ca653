package stepupgin_test

// The gin middleware's cost on requests no policy covers, against the same
// gin application with a middleware that does nothing, measured in the
// same run:
//
//	go test -run '^$' -bench . -benchmem ./adapters/stepupgin

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/stepupkit/stepup"
	"github.com/stepupkit/stepup/adapters/stepupgin"
	"github.com/stepupkit/stepup/stepuptest"
)

// benchGin builds the application with the guard's middleware, or with a
// middleware that does nothing.
func benchGin(b *testing.B, guarded bool) *gin.Engine {
	b.Helper()
	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	if guarded {
		g := newGuard(b, []stepup.Policy{
			{Method: http.MethodPost, Route: "/transfer", Action: "transfer"},
			{Method: http.MethodGet, Route: "/admin", Action: "admin"},
		})
		e.Use(stepupgin.Middleware(g, e))
	} else {
		e.Use(func(c *gin.Context) { c.Next() })
	}
	ok := func(c *gin.Context) { c.Status(http.StatusOK) }
	e.POST("/transfer", ok)
	e.GET("/admin", ok)
	e.PUT("/admin", ok) // open, beside the protected GET
	e.GET("/open", ok)
	e.GET("/users/:id", ok)
	return e
}

// BenchmarkGinUncoveredRoute: routes no policy covers, an open one, one
// with a parameter, and a protected pattern reached with another method,
// which is checked against gin's route table (cached) for a method changed
// after routing.
func BenchmarkGinUncoveredRoute(b *testing.B) {
	for _, tc := range []struct {
		name, method, target string
	}{
		{"static", http.MethodGet, "/open"},
		{"param", http.MethodGet, "/users/42"},
		{"protected_pattern_open_method", http.MethodPut, "/admin"},
	} {
		for _, guarded := range []bool{false, true} {
			name := tc.name + "/noop_middleware"
			if guarded {
				name = tc.name + "/stepupgin.Middleware"
			}
			b.Run(name, func(b *testing.B) {
				e := benchGin(b, guarded)
				u, _ := url.ParseRequestURI(tc.target)
				w := stepuptest.NewBenchWriter()
				b.ReportAllocs()
				for b.Loop() {
					req := &http.Request{Method: tc.method, URL: u, Header: http.Header{}, Host: "app.example", Body: http.NoBody}
					w.Reset()
					e.ServeHTTP(w, req)
					if w.Code != http.StatusOK {
						b.Fatalf("status %d", w.Code)
					}
				}
			})
		}
	}
}
