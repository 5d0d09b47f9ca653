package stepup_test

// Benchmarks behind BENCHMARKS.md: one target per row of its table, each
// beside its anchor measured in the same run (the bare ServeMux, a no-op
// middleware, a plain gorilla session read). Every iteration builds a
// fresh *http.Request, as a server does: gorilla/sessions caches the
// decoded session in the request's context, so a reused request would hide
// the cookie decode. Anchor and guarded case build their requests alike,
// so the harness's own allocations cancel in the difference. The provider
// is fakeProvider, an in-process double of Authsignal: the numbers are the
// guard's own work, not the network's.
//
//	go test -run '^$' -bench . -benchmem -count 6 . | tee new.txt
//	benchstat new.txt

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/sessions"

	"github.com/stepupkit/stepup"
	"github.com/stepupkit/stepup/authsignal"
	"github.com/stepupkit/stepup/stepuptest"
)

// benchClock is the guard's and the store's clock. The benchmarks move
// it forward so that records expire and the store stays small.
type benchClock struct{ now atomic.Int64 }

func newBenchClock() *benchClock {
	c := &benchClock{}
	c.now.Store(time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *benchClock) Now() time.Time          { return time.Unix(0, c.now.Load()) }
func (c *benchClock) Advance(d time.Duration) { c.now.Add(int64(d)) }

// benchHandler reads the body, as a real handler does, and answers 200.
var benchHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	w.WriteHeader(http.StatusOK)
})

// benchPolicies is a small realistic table.
var benchPolicies = []stepup.Policy{
	{Method: http.MethodPost, Route: "/transfer", Action: "transfer",
		Attributes: []stepup.Attribute{{Name: "amount", From: stepup.FromForm, Key: "amount", Type: "number"}}},
	{Method: http.MethodPut, Route: "/profile", Action: "profile"},
	{Method: http.MethodDelete, Route: "/items/{id}", Action: "deleteItem"},
	{Method: http.MethodGet, Route: "/report", Action: "report"},
	{Method: http.MethodGet, Route: "/statement", Action: "statement", Remember: time.Hour},
	{Method: "*", Route: "/admin/", Action: "admin"},
}

// benchPatterns are the application's routes: the protected ones, an
// unprotected static route and an unprotected route with a wildcard.
var benchPatterns = []string{"POST /transfer", "PUT /profile", "DELETE /items/{id}", "GET /report", "GET /statement",
	"/admin/", "GET /open", "GET /users/{id}"}

func benchMux(h http.Handler) *http.ServeMux {
	mux := http.NewServeMux()
	for _, p := range benchPatterns {
		mux.Handle(p, h)
	}
	return mux
}

// noop is the anchor for middleware: a wrapper that does nothing.
func noop(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { next.ServeHTTP(w, r) })
}

var benchKeys = [][]byte{[]byte("fedcba9876543210fedcba9876543210"), []byte("0123456789abcdef0123456789abcdef")}

func benchGuard(b *testing.B, provider stepup.Provider, clock *benchClock, edit ...func(*stepup.Config)) *stepup.Guard {
	b.Helper()
	cfg := stepup.Config{
		Provider:    provider,
		Sessions:    sessions.NewCookieStore(benchKeys...),
		UserID:      func(*http.Request) (string, error) { return "alice", nil },
		CallbackURL: "https://app.example/stepup/callback",
		Policies:    benchPolicies,
		Store:       stepup.NewMemoryStore(stepup.MemoryClock(clock.Now)),
		Now:         clock.Now,
		Logger:      slog.New(slog.DiscardHandler), // the guard's cost, not a log sink's
	}
	for _, e := range edit {
		e(&cfg)
	}
	g, err := stepup.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	return g
}

// newRequest builds a fresh request as the server would hand it over:
// parsed URL, header map, body, remote address. cookie is "" or name=value.
func newRequest(method, target, body, cookie string) *http.Request {
	u, err := url.ParseRequestURI(target)
	if err != nil {
		panic(err)
	}
	r := &http.Request{Method: method, URL: u, RequestURI: target, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{"User-Agent": {"bench/1.0"}, "Accept": {"text/html"}}, Host: "app.example",
		RemoteAddr: "203.0.113.7:51234", Body: http.NoBody}
	r = r.WithContext(context.Background())
	if body != "" {
		r.Body = io.NopCloser(strings.NewReader(body))
		r.ContentLength = int64(len(body))
		r.Header["Content-Type"] = []string{"application/x-www-form-urlencoded"}
	}
	if cookie != "" {
		r.Header["Cookie"] = []string{cookie}
	}
	return r
}

