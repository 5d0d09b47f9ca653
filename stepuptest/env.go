// Package stepuptest holds the end-to-end conformance suite that every
// stepup adapter and every Store runs, and the helpers it is built from: an
// application with recording handlers, the Authsignal emulator, a fake
// clock, and a cookie-jar browser that stops at every redirect.
//
// An adapter runs the flows with
//
//	stepuptest.Run(t, stepuptest.Adapter{Name: "echo", Param: ..., Mount: ...})
//
// and a Store with
//
//	stepuptest.RunStore(t, func(now func() time.Time) stepup.Store { ... })
package stepuptest

import (
	"context"
	"crypto/rand"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/sessions"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup"
	"github.com/stepupkit/stepup/authsignal"
	"github.com/stepupkit/stepup/authsignal/emulator"
)

// Clock is a fake clock shared by the guard, the store and the emulator.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a clock at a fixed instant.
func NewClock() *Clock { return &Clock{now: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// Execution is one run of an application handler.
type Execution struct {
	Name    string // handler name, e.g. "transfer"
	Method  string
	Path    string
	Query   string
	Body    []byte
	Header  http.Header
	User    string
	How     string // stepup.Verification.How, "" when unprotected
	Remote  string
	Cookies int
	// ContentLength is the request's declared length.
	ContentLength int64
	// Attributes are stepup.Verification.Attributes: what the rules judged.
	Attributes map[string]any
}

// Ledger records handler executions.
type Ledger struct {
	mu   sync.Mutex
	runs []Execution
}

func (l *Ledger) add(e Execution) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.runs = append(l.runs, e)
}

// Runs returns the executions of the named handler ("" for all).
func (l *Ledger) Runs(name string) []Execution {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []Execution
	for _, r := range l.runs {
		if name == "" || r.Name == name {
			out = append(out, r)
		}
	}
	return out
}

// Handlers are the application's handlers; an adapter mounts them on its
// router at the documented routes.
type Handlers struct {
	Login      http.Handler // POST /login, form user=<id>; GET /login shows a page
	Logout     http.Handler // POST /logout
	Transfer   http.Handler // POST /transfer (form: amount, to)         action "transfer"
	APITrans   http.Handler // POST /api/transfer (JSON {amount, to})    action "transfer"
	Profile    http.Handler // PUT /profile                              action "profile"
	DeleteItem http.Handler // DELETE /items/{id}                        action "deleteItem"
	Report     http.Handler // GET /report                               action "report"
	Admin      http.Handler // GET /admin                                action "admin", remember 5m
	Block      http.Handler // POST /block                               action "blocked"
	Review     http.Handler // POST /review                              action "wire"
	Open       http.Handler // any method /open                          unprotected
	// SignIn is POST /signin, form user=<id>&password=<Password>: the
	// first factor, then guard.SignIn (action "signIn"). Unprotected.
	SignIn http.Handler
}

// Password is the first factor the SignIn handler accepts for every user.
const Password = "correct horse battery staple"

// SignInNext is Config.SignIn.Next in every Env.
const SignInNext = "/home"

// Adapter is how a router plugs into the suite.
type Adapter struct {
	Name string
	// Param writes a path parameter as the router's patterns do: ":id" for
	// echo, "{id}" for a ServeMux.
	Param func(name string) string
	// Mount builds the application: the Handlers at their routes behind the
	// guard (its policy table, or Require per route), and the guard's
	// callback at CallbackPath replaying through the whole application.
	Mount func(t testing.TB, g *stepup.Guard, h Handlers) http.Handler
	// Config, when set, changes the guard's configuration of every Env of
	// the adapter before Options.Config does: the suite then runs against
	// a variant of the guard (one sealing its cookie with CookieKeys, say).
	Config func(*stepup.Config)
}

// CallbackPath is where adapters mount the callback.
const CallbackPath = "/stepup/callback"

// Policies is the suite's policy table in the adapter's pattern syntax.
func (a Adapter) Policies() []stepup.Policy {
	return []stepup.Policy{
		{Method: http.MethodPost, Route: "/transfer", Action: "transfer",
			Attributes: []stepup.Attribute{{Name: "amount", From: stepup.FromForm, Key: "amount", Type: "number"}}},
		{Method: http.MethodPost, Route: "/api/transfer", Action: "transfer",
			Attributes: []stepup.Attribute{{Name: "amount", From: stepup.FromJSON, Key: "amount", Type: "number"}}},
		{Method: http.MethodPut, Route: "/profile", Action: "profile"},
		{Method: http.MethodDelete, Route: "/items/" + a.Param("id"), Action: "deleteItem",
			Attributes: []stepup.Attribute{{Name: "item", From: stepup.FromPath, Key: "id"}}},
		{Method: http.MethodGet, Route: "/report", Action: "report"},
		{Method: http.MethodGet, Route: "/admin", Action: "admin", Remember: 5 * time.Minute},
		{Method: http.MethodPost, Route: "/block", Action: "blocked"},
		{Method: http.MethodPost, Route: "/review", Action: "wire"},
	}
}

// Rules are the emulator rules the suite runs with.
const Rules = `
defaultState: CHALLENGE_REQUIRED
actions:
  transfer:
    default: ALLOW
    rules:
      - id: large-transfer
        when: {field: custom.amount, op: gt, value: 1000}
        state: CHALLENGE_REQUIRED
  blocked: {default: BLOCK}
  wire: {default: REVIEW_REQUIRED}
  signIn:
    default: ALLOW
    rules:
      - id: blocked-agent
        when: {field: userAgent, op: eq, value: blocked}
        state: BLOCK
      - id: review-agent
        when: {field: userAgent, op: eq, value: review}
        state: REVIEW_REQUIRED
      - id: trusted-agent
        when: {field: userAgent, op: eq, value: trusted}
        state: ALLOW
      - id: new-device
        when: {field: deviceId, op: unknown}
        state: CHALLENGE_REQUIRED
`

// Env is one running end-to-end environment.
type Env struct {
	T        testing.TB
	Clock    *Clock
	Emulator *emulator.Server
	Client   *authsignal.Client
	Store    stepup.Store
	Guard    *stepup.Guard
	Ledger   *Ledger
	Server   *httptest.Server
	Events   *Events

	appSessions sessions.Store // the app's login session, shared by every instance
}

// Events records the guard's events.
type Events struct {
	mu  sync.Mutex
	evs []stepup.Event
}

// All returns the recorded events.
func (e *Events) All() []stepup.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]stepup.Event(nil), e.evs...)
}

