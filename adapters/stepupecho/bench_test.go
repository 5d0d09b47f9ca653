package stepupecho_test

// The echo middleware's cost on requests no policy covers, against the
// same echo application with a middleware that does nothing, measured in
// the same run, on a fresh request per iteration:
//
//	go test -run '^$' -bench . -benchmem -count 6 ./adapters/stepupecho

import (
	"context"
	"net/http"
	"net/url"
	"testing"

	"github.com/gorilla/sessions"
	"github.com/labstack/echo/v4"

	"github.com/stepupkit/stepup"
	stepupecho "github.com/stepupkit/stepup/adapters/stepupecho"
	"github.com/stepupkit/stepup/authsignal"
	"github.com/stepupkit/stepup/stepuptest"
)

// benchEcho builds the application with the guard's middleware, or with a
// middleware that does nothing: echo allocates each middleware's closure
// per request, so that is the baseline.
func benchEcho(b *testing.B, guarded bool) *echo.Echo {
	b.Helper()
	e := echo.New()
	if !guarded {
		e.Use(func(next echo.HandlerFunc) echo.HandlerFunc { return func(c echo.Context) error { return next(c) } })
	} else {
		g, err := stepup.New(stepup.Config{
			Provider:    authsignal.NewClient("unused", authsignal.WithBaseURL("http://127.0.0.1:1")), // never called
			Sessions:    sessions.NewCookieStore([]byte("fedcba9876543210fedcba9876543210")),
			UserID:      func(*http.Request) (string, error) { return "alice", nil },
			CallbackURL: "https://app.example/stepup/callback",
			Policies: []stepup.Policy{
				{Method: http.MethodPost, Route: "/transfer", Action: "transfer"},
				{Method: http.MethodGet, Route: "/admin", Action: "admin"},
			},
		})
		if err != nil {
			b.Fatal(err)
		}
		e.Use(stepupecho.Middleware(g))
	}
	ok := func(c echo.Context) error { return c.NoContent(http.StatusOK) }
	e.POST("/transfer", ok)
	e.GET("/admin", ok)
	e.PUT("/admin", ok) // open, beside the protected GET
	e.GET("/open", ok)
	e.GET("/users/:id", ok)
	return e
}

// BenchmarkEchoUncoveredRoute: routes no policy covers, an open one, one
// with a parameter, and a protected pattern reached with another method,
// which is checked for a method changed after routing: echo's 405, and an
// open route of that method (routed again on a pooled context).
func BenchmarkEchoUncoveredRoute(b *testing.B) {
	for _, tc := range []struct {
		name, method, target string
		want                 int
	}{
		{"static", http.MethodGet, "/open", http.StatusOK},
		{"param", http.MethodGet, "/users/42", http.StatusOK},
		{"protected_pattern_405", http.MethodGet, "/transfer", http.StatusMethodNotAllowed},
		{"protected_pattern_open_method", http.MethodPut, "/admin", http.StatusOK},
	} {
		for _, guarded := range []bool{false, true} {
			name := tc.name + "/noop_middleware"
			if guarded {
				name = tc.name + "/stepupecho.Middleware"
			}
			b.Run(name, func(b *testing.B) {
				e := benchEcho(b, guarded)
				w := stepuptest.NewBenchWriter()
				u, _ := url.ParseRequestURI(tc.target)
				tmpl := &http.Request{Method: tc.method, URL: u, Header: http.Header{}, Host: "app.example", Body: http.NoBody}
				tmpl = tmpl.WithContext(context.Background())
				b.ReportAllocs()
				for b.Loop() {
					w.Reset()
					// A fresh request per iteration (one allocation, in
					// both cases): nothing cached in a previous one's
					// context is seen.
					r := new(http.Request)
					*r = *tmpl
					e.ServeHTTP(w, r)
					if w.Code != tc.want {
						b.Fatalf("status %d, want %d", w.Code, tc.want)
					}
				}
			})
		}
	}
}