// serveFresh runs h on a fresh request per iteration, checking the status.
func serveFresh(b *testing.B, h http.Handler, method, target, body, cookie string, want int) {
	b.Helper()
	w := stepuptest.NewBenchWriter()
	b.ReportAllocs()
	for b.Loop() {
		w.Reset()
		h.ServeHTTP(w, newRequest(method, target, body, cookie))
		if w.Code != want {
			b.Fatalf("status %d, want %d", w.Code, want)
		}
	}
}

// serveCopies runs h on a fresh copy of tmpl per iteration: a new
// *http.Request with the template's background context, so nothing a
// previous iteration cached in its context is seen, for one allocation
// (the same in the anchor). For requests without a body or cookie.
func serveCopies(b *testing.B, h http.Handler, tmpl *http.Request, want int) {
	b.Helper()
	w := stepuptest.NewBenchWriter()
	b.ReportAllocs()
	for b.Loop() {
		w.Reset()
		r := new(http.Request)
		*r = *tmpl
		h.ServeHTTP(w, r)
		if w.Code != want {
			b.Fatalf("status %d, want %d", w.Code, want)
		}
	}
}

// BenchmarkUnprotectedRoute (rows 1 and 2): a route no policy covers, static
// and with a wildcard. Anchors: the bare mux and a no-op wrapper around it.
// guard.Middleware asks the mux for its match; guard.ServeMux wraps only
// the protected handlers when they are registered, so an unprotected
// request never reaches the guard.
func BenchmarkUnprotectedRoute(b *testing.B) {
	clock := newBenchClock()
	g := benchGuard(b, &fakeProvider{state: authsignal.StateAllow}, clock)
	mux := benchMux(benchHandler)
	guardMux := g.NewServeMux()
	for _, p := range benchPatterns {
		guardMux.Handle(p, benchHandler)
	}
	for _, route := range []struct{ name, target string }{
		{"static", "/open"},
		{"wildcard", "/users/42"},
	} {
		for _, tc := range []struct {
			name string
			h    http.Handler
		}{
			{"bare_mux", mux},
			{"noop_wrapper", noop(mux)},
			{"guard.Middleware", g.Middleware(mux)},
			{"guard.NewServeMux", guardMux},
		} {
			b.Run(route.name+"/"+tc.name, func(b *testing.B) {
				serveCopies(b, tc.h, newRequest(http.MethodGet, route.target, "", ""), http.StatusOK)
			})
		}
	}
}

// BenchmarkMatch (row 4): the policy table with 10 and with 100,000
// policies, looked up with routes drawn at random from the table (hit),
// routes it does not have (miss, HEAD: the worst case, which falls back to
// GET and "*"), and routes drawn from 64 routes of the table (hot: real
// traffic, where a few routes take most requests). The anchor is Go's
// built-in map[string]*T holding the same route strings, looked up with
// the same draws (map/…): the floor a hash table has on this machine,
// since a random draw from 100,000 routes misses the caches whatever the
// structure. The claim is the ratio of the two sizes, case by case:
//
//	go test -run '^$' -bench 'Match' -benchmem -count 6 -benchtime 300ms . | tee match.txt
//	benchstat -col /policies match.txt
//
// Routes are drawn before the timer starts, each a string of its own, as
// the router hands them over.
func BenchmarkMatch(b *testing.B) {
	for _, n := range []int{10, 100_000} {
		b.Run(fmt.Sprintf("policies=%d", n), func(b *testing.B) { benchMatch(b, n) })
	}
}

// benchMatch builds a table of n policies and its anchor, and looks both
// up. It runs only when a benchmark of its size is selected.
func benchMatch(b *testing.B, n int) {
	const draws = 1 << 16
	policies := make([]stepup.Policy, n)
	anchor := make(map[string]*stepup.Policy, n)
	for i := range policies {
		policies[i] = stepup.Policy{Method: http.MethodPost, Route: fmt.Sprintf("/r/%d/{id}", i), Action: fmt.Sprintf("a%d", i)}
		anchor[policies[i].Route] = &policies[i]
	}
	cfg := validConfig()
	cfg.Policies = policies
	g, err := stepup.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	hot := make([]string, 64)
	for i := range hot {
		hot[i] = policies[rng.IntN(n)].Route
	}
	hits, misses, hots := make([]string, draws), make([]string, draws), make([]string, draws)
	for i := range hits {
		hits[i] = strings.Clone(policies[rng.IntN(n)].Route)
		misses[i] = fmt.Sprintf("/q/%d/{id}", rng.IntN(n))
		hots[i] = strings.Clone(hot[rng.IntN(len(hot))])
	}
	match := func(method string, routes []string, want bool) func(*testing.B) {
		return func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, ok := g.Match(method, routes[i&(draws-1)]); ok != want {
					b.Fatal("wrong answer")
				}
				i++
			}
		}
	}
	builtin := func(routes []string, want bool) func(*testing.B) {
		return func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if p := anchor[routes[i&(draws-1)]]; (p != nil) != want {
					b.Fatal("wrong answer")
				}
				i++
			}
		}
	}
	b.Run("hit", match(http.MethodPost, hits, true))
	b.Run("miss", match(http.MethodHead, misses, false))
	b.Run("hot", match(http.MethodPost, hots, true))
	b.Run("map/hit", builtin(hits, true))
	b.Run("map/miss", builtin(misses, false))
	b.Run("map/hot", builtin(hots, true))
}