// Of returns the recorded events of one type, oldest first.
func (e *Events) Of(typ stepup.EventType) []stepup.Event {
	var out []stepup.Event
	for _, ev := range e.All() {
		if ev.Type == typ {
			out = append(out, ev)
		}
	}
	return out
}

// LastRefusal returns the cause of the last refusal, nil when none.
func (e *Events) LastRefusal() error {
	refused := e.Of(stepup.EventRefuse)
	if len(refused) == 0 {
		return nil
	}
	return refused[len(refused)-1].Err
}

// Options adjust an Env.
type Options struct {
	Config   func(*stepup.Config)                  // change the guard config before New
	Provider func(stepup.Provider) stepup.Provider // wrap the provider
	Store    func(now func() time.Time) stepup.Store
	// SessionID sets Config.SessionID to the id of the application's login
	// session, a new one at every login.
	SessionID bool
	// Emulator changes the emulator's configuration before it starts. By
	// default every user is enrolled (AutoEnroll).
	Emulator func(*emulator.Config)
}

// NewEnv starts the emulator, builds the guard and mounts the app.
func NewEnv(t testing.TB, a Adapter, o Options) *Env {
	t.Helper()
	clock := NewClock()
	rules, err := emulator.ParseRules([]byte(Rules))
	require.NoError(t, err)
	ecfg := emulator.Config{Rules: rules, AutoEnroll: true, Now: clock.Now}
	if o.Emulator != nil {
		o.Emulator(&ecfg)
	}
	emu, err := emulator.New(ecfg)
	require.NoError(t, err)
	t.Cleanup(emu.Close)

	env := &Env{T: t, Clock: clock, Emulator: emu, Ledger: &Ledger{}, Events: &Events{}}
	env.Client = authsignal.NewClient(emulator.DefaultSecret, authsignal.WithBaseURL(emu.APIURL()),
		authsignal.WithRetries(0), authsignal.WithTimeout(10*time.Second))
	if o.Store != nil {
		env.Store = o.Store(clock.Now)
	} else {
		env.Store = stepup.NewMemoryStore(stepup.MemoryClock(clock.Now))
	}

	// The app's own login session, separate from the guard's.
	appSessions := sessions.NewCookieStore([]byte("0123456789abcdef0123456789abcdef"))
	appSessions.Options.HttpOnly = true
	appSessions.Options.SameSite = http.SameSiteLaxMode
	env.appSessions = appSessions

	env.Guard, env.Server = env.serve(a, o)
	return env
}

