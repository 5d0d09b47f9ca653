package stepuptest

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/sessions"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup"
	"github.com/stepupkit/stepup/authsignal"
)

// BenchFlow measures a whole browser challenge through a guard on the Store
// newStore returns (given the guard's clock), a fresh request for each
// step: the POST is parked (a cap slot reserved, tracked, Put, session
// cookie, 303), then its callback validates, spends token and park,
// replays through the mux and keeps the outcome. The provider is an
// in-process fake; the clock moves two minutes per round so that caps
// never refuse. When calls is not nil it counts the Store's round trips,
// reported as roundtrips/op. Store benchmarks (stores/redis,
// stores/postgres) share it, so their figures compare.
func BenchFlow(b *testing.B, newStore func(now func() time.Time) stepup.Store, calls func() int64) {
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()) }
	provider := &benchProvider{}
	g, err := stepup.New(stepup.Config{
		Provider:    provider,
		Sessions:    sessions.NewCookieStore([]byte("0123456789abcdef0123456789abcdef")),
		UserID:      func(*http.Request) (string, error) { return "alice", nil },
		CallbackURL: "https://app.example/stepup/callback",
		Policies:    []stepup.Policy{{Method: http.MethodPost, Route: "/transfer", Action: "transfer"}},
		Store:       newStore(now),
		RecordKeys:  [][]byte{RecordKey},
		Now:         now,
	})
	require.NoError(b, err)
	mux := http.NewServeMux()
	mux.HandleFunc("POST /transfer", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("done")) })
	root := g.Middleware(mux)
	mux.Handle("GET /stepup/callback", g.Callback(root))
	data := "amount=5000&to=bob&note=rent+for+november"
	var before int64
	if calls != nil {
		before = calls()
	}
	b.ReportAllocs()
	for b.Loop() {
		clock.Add(int64(2 * time.Minute))
		r, _ := http.NewRequest(http.MethodPost, "https://app.example/transfer", strings.NewReader(data))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.Header.Set("Accept", "text/html")
		w := NewBenchWriter()
		root.ServeHTTP(w, r)
		if w.Code != http.StatusSeeOther {
			b.Fatalf("park: status %d", w.Code)
		}
		cookie, _, _ := strings.Cut(w.Header().Get("Set-Cookie"), ";")
		key := provider.last()
		cb, _ := http.NewRequest(http.MethodGet, "https://app.example/stepup/callback?"+
			url.Values{"park": {key}, "token": {"ok." + key}}.Encode(), nil)
		cb.Header.Set("Cookie", cookie)
		cb.Header.Set("Accept", "text/html")
		w = NewBenchWriter()
		root.ServeHTTP(w, cb)
		if w.Code != http.StatusOK {
			b.Fatalf("callback: status %d", w.Code)
		}
	}
	if calls != nil {
		b.ReportMetric(float64(calls()-before)/float64(b.N), "roundtrips/op")
	}
}

// benchProvider challenges every track and validates the token "ok.<key>"
// for the park <key>, as Authsignal would after a passed challenge.
type benchProvider struct {
	mu  sync.Mutex
	key string
}

func (p *benchProvider) Track(_ context.Context, _, _ string, req authsignal.TrackRequest) (*authsignal.TrackResponse, error) {
	p.mu.Lock()
	p.key = req.IdempotencyKey
	p.mu.Unlock()
	return &authsignal.TrackResponse{State: authsignal.StateChallengeRequired, IdempotencyKey: req.IdempotencyKey,
		URL: "https://eu.authsignal.com/challenge?t=1", IsEnrolled: true}, nil
}

func (p *benchProvider) Validate(_ context.Context, req authsignal.ValidateRequest) (*authsignal.ValidateResponse, error) {
	key, ok := strings.CutPrefix(req.Token, "ok.")
	if !ok {
		return &authsignal.ValidateResponse{State: authsignal.StateChallengeFailed}, nil
	}
	return &authsignal.ValidateResponse{IsValid: true, State: authsignal.StateChallengeSucceeded,
		UserID: req.UserID, Action: req.Action, IdempotencyKey: key}, nil
}

func (p *benchProvider) last() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.key
}
