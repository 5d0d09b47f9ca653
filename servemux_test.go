package stepup_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup"
	"github.com/stepupkit/stepup/authsignal"
	"github.com/stepupkit/stepup/stepuptest"
)

func TestCheckServeMux(t *testing.T) {
	tests := []struct {
		name     string
		patterns []string
		policies []stepup.Policy
		expect   []string // nil: no error
	}{
		{"every policy on a method pattern",
			[]string{"POST /transfer", "DELETE /items/{id}", "GET /report", "/open"},
			[]stepup.Policy{
				{Method: "POST", Route: "/transfer", Action: "transfer"},
				{Method: "DELETE", Route: "/items/{id}", Action: "deleteItem"},
				{Method: "GET", Route: "/report", Action: "report"},
			}, nil},
		{"* policy on a method-less pattern",
			[]string{"/admin/", "/transfer"},
			[]stepup.Policy{{Method: "*", Route: "/admin/", Action: "admin"}, {Method: "*", Route: "/transfer", Action: "transfer"}}, nil},
		{"host-less pattern with a host in the mux too",
			[]string{"POST /transfer", "POST admin.example/transfer"},
			[]stepup.Policy{{Method: "POST", Route: "/transfer", Action: "transfer"}}, nil},
		{"method policy on a method-less pattern",
			[]string{"/transfer"},
			[]stepup.Policy{{Method: "POST", Route: "/transfer", Action: "transfer"}},
			[]string{"policy POST /transfer", `"/transfer"`, "every method"}},
		{"route the mux does not have",
			[]string{"POST /transfer"},
			[]stepup.Policy{{Method: "POST", Route: "/wire", Action: "wire"}},
			[]string{"policy POST /wire", `routes it to ""`}},
		{"method the mux does not serve there",
			[]string{"POST /profile"},
			[]stepup.Policy{{Method: "PUT", Route: "/profile", Action: "profile"}},
			[]string{"policy PUT /profile"}},
		{"wildcard named differently",
			[]string{"DELETE /items/{itemID}"},
			[]stepup.Policy{{Method: "DELETE", Route: "/items/{id}", Action: "deleteItem"}},
			[]string{"policy DELETE /items/{id}", `"DELETE /items/{itemID}"`}},
		{"route inside a subtree pattern",
			[]string{"GET /admin/"},
			[]stepup.Policy{{Method: "GET", Route: "/admin/users", Action: "admin"}},
			[]string{"policy GET /admin/users", `"GET /admin/"`}},
		{"echo syntax on a ServeMux",
			[]string{"DELETE /items/{id}"},
			[]stepup.Policy{{Method: "DELETE", Route: "/items/:id", Action: "deleteItem"}},
			[]string{"policy DELETE /items/:id"}},
		{"trailing slash differs",
			[]string{"POST /transfer/"},
			[]stepup.Policy{{Method: "POST", Route: "/transfer", Action: "transfer"}},
			[]string{"policy POST /transfer"}},
		{"every mistake is reported",
			[]string{"/transfer", "GET /report"},
			[]stepup.Policy{
				{Method: "POST", Route: "/transfer", Action: "transfer"},
				{Method: "GET", Route: "/report", Action: "report"},
				{Method: "POST", Route: "/wire", Action: "wire"},
			},
			[]string{"policy POST /transfer", "policy POST /wire"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mux := http.NewServeMux()
			for _, p := range tc.patterns {
				mux.Handle(p, http.NotFoundHandler())
			}
			cfg := validConfig()
			cfg.Policies = tc.policies
			g, err := stepup.New(cfg)
			require.NoError(t, err)
			err = g.CheckServeMux(mux)
			if tc.expect == nil {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			for _, want := range tc.expect {
				assert.Contains(t, err.Error(), want)
			}
			assert.NotContains(t, err.Error(), "policy GET /report", "a good policy is not reported")
		})
	}
}

func TestRegressionCheckServeMuxFalsePositiveForStarPolicyOnMethodPattern(t *testing.T) {
	mux := http.NewServeMux()
	mux.Handle("POST /transfer", http.NotFoundHandler())
	cfg := validConfig()
	cfg.Provider = &fakeProvider{state: authsignal.StateBlock}
	cfg.Policies = []stepup.Policy{{Method: "*", Route: "/transfer", Action: "transfer"}}
	g, err := stepup.New(cfg)
	require.NoError(t, err)
	rec := httptest.NewRecorder()
	g.Middleware(mux).ServeHTTP(rec, httptest.NewRequest("POST", "/transfer", strings.NewReader("")))
	require.Equal(t, http.StatusForbidden, rec.Code, "the policy does protect POST /transfer")
	assert.NoError(t, g.CheckServeMux(mux), "yet CheckServeMux reports it")
}

func TestRegressionHeadPolicyOnGetPatternIsDeadAndUnreported(t *testing.T) {
	mux := http.NewServeMux()
	served := 0
	mux.HandleFunc("GET /report", func(http.ResponseWriter, *http.Request) { served++ })
	cfg := validConfig()
	cfg.Provider = &fakeProvider{state: authsignal.StateBlock}
	cfg.Policies = []stepup.Policy{{Method: "HEAD", Route: "/report", Action: "report"}}
	g, err := stepup.New(cfg)
	require.NoError(t, err)
	rec := httptest.NewRecorder()
	g.Middleware(mux).ServeHTTP(rec, httptest.NewRequest("HEAD", "/report", nil))
	assert.Zero(t, served, "HEAD /report ran past a HEAD policy whose provider blocks everything (status %d)", rec.Code)
	assert.NoError(t, g.CheckServeMux(mux), "the GET pattern serves HEAD, and the HEAD policy now applies")
}

func TestRegressionPathAttributeMissingUnderMiddleware(t *testing.T) {
	env := newPolicyEnv(t, attributeApp, []stepup.Policy{{Method: http.MethodPost, Route: "/pay/{acct}", Action: "transfer",
		Attributes: []stepup.Attribute{{Name: "acct", From: stepup.FromPath, Key: "acct"}}}})
	b := env.NewBrowser()
	b.Login("alice")
	got, resp := trackOne(t, env, b, request{http.MethodPost, "/pay/acc-7", stepuptest.Form, "amount=5", nil})
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, map[string]any{"acct": "acc-7"}, got.Custom)
}