// serve builds a guard on env's provider, Store, clock and session keys,
// and starts a server with a's application behind it: one instance of the
// application. Every instance of an Env shares all but the guard's
// in-process state.
func (env *Env) serve(a Adapter, o Options) (*stepup.Guard, *httptest.Server) {
	t, clock, emu, appSessions := env.T, env.Clock, env.Emulator, env.appSessions
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	callback := "http://" + srv.Listener.Addr().String() + CallbackPath
	var provider stepup.Provider = env.Client
	if o.Provider != nil {
		provider = o.Provider(provider)
	}
	cfg := stepup.Config{
		Provider:         provider,
		Sessions:         sessions.NewCookieStore([]byte("fedcba9876543210fedcba9876543210"), []byte("0123456789abcdef0123456789abcdef")),
		UserID:           func(r *http.Request) (string, error) { return currentUser(appSessions, r), nil },
		CallbackURL:      callback,
		Policies:         a.Policies(),
		Store:            env.Store,
		ChallengeOrigins: []string{emu.URL},
		ProviderTimeout:  2 * time.Second,
		Now:              clock.Now,
		OnEvent: func(_ context.Context, ev stepup.Event) {
			env.Events.mu.Lock()
			env.Events.evs = append(env.Events.evs, ev)
			env.Events.mu.Unlock()
		},
	}
	cfg.SignIn = &stepup.SignIn{Complete: env.completeSignIn, Next: SignInNext}
	if o.SessionID {
		cfg.SessionID = func(r *http.Request) string { return loginSessionID(appSessions, r) }
	}
	if a.Config != nil {
		a.Config(&cfg)
	}
	if o.Config != nil {
		o.Config(&cfg)
	}
	g, err := stepup.New(cfg)
	require.NoError(t, err)
	srv.Config.Handler = a.Mount(t, g, env.handlers(appSessions, g))
	srv.Start()
	t.Cleanup(srv.Close)
	return g, srv
}

func loginSessionID(store sessions.Store, r *http.Request) string {
	s, err := store.Get(r, "app")
	if err != nil {
		return ""
	}
	id, _ := s.Values["sid"].(string)
	return id
}

func currentUser(store sessions.Store, r *http.Request) string {
	s, err := store.Get(r, "app")
	if err != nil {
		return ""
	}
	u, _ := s.Values["user"].(string)
	return u
}

func (env *Env) handlers(appSessions sessions.Store, g *stepup.Guard) Handlers {
	record := func(name string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, err := io.ReadAll(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			v, _ := stepup.VerificationFrom(r.Context())
			env.Ledger.add(Execution{
				Name: name, Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Body: body,
				Header: r.Header.Clone(), User: currentUser(appSessions, r), How: string(v.How),
				Remote: r.RemoteAddr, Cookies: len(r.Cookies()), ContentLength: r.ContentLength,
				Attributes: v.Attributes,
			})
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			_, _ = io.WriteString(w, "done: "+name+" "+r.Method+" "+r.URL.Path+" "+string(body))
		})
	}
	return Handlers{
		Login: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s, _ := appSessions.Get(r, "app")
			s.Values["user"] = r.FormValue("user")
			s.Values["sid"] = rand.Text()
			if err := s.Save(r, w); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			_, _ = io.WriteString(w, "logged in")
		}),
		Logout: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_ = g.Forget(w, r)
			s, _ := appSessions.Get(r, "app")
			delete(s.Values, "user")
			_ = s.Save(r, w)
		}),
		SignIn: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.PostFormValue("password") != Password {
				http.Error(w, "wrong user or password", http.StatusUnauthorized)
				return
			}
			g.SignIn(w, r, r.PostFormValue("user"))
		}),
		Transfer: record("transfer"), APITrans: record("apiTransfer"), Profile: record("profile"),
		DeleteItem: record("deleteItem"), Report: record("report"), Admin: record("admin"),
		Block: record("block"), Review: record("review"), Open: record("open"),
	}
}

// completeSignIn is Config.SignIn.Complete: it records an execution
// "signIn" and starts a new login session of the application (a new
// session id, never the one the request came with).
func (env *Env) completeSignIn(w http.ResponseWriter, r *http.Request, user string) error {
	env.Ledger.add(Execution{Name: "signIn", Method: r.Method, Path: r.URL.Path, User: user, Remote: r.RemoteAddr,
		Cookies: len(r.Cookies())})
	s := sessions.NewSession(env.appSessions, "app")
	opts := *env.appSessions.(*sessions.CookieStore).Options
	s.Options, s.IsNew = &opts, true
	s.Values["user"] = user
	s.Values["sid"] = rand.Text()
	return s.Save(r, w)
}

