package stepup_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/gorilla/sessions"
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
			[]string{"policy POST /wire names no route of the mux"}},
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
			cfg := validConfig()
			cfg.Policies = tc.policies
			g, err := stepup.New(cfg)
			require.NoError(t, err)
			mux := http.NewServeMux()
			for _, p := range tc.patterns {
				mux.Handle(p, http.NotFoundHandler())
			}
			mux.Handle("GET /stepup/callback", g.Callback(mux))
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
	mux.Handle("GET /stepup/callback", g.Callback(mux))
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
	mux.Handle("GET /stepup/callback", g.Callback(mux))
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

// guardServeMux mounts the conformance application on a stepup.ServeMux:
// the protected handlers wrapped when registered, checked at start-up.
var guardServeMux = stepuptest.Adapter{
	Name:  "stepup.ServeMux",
	Param: guardedApp.Param,
	Mount: func(t testing.TB, g *stepup.Guard, h stepuptest.Handlers) http.Handler {
		mux := g.NewServeMux()
		mux.Handle("POST /login", h.Login)
		mux.Handle("POST /logout", h.Logout)
		mux.Handle("POST /transfer", h.Transfer)
		mux.Handle("POST /api/transfer", h.APITrans)
		mux.Handle("PUT /profile", h.Profile)
		mux.Handle("DELETE /items/{id}", h.DeleteItem)
		mux.Handle("GET /report", h.Report)
		mux.Handle("GET /admin", h.Admin)
		mux.Handle("/open", h.Open)
		mux.Handle("POST /block", h.Block)
		mux.Handle("POST /review", h.Review)
		mux.Handle("GET "+stepuptest.CallbackPath, g.Callback(mux))
		require.NoError(t, mux.Check())
		return mux
	},
}

func TestConformanceGuardServeMux(t *testing.T) {
	stepuptest.Run(t, guardServeMux)
}

// A stepup.ServeMux wraps exactly the handlers of the routes the table
// names: an unprotected request never reaches the guard (no user lookup,
// no session, no store), a protected one is decided on the pattern the mux
// matched and the method it dispatched (HEAD by a GET policy, a method-less
// pattern per method), and Check reports a policy without its route.
func TestGuardServeMuxWrapsOnlyProtectedRoutes(t *testing.T) {
	var userCalls atomic.Int64
	cfg := validConfig()
	cfg.Provider = &fakeProvider{state: authsignal.StateBlock}
	cfg.UserID = func(*http.Request) (string, error) { userCalls.Add(1); return "alice", nil }
	cfg.Policies = []stepup.Policy{
		{Method: http.MethodPost, Route: "/transfer", Action: "transfer"},
		{Method: http.MethodGet, Route: "/report/{id}", Action: "report"},
		{Method: http.MethodDelete, Route: "/admin/", Action: "admin"},
		{Method: http.MethodPost, Route: "/missing", Action: "missing"},
	}
	g, err := stepup.New(cfg)
	require.NoError(t, err)
	mux := g.NewServeMux()
	served := map[string]int{}
	for _, p := range []string{"POST /transfer", "GET /transfer", "GET /report/{id}", "/admin/", "GET /open", "GET /users/{id}"} {
		mux.HandleFunc(p, func(w http.ResponseWriter, r *http.Request) { served[r.Method+" "+r.Pattern]++ })
	}
	err = mux.Check()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "/missing")

	for _, tc := range []struct {
		method, target string
		want           int
		user           bool // the guard ran
	}{
		{http.MethodGet, "/open", http.StatusOK, false},
		{http.MethodGet, "/users/42", http.StatusOK, false},
		{http.MethodGet, "/nowhere", http.StatusNotFound, false},
		{http.MethodGet, "/transfer", http.StatusOK, false}, // its own handler, no policy
		{http.MethodPost, "/transfer", http.StatusForbidden, true},
		{http.MethodGet, "/report/7", http.StatusForbidden, true},
		{http.MethodHead, "/report/7", http.StatusForbidden, true},
		{http.MethodDelete, "/admin/users/1", http.StatusForbidden, true},
		{http.MethodPost, "/admin/users/1", http.StatusOK, true}, // the wrapped handler, no policy for POST
		{http.MethodPost, "/./transfer", http.StatusTemporaryRedirect, false},
	} {
		t.Run(tc.method+" "+tc.target, func(t *testing.T) {
			before := userCalls.Load()
			w := httptest.NewRecorder()
			mux.ServeHTTP(w, httptest.NewRequest(tc.method, tc.target, strings.NewReader("a=1")))
			assert.Equal(t, tc.want, w.Code)
			if tc.user && tc.want == http.StatusForbidden {
				assert.Equal(t, before+1, userCalls.Load(), "decided by the guard")
			} else {
				assert.Equal(t, before, userCalls.Load(), "the guard decided nothing")
			}
		})
	}
	assert.Zero(t, served["POST POST /transfer"]+served["GET GET /report/{id}"]+served["DELETE /admin/"])
}

// Middleware's shortcut for requests that no protected pattern can match
// (by their first path segment) must not skip one that a pattern matches:
// a route whose first segment spells a '/' as %2F, as a ServeMux pattern
// may, or is a wildcard.
func TestMiddlewareShortcutNeverSkipsAProtectedRoute(t *testing.T) {
	for _, tc := range []struct {
		route   string
		targets []string
	}{
		{"/a%2Fb/x", []string{"/a%2Fb/x", "/a%2fb/x", "/%61%2Fb/x"}},
		{"/{tenant}/pay", []string{"/acme/pay", "/%61/pay"}},
	} {
		t.Run(tc.route, func(t *testing.T) {
			testShortcut(t, tc.route, tc.targets)
		})
	}
}

func testShortcut(t *testing.T, route string, targets []string) {
	cfg := validConfig()
	cfg.Provider = &fakeProvider{state: authsignal.StateBlock}
	cfg.Policies = []stepup.Policy{{Method: http.MethodPost, Route: route, Action: "pay"}, {Method: http.MethodPost, Route: "/other", Action: "other"}}
	g, err := stepup.New(cfg)
	require.NoError(t, err)
	ran := 0
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+route, func(http.ResponseWriter, *http.Request) { ran++ })
	mux.HandleFunc("POST /other", func(http.ResponseWriter, *http.Request) { ran++ })
	mux.Handle("GET /stepup/callback", g.Callback(g.Middleware(mux)))
	require.NoError(t, g.CheckServeMux(mux))
	for _, target := range targets {
		w := httptest.NewRecorder()
		g.Middleware(mux).ServeHTTP(w, httptest.NewRequest(http.MethodPost, target, strings.NewReader("a=1")))
		assert.Equal(t, http.StatusForbidden, w.Code, target)
	}
	assert.Zero(t, ran)
}

func ExampleGuard_NewServeMux() {
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
	mux := guard.NewServeMux()
	mux.HandleFunc("POST /transfer", func(http.ResponseWriter, *http.Request) {}) // wrapped: a policy names it
	mux.HandleFunc("GET /", func(w http.ResponseWriter, _ *http.Request) {        // as given: the guard never sees it
		fmt.Fprintln(w, "home")
	})
	mux.Handle("GET /stepup/callback", guard.Callback(mux))
	if err := mux.Check(); err != nil {
		panic(err) // a policy without its route protects nothing
	}

	w := httptest.NewRecorder()
	mux.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/", nil))
	fmt.Print(w.Body.String())
	// Output: home
}
