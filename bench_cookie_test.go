package stepup_test

// The rows of BENCHMARKS.md whose cost is mostly the guard's cookie (the
// challenge flow, the GET a Remember grant lets through), again with a
// guard that seals its cookie itself with Config.CookieKeys, each beside
// the same anchor as in bench_test.go. Run with the rows they mirror:
//
//	go test -run '^$' -bench 'ChallengeFlow|RememberGrant' -benchmem -count 6 . | tee new.txt
//	benchstat new.txt
//
// BenchmarkChallengeFlow/guard and BenchmarkRememberGrant/guard.Middleware
// are the CookieStore codecs (securecookie: HMAC-SHA256, AES-CTR, two
// base64 passes), the ...CookieKeys variants the guard's own AES-GCM seal.

import (
	"net/http"
	"testing"
	"time"

	"github.com/gorilla/sessions"

	"github.com/stepupkit/stepup"
	"github.com/stepupkit/stepup/stepuptest"
)

// benchCookieKeys is the CookieKeys variant of benchGuard: no gorilla
// Store for the guard.
func benchCookieKeys(c *stepup.Config) {
	c.Sessions = nil
	c.CookieKeys = [][]byte{[]byte("a 32-byte cookie key for benches")}
}

// BenchmarkChallengeFlowCookieKeys is BenchmarkChallengeFlow with
// CookieKeys: one whole step-up per iteration (track, park, 303 with the
// sealed cookie; callback opening it, validate, spend, replay, keep),
// beside the bare mux serving the same two fresh requests.
func BenchmarkChallengeFlowCookieKeys(b *testing.B) {
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
		g := benchGuard(b, provider, clock, benchCookieKeys)
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

// BenchmarkRememberGrantCookieKeys is BenchmarkRememberGrant with
// CookieKeys: a GET that a Remember grant lets through, in an application
// whose UserID reads its own gorilla session, beside the same application
// without the guard reading the same session from the same fresh request.
// The guard adds the opening of its cookie and one Store lookup.
func BenchmarkRememberGrantCookieKeys(b *testing.B) {
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
	g := benchGuard(b, provider, clock, benchCookieKeys, func(c *stepup.Config) { c.UserID = readUser })
	mux := benchMux(handler)
	guarded := g.Middleware(mux)
	mux.Handle("GET /stepup/callback", g.Callback(guarded))
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