// Browser is an HTTP client with a cookie jar that does not follow
// redirects, so every step of a flow can be checked.
type Browser struct {
	env *Env
	T   testing.TB
	C   *http.Client
	Jar http.CookieJar
}

// NewBrowser returns a fresh browser (its own cookies).
func (env *Env) NewBrowser() *Browser {
	jar, _ := cookiejar.New(nil)
	return &Browser{env: env, T: env.T, Jar: jar, C: &http.Client{
		Jar:           jar,
		Timeout:       20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// Login logs the browser in as user.
func (b *Browser) Login(user string) {
	b.T.Helper()
	resp := b.Do(http.MethodPost, "/login", "application/x-www-form-urlencoded", "user="+url.QueryEscape(user), nil)
	require.Equal(b.T, http.StatusOK, resp.StatusCode)
}

// Response is a read response.
type Response struct {
	*http.Response
	Body string
}

// Do sends a browser navigation (Accept: text/html) to path on the app.
// header adds or overrides headers.
func (b *Browser) Do(method, path, contentType, body string, header http.Header) *Response {
	b.T.Helper()
	target := path
	if strings.HasPrefix(path, "/") {
		target = b.env.Server.URL + path
	}
	req, err := http.NewRequest(method, target, strings.NewReader(body))
	require.NoError(b.T, err)
	if body == "" {
		req.Body = http.NoBody
	}
	req.Header.Set("Accept", "text/html,application/xhtml+xml")
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	return b.Send(req)
}

// API sends an API request (Accept: application/json).
func (b *Browser) API(method, path, body string, header http.Header) *Response {
	b.T.Helper()
	h := http.Header{"Accept": {"application/json"}}
	for k, vs := range header {
		h[k] = vs
	}
	ct := ""
	if body != "" {
		ct = "application/json"
	}
	return b.Do(method, path, ct, body, h)
}

// Send sends req with the browser's cookies and reads the response.
func (b *Browser) Send(req *http.Request) *Response {
	b.T.Helper()
	resp, err := b.C.Do(req)
	require.NoError(b.T, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(b.T, err)
	return &Response{Response: resp, Body: string(data)}
}

// Get follows a Location (absolute or a path on the app).
func (b *Browser) Get(location string) *Response {
	b.T.Helper()
	return b.Do(http.MethodGet, location, "", "", nil)
}

// Challenge asserts that resp is the redirect to the emulator's challenge
// page and returns its URL.
func (b *Browser) Challenge(resp *Response) string {
	b.T.Helper()
	require.Equal(b.T, http.StatusSeeOther, resp.StatusCode, "expected a challenge redirect, got body %q", resp.Body)
	loc := resp.Header.Get("Location")
	require.True(b.T, strings.HasPrefix(loc, b.env.Emulator.URL+"/"), "challenge at %q", loc)
	return loc
}

// Complete completes the challenge on the emulator's hosted page and
// returns the callback URL it redirects to (not yet visited).
func (b *Browser) Complete(challengeURL string) string {
	b.T.Helper()
	u, err := b.env.Emulator.CompleteChallenge(context.Background(), challengeURL)
	require.NoError(b.T, err)
	require.True(b.T, strings.HasPrefix(u.String(), b.env.Server.URL+CallbackPath+"?"), "redirect to %q", u)
	return u.String()
}

// Cancel cancels the challenge and returns the callback URL.
func (b *Browser) Cancel(challengeURL string) string {
	b.T.Helper()
	u, err := b.env.Emulator.CancelChallenge(context.Background(), challengeURL)
	require.NoError(b.T, err)
	return u.String()
}

// Fail enters wrong codes until the challenge fails; returns the callback URL.
func (b *Browser) Fail(challengeURL string) string {
	b.T.Helper()
	u, err := b.env.Emulator.FailChallenge(context.Background(), challengeURL)
	require.NoError(b.T, err)
	return u.String()
}

// Param returns a query parameter of a URL.
func Param(rawURL, name string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return ""
	}
	return u.Query().Get(name)
}

// WithParam returns rawURL with one query parameter replaced.
func WithParam(rawURL, name, value string) string {
	u, _ := url.Parse(rawURL)
	q := u.Query()
	q.Set(name, value)
	u.RawQuery = q.Encode()
	return u.String()
}

// Form is a shorthand for a form content type.
const Form = "application/x-www-form-urlencoded"