// wiredApp is a guard whose provider blocks every tracked action, so a
// protected handler can only run if the guard never decided, and which
// records the refusals it writes.
type wiredApp struct {
	guard    *stepup.Guard
	provider *fakeProvider
	logs     syncBuffer

	mu      sync.Mutex
	refused []error
	ran     map[string]int
}

func newWiredApp(t *testing.T, policies []stepup.Policy) *wiredApp {
	t.Helper()
	a := &wiredApp{provider: &fakeProvider{state: authsignal.StateBlock, record: true}, ran: map[string]int{}}
	cfg := validConfig()
	cfg.Provider = a.provider
	cfg.Policies = policies
	cfg.Logger = slog.New(slog.NewTextHandler(&a.logs, nil))
	cfg.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
		a.mu.Lock()
		a.refused = append(a.refused, err)
		a.mu.Unlock()
		var e *stepup.Error
		if errors.As(err, &e) {
			stepup.WriteError(w, r, e, true)
		}
	}
	g, err := stepup.New(cfg)
	require.NoError(t, err)
	a.guard = g
	return a
}

// handler counts its runs under name.
func (a *wiredApp) handler(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		a.mu.Lock()
		a.ran[name]++
		a.mu.Unlock()
		_, _ = io.WriteString(w, name)
	})
}

func (a *wiredApp) runs(name string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.ran[name]
}

func (a *wiredApp) refusals() []error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]error(nil), a.refused...)
}

// do sends one request to srv and returns the status and body.
func do(t *testing.T, srv *httptest.Server, method, path, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, srv.URL+path, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(data)
}

// logging stands for any middleware that is not a router: it hides the
// mux's Handler method from the guard.
func logging(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { next.ServeHTTP(w, r) })
}

var transferPolicy = []stepup.Policy{{Method: http.MethodPost, Route: "/transfer", Action: "transfer"}}

func TestWiringGuardInFrontOfANonRouterFailsClosed(t *testing.T) {
	a := newWiredApp(t, transferPolicy)
	mux := http.NewServeMux()
	mux.Handle("POST /transfer", a.handler("transfer"))
	mux.Handle("GET /open", a.handler("open"))
	srv := httptest.NewServer(a.guard.Middleware(logging(mux)))
	defer srv.Close()

	for _, req := range [][2]string{{http.MethodPost, "/transfer"}, {http.MethodGet, "/open"}, {http.MethodGet, "/nowhere"}} {
		status, body := do(t, srv, req[0], req[1], "amount=5000")
		assert.Equal(t, http.StatusInternalServerError, status, "%s %s", req[0], req[1])
		assert.Contains(t, body, `"misconfigured"`)
	}
	assert.Zero(t, a.runs("transfer"), "the protected handler ran without a decision")
	assert.Zero(t, a.runs("open"), "the guard cannot tell an open route from a protected one")
	assert.Empty(t, a.provider.tracked())

	refused := a.refusals()
	require.Len(t, refused, 3)
	assert.ErrorIs(t, refused[0], stepup.ErrMisconfigured)
	assert.Contains(t, a.logs.String(), "guard.Middleware(mux)", "the log says how to fix the wiring")
}

