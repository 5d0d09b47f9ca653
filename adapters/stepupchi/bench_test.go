package stepupchi_test

// The chi middleware's cost on requests no policy covers, against the same
// chi application with a middleware that does nothing in its place,
// measured in the same run:
//
//	go test -run '^$' -bench . -benchmem ./adapters/stepupchi

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/gorilla/sessions"

	"github.com/stepupkit/stepup"
	"github.com/stepupkit/stepup/adapters/stepupchi"
	"github.com/stepupkit/stepup/authsignal"
	"github.com/stepupkit/stepup/stepuptest"
)

// benchChi builds the application with the guard's table inline, or with a
// middleware that does nothing there.
func benchChi(b *testing.B, guarded bool) *chi.Mux {
	b.Helper()
	mw := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { next.ServeHTTP(w, r) })
	}
	if guarded {
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
		mw = stepupchi.Middleware(g)
	}
	ok := func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }
	r := chi.NewRouter()
	r.Group(func(r chi.Router) {
		r.Use(mw)
		r.Post("/transfer", ok)
		r.Get("/admin", ok)
		r.Put("/admin", ok) // open, beside the protected GET
		r.Get("/open", ok)
		r.Get("/users/{id}", ok)
		r.Get("/files/*", ok)
	})
	r.Route("/api", func(r chi.Router) { r.With(mw).Get("/users/{id}", ok) })
	return r
}

// BenchmarkChiUncoveredRoute: routes no policy covers, an open one, one
// with a parameter, a protected pattern reached with another method, a
// catch-all (whose route is looked up to tell it from a mount point) and a
// route of a mounted sub-router.
func BenchmarkChiUncoveredRoute(b *testing.B) {
	for _, tc := range []struct {
		name, method, target string
	}{
		{"static", http.MethodGet, "/open"},
		{"param", http.MethodGet, "/users/42"},
		{"protected_pattern_open_method", http.MethodPut, "/admin"},
		{"catch_all", http.MethodGet, "/files/a/b"},
		{"mounted", http.MethodGet, "/api/users/42"},
	} {
		for _, guarded := range []bool{false, true} {
			name := tc.name + "/noop_middleware"
			if guarded {
				name = tc.name + "/stepupchi.Middleware"
			}
			b.Run(name, func(b *testing.B) {
				r := benchChi(b, guarded)
				u, _ := url.ParseRequestURI(tc.target)
				w := stepuptest.NewBenchWriter()
				b.ReportAllocs()
				for b.Loop() {
					req := &http.Request{Method: tc.method, URL: u, Header: http.Header{}, Host: "app.example", Body: http.NoBody}
					w.Reset()
					r.ServeHTTP(w, req)
					if w.Code != http.StatusOK {
						b.Fatalf("status %d", w.Code)
					}
				}
			})
		}
	}
}
