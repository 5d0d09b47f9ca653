package stepup_test

import (
	"bytes"
	"context"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/gorilla/sessions"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup"
	"github.com/stepupkit/stepup/authsignal"
	"github.com/stepupkit/stepup/authsignal/emulator"
	"github.com/stepupkit/stepup/stepuptest"
)

// fakeProvider is an in-process test double of Authsignal, shared by the
// tests and benchmarks of this package. Track answers state for an
// enrolled user unless unenrolled is set (with a
// challenge URL on authsignal.com, one of the default ChallengeOrigins,
// when the state is CHALLENGE_REQUIRED) and records what it was sent.
// Validate accepts tokens of the form "ok.<idempotencyKey>" for whatever
// user and action it is asked about: it is a provider that believes
// everything, so only tests that want a successful callback use it.
type fakeProvider struct {
	state      authsignal.State
	url        string   // challenge URL; default https://eu.authsignal.com/challenge?t=1
	unenrolled bool     // answer isEnrolled false: a user with no authenticator
	allowed    []string // track's allowedVerificationMethods
	method     string   // validate's verificationMethod

	mu     sync.Mutex
	tracks []authsignal.TrackRequest
	record bool // keep a copy of each track request (off in benchmarks)
}

func (p *fakeProvider) Track(_ context.Context, _, _ string, req authsignal.TrackRequest) (*authsignal.TrackResponse, error) {
	if p.record {
		p.mu.Lock()
		p.tracks = append(p.tracks, req)
		p.mu.Unlock()
	}
	resp := &authsignal.TrackResponse{State: p.state, IdempotencyKey: req.IdempotencyKey, IsEnrolled: !p.unenrolled,
		AllowedVerificationMethods: p.allowed}
	if p.state == authsignal.StateChallengeRequired || p.unenrolled { // the URL to enrol at
		resp.URL = p.url
		if resp.URL == "" {
			resp.URL = "https://eu.authsignal.com/challenge?t=1"
		}
	}
	return resp, nil
}

func (p *fakeProvider) Validate(_ context.Context, req authsignal.ValidateRequest) (*authsignal.ValidateResponse, error) {
	key, ok := strings.CutPrefix(req.Token, "ok.")
	if !ok {
		return &authsignal.ValidateResponse{State: authsignal.StateChallengeFailed}, nil
	}
	p.mu.Lock()
	method := p.method
	p.mu.Unlock()
	return &authsignal.ValidateResponse{IsValid: true, State: authsignal.StateChallengeSucceeded,
		UserID: req.UserID, Action: req.Action, IdempotencyKey: key, VerificationMethod: method}, nil
}

// tracked returns copies of the track requests received so far.
func (p *fakeProvider) tracked() []authsignal.TrackRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]authsignal.TrackRequest(nil), p.tracks...)
}

// validConfig is the smallest Config New accepts; each test breaks one
// thing in a copy of it.
func validConfig() stepup.Config {
	return stepup.Config{
		Provider:    &fakeProvider{state: authsignal.StateAllow},
		Sessions:    sessions.NewCookieStore([]byte("0123456789abcdef0123456789abcdef")),
		UserID:      func(*http.Request) (string, error) { return "alice", nil },
		CallbackURL: "https://app.example/stepup/callback",
	}
}

// guardedApp is the conformance application on a ServeMux behind
// guard.Middleware: the suite's policy table, every protected route
// registered with its method.
var guardedApp = muxAdapter(func(mux *http.ServeMux, _ *stepup.Guard, h stepuptest.Handlers) { guardedRoutes(mux, h) })

func guardedRoutes(mux *http.ServeMux, h stepuptest.Handlers) {
	mux.Handle("POST /transfer", h.Transfer)
	mux.Handle("POST /api/transfer", h.APITrans)
	mux.Handle("PUT /profile", h.Profile)
	mux.Handle("DELETE /items/{id}", h.DeleteItem)
	mux.Handle("GET /report", h.Report)
	mux.Handle("GET /admin", h.Admin)
	mux.Handle("/open", h.Open)
}

// challenged reports whether resp sends the browser to the emulator's
// challenge page.
func challenged(env *stepuptest.Env, resp *stepuptest.Response) bool {
	return resp.StatusCode == http.StatusSeeOther && strings.HasPrefix(resp.Header.Get("Location"), env.Emulator.URL+"/challenge")
}

// syncBuffer is a log sink safe for concurrent handlers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

func mustParse(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

// muxAdapter mounts login, logout and the routes that register adds on a
// ServeMux behind guard.Middleware, with the callback replaying through
// the whole application, as conformance_test.go does for the suite.
func muxAdapter(register func(mux *http.ServeMux, g *stepup.Guard, h stepuptest.Handlers)) stepuptest.Adapter {
	return stepuptest.Adapter{
		Name:  "servemux",
		Param: func(name string) string { return "{" + name + "}" },
		Mount: func(t testing.TB, g *stepup.Guard, h stepuptest.Handlers) http.Handler {
			mux := http.NewServeMux()
			mux.Handle("POST /login", h.Login)
			mux.Handle("POST /logout", h.Logout)
			mux.Handle("POST /signin", h.SignIn)
			root := g.Middleware(mux)
			mux.Handle("GET "+stepuptest.CallbackPath, g.Callback(root)) // before register, which may check the mux
			register(mux, g, h)
			return root
		},
	}
}

// attributeApp serves POST /pay/{acct} (form, handler "transfer") and
// POST /api/pay/{acct} (JSON, handler "apiTransfer") under the Authsignal
// action "transfer", which the emulator allows up to an amount of 1000.
var attributeApp = muxAdapter(func(mux *http.ServeMux, _ *stepup.Guard, h stepuptest.Handlers) {
	mux.Handle("POST /pay/{acct}", h.Transfer)
	mux.Handle("POST /api/pay/{acct}", h.APITrans)
})

// newPolicyEnv starts an environment whose guard runs policies.
func newPolicyEnv(t *testing.T, a stepuptest.Adapter, policies []stepup.Policy, more ...func(*stepup.Config)) *stepuptest.Env {
	t.Helper()
	return stepuptest.NewEnv(t, a, stepuptest.Options{Config: func(c *stepup.Config) {
		c.Policies = policies
		for _, f := range more {
			f(c)
		}
	}})
}

// trackOne sends one request and returns what Authsignal was told about
// it; exactly one action must have been tracked.
func trackOne(t *testing.T, env *stepuptest.Env, b *stepuptest.Browser, req request) (emulator.TrackedAction, *stepuptest.Response) {
	t.Helper()
	before := len(env.Emulator.Tracked())
	resp := b.Do(req.method, req.path, req.contentType, req.body, req.header)
	tracked := env.Emulator.Tracked()
	require.Len(t, tracked, before+1, "one track for %s %s (status %d %s)", req.method, req.path, resp.StatusCode, resp.Body)
	return tracked[len(tracked)-1], resp
}

type request struct {
	method, path, contentType, body string
	header                          http.Header
}