func TestWiringGuardInFrontOfTheRouterStillWorks(t *testing.T) {
	tests := []struct {
		name         string
		given        func(a *wiredApp) http.Handler
		when         [2]string // method, path
		expectStatus int
		expectRun    string // the handler that must have run, "" for none
	}{
		{"the mux's own 404 passes through",
			func(a *wiredApp) http.Handler {
				mux := http.NewServeMux()
				mux.Handle("POST /transfer", a.handler("transfer"))
				return a.guard.Middleware(mux)
			},
			[2]string{http.MethodGet, "/nowhere"}, http.StatusNotFound, ""},
		{"the mux's own 405 passes through",
			func(a *wiredApp) http.Handler {
				mux := http.NewServeMux()
				mux.Handle("POST /transfer", a.handler("transfer"))
				return a.guard.Middleware(mux)
			},
			[2]string{http.MethodGet, "/transfer"}, http.StatusMethodNotAllowed, ""},
		{"a protected route behind the mux is decided",
			func(a *wiredApp) http.Handler {
				mux := http.NewServeMux()
				mux.Handle("POST /transfer", a.handler("transfer"))
				return logging(a.guard.Middleware(mux))
			},
			[2]string{http.MethodPost, "/transfer"}, http.StatusForbidden, ""},
		{"per route: a mux in front sets the pattern, a protected route is decided",
			func(a *wiredApp) http.Handler {
				mux := http.NewServeMux()
				mux.Handle("POST /transfer", a.guard.Middleware(a.handler("transfer")))
				return mux
			},
			[2]string{http.MethodPost, "/transfer"}, http.StatusForbidden, ""},
		{"per route: a mux in front sets the pattern, an open route passes",
			func(a *wiredApp) http.Handler {
				mux := http.NewServeMux()
				mux.Handle("GET /open", a.guard.Middleware(a.handler("open")))
				return mux
			},
			[2]string{http.MethodGet, "/open"}, http.StatusOK, "open"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := newWiredApp(t, transferPolicy)
			srv := httptest.NewServer(tc.given(a))
			defer srv.Close()
			status, _ := do(t, srv, tc.when[0], tc.when[1], "amount=5000")
			assert.Equal(t, tc.expectStatus, status)
			assert.Zero(t, a.runs("transfer"))
			if tc.expectRun != "" {
				assert.Equal(t, 1, a.runs(tc.expectRun))
			}
			for _, err := range a.refusals() {
				assert.NotErrorIs(t, err, stepup.ErrMisconfigured)
			}
		})
	}
}

func TestWiringEmptyTableNeverRefuses(t *testing.T) {
	// Require-only applications have no table: Middleware then has nothing
	// to decide and must not refuse, whatever it wraps.
	a := newWiredApp(t, nil)
	mux := http.NewServeMux()
	mux.Handle("GET /open", a.handler("open"))
	srv := httptest.NewServer(a.guard.Middleware(logging(mux)))
	defer srv.Close()
	status, _ := do(t, srv, http.MethodGet, "/open", "")
	assert.Equal(t, http.StatusOK, status)
	assert.Equal(t, 1, a.runs("open"))
}

// Middleware finds the rule from the mux's own pattern for every shape of
// pattern: the root ("/{$}"), a subtree ("/files/"), and one bound to a
// host ("app.example/transfer"). A mistake in cleaning or splitting the
// pattern would let these routes through unchallenged.
func TestMiddlewareProtectsRootSubtreeAndHostPatterns(t *testing.T) {
	app := muxAdapter(func(mux *http.ServeMux, _ *stepup.Guard, h stepuptest.Handlers) {
		mux.Handle("GET /{$}", h.Report)
		mux.Handle("GET /files/", h.Admin)
		mux.Handle("POST app.example/transfer", h.Transfer)
	})
	env := newPolicyEnv(t, app, []stepup.Policy{
		{Method: http.MethodGet, Route: "/{$}", Action: "report"},
		{Method: http.MethodGet, Route: "/files/", Action: "report"},
		{Method: http.MethodPost, Route: "/transfer", Action: "transfer",
			Attributes: []stepup.Attribute{{Name: "amount", From: stepup.FromForm, Key: "amount", Type: stepup.TypeNumber}}},
	})
	b := env.NewBrowser()
	b.Login("alice")
	for _, target := range []string{"/", "/files/", "/files/a/b"} {
		b.Challenge(b.Get(target))
	}
	req, err := http.NewRequest(http.MethodPost, env.Server.URL+"/transfer", strings.NewReader("amount=5000"))
	require.NoError(t, err)
	req.Host = "app.example"
	for _, c := range b.Jar.Cookies(mustParse(env.Server.URL)) {
		req.AddCookie(c) // the client's jar goes by req.Host
	}
	req.Header.Set("Content-Type", stepuptest.Form)
	req.Header.Set("Accept", "text/html")
	b.Challenge(b.Send(req))
	assert.Empty(t, env.Ledger.Runs(""), "nothing ran unchallenged")
}
