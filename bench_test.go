package stepup_test

// Benchmarks behind the claims in DESIGN.md and the numbers in
// BENCHMARKS.md. Every guarded case has its baseline measured in the same
// run: the same ServeMux, request and handler without the guard. The
// provider is fakeProvider (config_test.go), an in-process test double
// of Authsignal, so the numbers are the guard's own cost, not the
// network's.
//
//	go test -run '^$' -bench . -benchmem -count=3 -benchtime=500ms .

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
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
)

// benchWriter is a ResponseWriter that keeps only the status and reuses
// its header map, so that the writer costs the same in every case.
type benchWriter struct {
	h    http.Header
	code int
}

func newBenchWriter() *benchWriter { return &benchWriter{h: http.Header{}} }

func (w *benchWriter) Header() http.Header { return w.h }

func (w *benchWriter) Write(p []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return len(p), nil
}

func (w *benchWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
}

func (w *benchWriter) reset() {
	clear(w.h)
	w.code = 0
}

// rewindBody is a request body that can be read again.
type rewindBody struct{ bytes.Reader }

func (*rewindBody) Close() error { return nil }

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
	{Method: "*", Route: "/admin/", Action: "admin"},
}

// benchMux is the application: the protected routes, an unprotected
// static route and an unprotected route with a wildcard.
func benchMux() *http.ServeMux {
	mux := http.NewServeMux()
	for _, p := range []string{"POST /transfer", "PUT /profile", "DELETE /items/{id}", "GET /report", "/admin/",
		"GET /open", "GET /users/{id}"} {
		mux.Handle(p, benchHandler)
	}
	return mux
}

func benchGuard(b *testing.B, provider stepup.Provider, clock *benchClock) *stepup.Guard {
	b.Helper()
	g, err := stepup.New(stepup.Config{
		Provider:    provider,
		Sessions:    sessions.NewCookieStore([]byte("fedcba9876543210fedcba9876543210"), []byte("0123456789abcdef0123456789abcdef")),
		UserID:      func(*http.Request) (string, error) { return "alice", nil },
		CallbackURL: "https://app.example/stepup/callback",
		Policies:    benchPolicies,
		Store:       stepup.NewMemoryStore(stepup.MemoryClock(clock.Now)),
		Now:         clock.Now,
		Logger:      slog.New(slog.DiscardHandler), // the guard's cost, not a log sink's
	})
	if err != nil {
		b.Fatal(err)
	}
	return g
}

func benchRequest(method, target string, body []byte) (*http.Request, *rewindBody) {
	u, err := url.ParseRequestURI(target)
	if err != nil {
		panic(err)
	}
	r := &http.Request{Method: method, URL: u, RequestURI: target, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{"User-Agent": {"bench/1.0"}}, Host: "app.example", RemoteAddr: "203.0.113.7:51234"}
	r = r.WithContext(context.Background())
	var rb *rewindBody
	if body == nil {
		r.Body = http.NoBody
	} else {
		rb = &rewindBody{}
		rb.Reset(body)
		r.Body = rb
		r.ContentLength = int64(len(body))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	return r, rb
}

// serve runs h on r until the benchmark ends, checking the status.
func serve(b *testing.B, h http.Handler, r *http.Request, body *rewindBody, data []byte, want int) {
	b.Helper()
	w := newBenchWriter()
	b.ReportAllocs()
	for b.Loop() {
		if body != nil {
			body.Reset(data)
		}
		w.reset()
		h.ServeHTTP(w, r)
		if w.code != want {
			b.Fatalf("status %d, want %d", w.code, want)
		}
	}
}

// BenchmarkUncoveredRoute: a route no policy covers. DESIGN promises it
// passes straight through, with no session read and no allocation from
// stepup. Middleware asks the mux for its match (mux.Handler) before the
// mux matches again to serve, so the difference from the bare mux is one
// extra route match.
func BenchmarkUncoveredRoute(b *testing.B) {
	clock := newBenchClock()
	mux := benchMux()
	guarded := benchGuard(b, &fakeProvider{state: authsignal.StateAllow}, clock).Middleware(mux)
	for _, route := range []struct{ name, target string }{
		{"static", "/open"},
		{"wildcard", "/users/42"},
	} {
		b.Run(route.name+"/bare_mux", func(b *testing.B) {
			r, _ := benchRequest(http.MethodGet, route.target, nil)
			serve(b, mux, r, nil, nil, http.StatusOK)
		})
		b.Run(route.name+"/guard.Middleware", func(b *testing.B) {
			r, _ := benchRequest(http.MethodGet, route.target, nil)
			serve(b, guarded, r, nil, nil, http.StatusOK)
		})
	}
}

// BenchmarkMatch: the policy table is one map lookup, whatever its size.
// A miss costs up to three lookups (the method, GET for HEAD, "*").
func BenchmarkMatch(b *testing.B) {
	for _, n := range []int{1, 10, 100, 1000} {
		policies := make([]stepup.Policy, n)
		for i := range policies {
			policies[i] = stepup.Policy{Method: http.MethodPost, Route: fmt.Sprintf("/r/%d/{id}", i), Action: fmt.Sprintf("a%d", i)}
		}
		cfg := validConfig()
		cfg.Policies = policies
		g, err := stepup.New(cfg)
		if err != nil {
			b.Fatal(err)
		}
		hit := policies[n/2].Route
		b.Run(fmt.Sprintf("policies=%d/hit", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, ok := g.Match(http.MethodPost, hit); !ok {
					b.Fatal("miss")
				}
			}
		})
		b.Run(fmt.Sprintf("policies=%d/miss", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, ok := g.Match(http.MethodHead, "/r/none/{id}"); ok {
					b.Fatal("hit")
				}
			}
		})
	}
}