// BenchmarkAllowPath (row 7): a protected POST with a form body that
// Authsignal (the in-process fake) allows, end to end through the mux and
// handler: buffer the body, read the attribute, track, run the handler on
// the body. BLOCK is the deny path: the handler never runs and the default
// JSON refusal is written. Anchors: the bare mux and a no-op wrapper.
func BenchmarkAllowPath(b *testing.B) {
	const data = "amount=250&to=bob&note=rent+for+november"
	clock := newBenchClock()
	mux := benchMux(benchHandler)
	allowGuard := benchGuard(b, &fakeProvider{state: authsignal.StateAllow}, clock)
	blockGuard := benchGuard(b, &fakeProvider{state: authsignal.StateBlock}, clock)
	requireMux := http.NewServeMux()
	requireMux.Handle("POST /transfer", allowGuard.Require("transfer", stepup.WithAttributes(
		stepup.Attribute{Name: "amount", From: stepup.FromForm, Key: "amount", Type: "number"}))(benchHandler))

	for _, tc := range []struct {
		name string
		h    http.Handler
		want int
	}{
		{"bare_mux", mux, http.StatusOK},
		{"noop_wrapper", noop(mux), http.StatusOK},
		{"guard.Middleware/ALLOW", allowGuard.Middleware(mux), http.StatusOK},
		{"guard.Require/ALLOW", requireMux, http.StatusOK},
		{"guard.Middleware/ALLOW_no_attributes", allowGuard.Middleware(mux), http.StatusOK},
		{"guard.Middleware/BLOCK", blockGuard.Middleware(mux), http.StatusForbidden},
	} {
		method, target := http.MethodPost, "/transfer"
		if strings.HasSuffix(tc.name, "no_attributes") {
			method, target = http.MethodPut, "/profile" // a policy without attributes: no form parse
		}
		b.Run(tc.name, func(b *testing.B) {
			serveFresh(b, tc.h, method, target, data, "", tc.want)
		})
	}
}

// BenchmarkChallengeFlow (row 6): one whole step-up per iteration, two
// fresh requests: the browser POST is tracked (CHALLENGE_REQUIRED), parked
// and answered 303 with the guard's cookie; the callback then decodes the
// cookie, validates the token (fake), spends token and park, replays the
// parked request through the mux and keeps the outcome. The anchor is the
// bare mux serving the same two requests. The clock moves two minutes per
// round so records expire and the one user's passed challenges stay under
// their ceiling (five times MaxChallengesPerUser per ParkTTL).
func BenchmarkChallengeFlow(b *testing.B) { benchChallengeFlow(b) }

// benchChallengeFlow is row 6 for a guard configured by edit (the cookie
// mode: see cookie_bench_test.go).
func benchChallengeFlow(b *testing.B, edit ...func(*stepup.Config)) {
	const data = "amount=5000&to=bob&note=rent+for+november"
	b.Run("bare_mux", func(b *testing.B) {
		mux := benchMux(benchHandler)
		mux.Handle("GET /stepup/callback", benchHandler)
		w := stepuptest.NewBenchWriter()
		b.ReportAllocs()
		for b.Loop() {
			w.Reset()
			mux.ServeHTTP(w, newRequest(http.MethodPost, "/transfer", data, ""))
			w.Reset()
			mux.ServeHTTP(w, newRequest(http.MethodGet, "/stepup/callback?park=x&token=ok.x", "", ""))
		}
	})
	b.Run("guard", func(b *testing.B) {
		provider := &challengeProvider{}
		clock := newBenchClock()
		g := benchGuard(b, provider, clock, edit...)
		mux := benchMux(benchHandler)
		root := g.Middleware(mux)
		mux.Handle("GET /stepup/callback", g.Callback(root))
		w := stepuptest.NewBenchWriter()
		cookie := ""
		b.ReportAllocs()
		for b.Loop() {
			clock.Advance(2 * time.Minute)
			w.Reset()
			root.ServeHTTP(w, newRequest(http.MethodPost, "/transfer", data, cookie))
			if w.Code != http.StatusSeeOther {
				b.Fatalf("park: status %d", w.Code)
			}
			cookie = w.Cookie("stepup")
			key := provider.last()
			w.Reset()
			root.ServeHTTP(w, newRequest(http.MethodGet, "/stepup/callback?park="+key+"&token=ok."+key, "", cookie))
			if w.Code != http.StatusOK {
				b.Fatalf("callback: status %d", w.Code)
			}
			if c := w.Cookie("stepup"); c != "" {
				cookie = c
			}
		}
	})
}

