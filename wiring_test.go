package stepup_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gorilla/sessions"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup"
	"github.com/stepupkit/stepup/authsignal"
)

type transferHandler struct{ runs int }

func (h *transferHandler) ServeHTTP(http.ResponseWriter, *http.Request) { h.runs++ }

type bank struct{ runs int }

func (b *bank) transfer(http.ResponseWriter, *http.Request) { b.runs++ }

func notFound(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) }

func blockingGuard(t *testing.T, policies ...stepup.Policy) *stepup.Guard {
	t.Helper()
	cfg := validConfig()
	cfg.Provider = &fakeProvider{state: authsignal.StateBlock}
	cfg.Policies = policies
	g, err := stepup.New(cfg)
	require.NoError(t, err)
	return g
}

// Threat 24: one handler registered under a protected pattern and under
// another that no policy names runs there without a step-up; Check
// reports it, and only it.
func TestServeMuxCheckReportsAliases(t *testing.T) {
	transfer := stepup.Policy{Method: http.MethodPost, Route: "/transfer", Action: "transfer"}
	tests := []struct {
		name     string
		register func(mux *stepup.ServeMux, g *stepup.Guard)
		expect   []string // nil: no error
	}{
		{"a handler value under a versioned alias",
			func(mux *stepup.ServeMux, _ *stepup.Guard) {
				h := &transferHandler{}
				mux.Handle("POST /transfer", h)
				mux.Handle("POST /v1/transfer", h)
			},
			[]string{"*stepup_test.transferHandler", "protected at POST /transfer", "registered at POST /v1/transfer", "Require"}},
		{"a method value written twice",
			func(mux *stepup.ServeMux, _ *stepup.Guard) {
				b := &bank{}
				mux.HandleFunc("POST /transfer", b.transfer)
				mux.HandleFunc("POST /api/v1/transfer", b.transfer)
			},
			[]string{"(*bank).transfer", "POST /api/v1/transfer"}},
		{"a top-level function under a method-less alias",
			func(mux *stepup.ServeMux, _ *stepup.Guard) {
				mux.HandleFunc("POST /transfer", notFound)
				mux.HandleFunc("/legacy/transfer", notFound)
			},
			[]string{"stepup_test.notFound", "/legacy/transfer"}},
		{"the same route for another method",
			func(mux *stepup.ServeMux, _ *stepup.Guard) {
				h := &transferHandler{}
				mux.Handle("POST /transfer", h)
				mux.Handle("PUT /transfer", h)
			},
			[]string{"registered at PUT /transfer"}},
		{"a shared handler among open routes only",
			func(mux *stepup.ServeMux, _ *stepup.Guard) {
				mux.Handle("POST /transfer", &transferHandler{})
				mux.HandleFunc("GET /missing", notFound)
				mux.HandleFunc("GET /gone", notFound)
				files := http.FileServer(http.Dir("."))
				mux.Handle("GET /static/", files)
				mux.Handle("GET /assets/", files)
			}, nil},
		{"one wrapper around different handlers",
			func(mux *stepup.ServeMux, _ *stepup.Guard) {
				mux.Handle("POST /transfer", logging(&transferHandler{}))
				mux.Handle("POST /other", logging(&transferHandler{}))
			}, nil},
		{"two receivers of one method",
			func(mux *stepup.ServeMux, _ *stepup.Guard) {
				mux.HandleFunc("POST /transfer", (&bank{}).transfer)
				mux.HandleFunc("POST /v1/transfer", (&bank{}).transfer)
			}, nil},
		{"a handler protected by Require wherever it is mounted",
			func(mux *stepup.ServeMux, g *stepup.Guard) {
				h := g.Require("transfer")(&transferHandler{})
				mux.Handle("POST /v1/transfer", h)
				mux.Handle("POST /v2/transfer", h)
				mux.Handle("POST /transfer", h)
			}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := blockingGuard(t, transfer)
			mux := g.NewServeMux()
			mux.Handle("GET /stepup/callback", g.Callback(mux))
			tc.register(mux, g)
			err := mux.Check()
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

// The alias Check reports is a real open door: the protected pattern
// blocks, the alias runs the handler.
func TestServeMuxAliasRunsUnchallenged(t *testing.T) {
	g := blockingGuard(t, stepup.Policy{Method: http.MethodPost, Route: "/transfer", Action: "transfer"})
	mux := g.NewServeMux()
	mux.Handle("GET /stepup/callback", g.Callback(mux))
	h := &transferHandler{}
	mux.Handle("POST /transfer", h)
	mux.Handle("POST /v1/transfer", h)
	for _, target := range []string{"/transfer", "/v1/transfer"} {
		mux.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, target, strings.NewReader("a=1")))
	}
	assert.Equal(t, 1, h.runs, "run once, under the alias")
	assert.ErrorContains(t, mux.Check(), "registered at POST /v1/transfer")
}

// Issue 19: the user passes the challenge and lands on a 404 unless the
// path of CallbackURL reaches the guard's callback; every check says so.
func TestChecksReportTheCallbackNotMounted(t *testing.T) {
	transfer := stepup.Policy{Method: http.MethodPost, Route: "/transfer", Action: "transfer"}
	tests := []struct {
		name   string
		mount  func(mux interface{ Handle(string, http.Handler) }, g, other *stepup.Guard, root http.Handler)
		expect string // "": no error
	}{
		{"mounted", func(mux interface{ Handle(string, http.Handler) }, g, _ *stepup.Guard, root http.Handler) {
			mux.Handle("GET /stepup/callback", g.Callback(root))
		}, ""},
		{"mounted for every method", func(mux interface{ Handle(string, http.Handler) }, g, _ *stepup.Guard, root http.Handler) {
			mux.Handle("/stepup/callback", g.Callback(root))
		}, ""},
		{"mounted as a method value", func(mux interface{ Handle(string, http.Handler) }, g, _ *stepup.Guard, root http.Handler) {
			mux.Handle("GET /stepup/callback", http.HandlerFunc(g.Callback(root).ServeHTTP))
		}, ""},
		{"not mounted", func(interface{ Handle(string, http.Handler) }, *stepup.Guard, *stepup.Guard, http.Handler) {},
			"its path names no route of the mux"},
		{"mounted at another path", func(mux interface{ Handle(string, http.Handler) }, g, _ *stepup.Guard, root http.Handler) {
			mux.Handle("GET /stepup/callback/", g.Callback(root))
		}, `routes it to "GET /stepup/callback/"`},
		{"only for POST", func(mux interface{ Handle(string, http.Handler) }, g, _ *stepup.Guard, root http.Handler) {
			mux.Handle("POST /stepup/callback", g.Callback(root))
		}, "names no route of the mux"},
		{"a catch-all there", func(mux interface{ Handle(string, http.Handler) }, _, _ *stepup.Guard, _ http.Handler) {
			mux.Handle("GET /", http.NotFoundHandler())
		}, "not guard.Callback"},
		{"inside a wrapper", func(mux interface{ Handle(string, http.Handler) }, g, _ *stepup.Guard, root http.Handler) {
			mux.Handle("GET /stepup/callback", logging(g.Callback(root)))
		}, "not guard.Callback"},
		{"another guard's", func(mux interface{ Handle(string, http.Handler) }, _, other *stepup.Guard, root http.Handler) {
			mux.Handle("GET /stepup/callback", other.Callback(root))
		}, "the callback of another guard"},
	}
	for _, tc := range tests {
		for _, check := range []string{"CheckServeMux", "ServeMux.Check"} {
			t.Run(check+"/"+tc.name, func(t *testing.T) {
				g, other := blockingGuard(t, transfer), blockingGuard(t, transfer)
				var err error
				if check == "CheckServeMux" {
					mux := http.NewServeMux()
					mux.Handle("POST /transfer", &transferHandler{})
					tc.mount(mux, g, other, g.Middleware(mux))
					err = g.CheckServeMux(mux)
				} else {
					mux := g.NewServeMux()
					mux.Handle("POST /transfer", &transferHandler{})
					tc.mount(mux, g, other, mux)
					err = mux.Check()
				}
				if tc.expect == "" {
					assert.NoError(t, err)
					return
				}
				require.Error(t, err)
				assert.Contains(t, err.Error(), "Config.CallbackURL https://app.example/stepup/callback")
				assert.Contains(t, err.Error(), tc.expect)
			})
		}
	}
}

// A typo in a policy's route names the route that does not exist.
func TestCheckServeMuxNamesATypoedRoute(t *testing.T) {
	g := blockingGuard(t, stepup.Policy{Method: http.MethodPost, Route: "/trasnfer", Action: "transfer"})
	mux := g.NewServeMux()
	mux.Handle("POST /transfer", &transferHandler{})
	mux.Handle("GET /stepup/callback", g.Callback(mux))
	assert.EqualError(t, mux.Check(), "stepup: policy POST /trasnfer names no route of the mux")
}

// Check reports a protected handler that a second pattern serves without
// a step-up.
func ExampleServeMux_Check() {
	guard, err := stepup.New(stepup.Config{
		Provider:    authsignal.NewClient("secret"),
		Sessions:    sessions.NewCookieStore([]byte("0123456789abcdef0123456789abcdef")),
		UserID:      func(*http.Request) (string, error) { return "alice", nil },
		CallbackURL: "https://app.example/stepup/callback",
		Policies:    []stepup.Policy{{Method: http.MethodPost, Route: "/transfer", Action: "transfer"}},
	})
	if err != nil {
		panic(err)
	}
	transfer := &transferHandler{}
	mux := guard.NewServeMux()
	mux.Handle("POST /transfer", transfer)
	mux.Handle("POST /v1/transfer", transfer) // the alias: no policy names it
	mux.Handle("GET /stepup/callback", guard.Callback(mux))
	fmt.Println(mux.Check())
	// Output: stepup: handler *stepup_test.transferHandler is protected at POST /transfer but also registered at POST /v1/transfer, where it runs without a step-up: register it only under the protected route or, to serve it under several routes, protect the handler itself with guard.Require(action)(handler), which protects it wherever it is mounted
}
