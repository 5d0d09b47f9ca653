package stepup

import (
	"testing"
	"time"

	"github.com/gorilla/sessions"
)

// The allocations of sealing and opening the guard's cookie by
// themselves, CookieKeys beside the CookieStore codecs, on the session a
// Remember grant leaves (user, id, a redeemed park, a grant):
//
//	go test -run '^$' -bench 'Cookie(Seal|Open)' -benchmem .
//
// Sealing takes two allocations (one buffer for the sealed bytes and their
// encoding, the string), opening one (the decoded value, decrypted in
// place); decodeSession's own come on top when the guard reads a session.
func benchSession() []byte {
	exp := time.Date(2026, 11, 27, 11, 0, 0, 0, time.UTC).Unix()
	return encodeSession(&sessionData{
		User:   string(appendUserHash(nil, "alice")),
		ID:     "3q2-7wEAAAAAAAAAAAAAAA",
		Open:   exp,
		Parks:  []parkRef{{ID: "AAAAAAAAAAAAAAAAAAAAAA", Expires: exp, Done: true}},
		Grants: []grantRef{{ID: "BBBBBBBBBBBBBBBBBBBBBB", Action: "statement", Expires: exp}},
	})
}

func benchCodecs(b *testing.B) map[string]cookieCodec {
	b.Helper()
	kc, err := newKeyedCookie([][]byte{[]byte("a 32-byte cookie key for benches")}, "stepup")
	if err != nil {
		b.Fatal(err)
	}
	store := sessions.NewCookieStore([]byte("fedcba9876543210fedcba9876543210"), []byte("0123456789abcdef0123456789abcdef"))
	return map[string]cookieCodec{
		"CookieKeys":  kc,
		"CookieStore": secureCookies{name: "stepup", codecs: ownCodecs(store)},
	}
}

func BenchmarkCookieSeal(b *testing.B) {
	raw := benchSession()
	deadline := time.Date(2026, 11, 27, 11, 0, 0, 0, time.UTC)
	for _, name := range []string{"CookieKeys", "CookieStore"} {
		c := benchCodecs(b)[name]
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.seal(raw, deadline); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkCookieOpen(b *testing.B) {
	raw := benchSession()
	deadline := time.Date(2026, 11, 27, 11, 0, 0, 0, time.UTC)
	now := deadline.Add(-time.Hour)
	for _, name := range []string{"CookieKeys", "CookieStore"} {
		c := benchCodecs(b)[name]
		value, err := c.seal(raw, deadline)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, ok := c.open(value, now); !ok {
					b.Fatal("does not open")
				}
			}
		})
		b.Run(name+"+decodeSession", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				got, ok := c.open(value, now)
				var d sessionData
				if !ok || decodeSession(got, &d) != nil {
					b.Fatal("does not decode")
				}
			}
		})
	}
}

// Sealing allocates at most 3 times and opening at most twice, whatever
// else the guard does per request (BenchmarkCookieSeal, BenchmarkCookieOpen).
func TestCookieKeysAllocations(t *testing.T) {
	kc, err := newKeyedCookie([][]byte{[]byte("the new 32-byte cookie secret!!!"), []byte("the old 32-byte cookie secret...")}, "stepup")
	if err != nil {
		t.Fatal(err)
	}
	raw := benchSession()
	deadline := time.Date(2026, 11, 27, 11, 0, 0, 0, time.UTC)
	value, _ := kc.seal(raw, deadline)
	if n := testing.AllocsPerRun(100, func() { _, _ = kc.seal(raw, deadline) }); n > 3 {
		t.Errorf("seal: %v allocations", n)
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = kc.open(value, deadline.Add(-time.Hour)) }); n > 2 {
		t.Errorf("open: %v allocations", n)
	}
}