// challengeProvider answers CHALLENGE_REQUIRED and remembers the last
// idempotency key, which is the park id; Validate is fakeProvider's.
type challengeProvider struct {
	fakeProvider
	mu  sync.Mutex
	key string
}

func (p *challengeProvider) Track(_ context.Context, _, _ string, req authsignal.TrackRequest) (*authsignal.TrackResponse, error) {
	p.mu.Lock()
	p.key = req.IdempotencyKey
	p.mu.Unlock()
	return &authsignal.TrackResponse{State: authsignal.StateChallengeRequired, IdempotencyKey: req.IdempotencyKey,
		URL: "https://eu.authsignal.com/challenge?t=1"}, nil
}

func (p *challengeProvider) last() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.key
}

// BenchmarkRememberGrant (row 5): a GET that a Remember grant lets through,
// in an application whose UserID reads its own gorilla session, as real
// ones do. The anchor is the same application without the guard: the
// handler reads the same session from the same fresh request. The guard
// adds the decode of its own cookie and one Store lookup.
func BenchmarkRememberGrant(b *testing.B) { benchRememberGrant(b) }

// benchRememberGrant is row 5 for a guard configured by edit (the cookie
// mode: see cookie_bench_test.go).
func benchRememberGrant(b *testing.B, edit ...func(*stepup.Config)) {
	appStore := sessions.NewCookieStore(benchKeys...)
	readUser := func(r *http.Request) (string, error) {
		s, err := appStore.Get(r, "app")
		if err != nil {
			return "", err
		}
		id, _ := s.Values["user"].(string)
		return id, nil
	}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, err := readUser(r); err != nil || u != "alice" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	// The application's login cookie.
	w := stepuptest.NewBenchWriter()
	r := newRequest(http.MethodGet, "/", "", "")
	s, _ := appStore.New(r, "app")
	s.Values["user"] = "alice"
	s.Values["csrf"] = "3q2-7wEAAAAAAAAAAAAAAA"
	if err := s.Save(r, w); err != nil {
		b.Fatal(err)
	}
	appCookie := w.Cookie("app")

	provider := &challengeProvider{}
	clock := newBenchClock()
	g := benchGuard(b, provider, clock, append(edit, func(c *stepup.Config) { c.UserID = readUser })...)
	mux := benchMux(handler)
	guarded := g.Middleware(mux)
	mux.Handle("GET /stepup/callback", g.Callback(guarded))
	// One challenge for GET /statement: its callback leaves a pass and a
	// one-hour grant in the guard's cookie; the pass is used once, then only
	// the grant lets the GET through.
	do := func(method, target, cookie string) {
		w.Reset()
		guarded.ServeHTTP(w, newRequest(method, target, "", cookie))
	}
	do(http.MethodGet, "/statement", appCookie)
	guardCookie := w.Cookie("stepup")
	key := provider.last()
	do(http.MethodGet, "/stepup/callback?park="+key+"&token=ok."+key, appCookie+"; "+guardCookie)
	guardCookie = w.Cookie("stepup")
	do(http.MethodGet, "/statement", appCookie+"; "+guardCookie)
	if w.Code != http.StatusOK {
		b.Fatalf("pass: status %d", w.Code)
	}
	guardCookie = w.Cookie("stepup")
	cookies := appCookie + "; " + guardCookie

	b.Run("plain_session_read", func(b *testing.B) {
		serveFresh(b, mux, http.MethodGet, "/statement", "", cookies, http.StatusOK)
	})
	b.Run("guard.Middleware/remembered", func(b *testing.B) {
		serveFresh(b, guarded, http.MethodGet, "/statement", "", cookies, http.StatusOK)
	})
}