// BenchmarkAllowPath: a protected POST with a form body that Authsignal
// (the in-process fake) allows, end to end through the mux and handler:
// buffer the body, read the attribute, track, run the handler on a fresh
// body. BLOCK is the deny path: the handler never runs and the default
// JSON refusal is written.
func BenchmarkAllowPath(b *testing.B) {
	data := []byte("amount=250&to=bob&note=rent+for+november")
	clock := newBenchClock()
	mux := benchMux()
	allowGuard := benchGuard(b, &fakeProvider{state: authsignal.StateAllow}, clock)
	blockGuard := benchGuard(b, &fakeProvider{state: authsignal.StateBlock}, clock)
	requireMux := http.NewServeMux()
	requireMux.Handle("POST /transfer", allowGuard.Require("transfer", stepup.WithAttributes(
		stepup.Attribute{Name: "amount", From: stepup.FromForm, Key: "amount", Type: "number"}))(benchHandler))

	cases := []struct {
		name string
		h    http.Handler
		want int
	}{
		{"bare_mux", mux, http.StatusOK},
		{"guard.Middleware/ALLOW", allowGuard.Middleware(mux), http.StatusOK},
		{"guard.Require/ALLOW", requireMux, http.StatusOK},
		{"guard.Middleware/BLOCK", blockGuard.Middleware(mux), http.StatusForbidden},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			r, body := benchRequest(http.MethodPost, "/transfer", data)
			serve(b, tc.h, r, body, data, tc.want)
		})
	}
}

