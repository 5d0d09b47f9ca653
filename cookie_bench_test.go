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
	"testing"

	"github.com/stepupkit/stepup"
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
func BenchmarkChallengeFlowCookieKeys(b *testing.B) { benchChallengeFlow(b, benchCookieKeys) }

// BenchmarkRememberGrantCookieKeys is BenchmarkRememberGrant with
// CookieKeys: a GET that a Remember grant lets through, beside the same
// application without the guard reading the same session from the same
// fresh request. The guard adds the opening of its cookie and one Store
// lookup.
func BenchmarkRememberGrantCookieKeys(b *testing.B) { benchRememberGrant(b, benchCookieKeys) }