// BenchmarkChallengePath: CHALLENGE_REQUIRED for a browser POST. "park"
// is one request: buffer the body, track, store the parked request, write
// the gorilla session (encrypted cookie) and answer 303; the browser's
// cookie is sent back each time, so the session holds the usual handful
// of pending parks. "park+callback" adds the callback that follows the
// challenge: decode the session, validate (fake), spend token and park in
// the store, replay through the mux and keep the outcome. The callback
// alone costs the difference. Request construction is included (a few
// allocations); the clock moves two minutes per round so records expire
// and the one session stays under MaxChallengesPerSession (5 per ParkTTL).
func BenchmarkChallengePath(b *testing.B) {
	data := []byte("amount=5000&to=bob&note=rent+for+november")
	provider := &challengeProvider{}

	for _, withCallback := range []bool{false, true} {
		name := "park+session+303"
		if withCallback {
			name = "park+303+callback_replay"
		}
		b.Run(name, func(b *testing.B) {
			clock := newBenchClock()
			g := benchGuard(b, provider, clock)
			mux := benchMux()
			root := g.Middleware(mux)
			mux.Handle("GET /stepup/callback", g.Callback(root))
			r, body := benchRequest(http.MethodPost, "/transfer", data)
			r.Header.Set("Accept", "text/html")
			w := newBenchWriter()
			cookie := ""
			b.ReportAllocs()
			for b.Loop() {
				clock.Advance(2 * time.Minute)
				body.Reset(data)
				w.reset()
				if cookie != "" {
					r.Header.Set("Cookie", cookie)
				}
				root.ServeHTTP(w, r)
				if w.code != http.StatusSeeOther {
					b.Fatalf("park: status %d", w.code)
				}
				cookie, _, _ = strings.Cut(w.h.Get("Set-Cookie"), ";")
				if !withCallback {
					continue
				}
				key := provider.last()
				cb := &http.Request{Method: http.MethodGet, URL: &url.URL{Path: "/stepup/callback", RawQuery: "park=" + key + "&token=ok." + key},
					Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Host: "app.example", RemoteAddr: "203.0.113.7:51234",
					Header: http.Header{"Cookie": {cookie}, "Accept": {"text/html"}}, Body: http.NoBody}
				w.reset()
				root.ServeHTTP(w, cb)
				if w.code != http.StatusOK {
					b.Fatalf("callback: status %d", w.code)
				}
				if c, _, _ := strings.Cut(w.h.Get("Set-Cookie"), ";"); c != "" {
					cookie = c
				}
			}
		})
	}
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

// BenchmarkMemoryStore: the store under concurrent use. Each goroutine
// works on its own ids; a parked request carries a 1 KiB body, and every
// Put and Get copies the record.
func BenchmarkMemoryStore(b *testing.B) {
	ctx := context.Background()
	clock := newBenchClock()
	template := func(id string) *stepup.Record {
		return &stepup.Record{ID: id, Kind: stepup.KindPark, UserID: "alice", Action: "transfer", Method: http.MethodPost,
			Path: "/transfer", Query: "ref=1", Header: http.Header{"Content-Type": {"application/x-www-form-urlencoded"}},
			Body: bytes.Repeat([]byte("a"), 1024), Created: clock.Now(), Expires: clock.Now().Add(10 * time.Minute)}
	}
	var goroutines atomic.Int64
	ids := func() []string { // distinct per goroutine, made before the loop
		g := goroutines.Add(1)
		out := make([]string, 256)
		for i := range out {
			out[i] = fmt.Sprintf("g%d-%d", g, i)
		}
		return out
	}

	b.Run("Get", func(b *testing.B) {
		s := stepup.NewMemoryStore(stepup.MemoryClock(clock.Now))
		keys := make([]string, 1000)
		for i := range keys {
			keys[i] = fmt.Sprintf("k%d", i)
			if err := s.Put(ctx, template(keys[i])); err != nil {
				b.Fatal(err)
			}
		}
		var next atomic.Int64
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			i := int(next.Add(997))
			for pb.Next() {
				i++
				if _, err := s.Get(ctx, keys[i%len(keys)]); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("Put+Delete", func(b *testing.B) {
		s := stepup.NewMemoryStore(stepup.MemoryClock(clock.Now))
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			mine, rec, i := ids(), template(""), 0
			for pb.Next() {
				rec.ID = mine[i%len(mine)]
				i++
				if err := s.Put(ctx, rec); err != nil {
					b.Error(err)
					return
				}
				_ = s.Delete(ctx, rec.ID)
			}
		})
	})
	b.Run("Put+Get+Consume+Delete", func(b *testing.B) {
		s := stepup.NewMemoryStore(stepup.MemoryClock(clock.Now))
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			mine, rec, i := ids(), template(""), 0
			for pb.Next() {
				rec.ID = mine[i%len(mine)]
				i++
				if err := s.Put(ctx, rec); err != nil {
					b.Error(err)
					return
				}
				if _, err := s.Get(ctx, rec.ID); err != nil {
					b.Error(err)
					return
				}
				if _, err := s.Consume(ctx, rec.ID); err != nil {
					b.Error(err)
					return
				}
				_ = s.Delete(ctx, rec.ID)
			}
		})
	})
}
