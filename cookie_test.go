package stepup_test

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup"
	"github.com/stepupkit/stepup/authsignal"
	"github.com/stepupkit/stepup/stepuptest"
)

// The tests of Config.CookieKeys read and write the guard's cookie with
// their own implementation of its documented format (cookie.go): the
// unpadded base64url of version 1 | 12-byte nonce | AES-256-GCM
// ciphertext and tag, the key derived from the secret with HKDF-SHA256
// and the info below, the additional data version | cookie name, the
// plaintext an 8-byte big-endian deadline (unix seconds) followed by the
// session data.
var (
	oldCookieKey   = []byte("the old 32-byte cookie secret...")
	newCookieKey   = []byte("the new 32-byte cookie secret!!!")
	otherCookieKey = []byte("somebody else's 32-byte secret..")
)

const testCookieInfo = "stepup guard cookie v1: AES-256-GCM key"

func testCookieAEAD(t testing.TB, secret []byte) cipher.AEAD {
	t.Helper()
	key, err := hkdf.Key(sha256.New, secret, nil, testCookieInfo, 32)
	require.NoError(t, err)
	block, err := aes.NewCipher(key)
	require.NoError(t, err)
	aead, err := cipher.NewGCM(block)
	require.NoError(t, err)
	return aead
}

// sealTestCookie seals data as the guard would for the cookie named name.
func sealTestCookie(t testing.TB, secret []byte, name string, deadline time.Time, data []byte) string {
	t.Helper()
	return sealTestCookieVersion(t, secret, 1, name, deadline, data)
}

func sealTestCookieVersion(t testing.TB, secret []byte, version byte, name string, deadline time.Time, data []byte) string {
	t.Helper()
	nonce := make([]byte, 12)
	_, _ = rand.Read(nonce)
	plain := binary.BigEndian.AppendUint64(nil, uint64(deadline.Unix()))
	plain = append(plain, data...)
	out := append([]byte{version}, nonce...)
	out = testCookieAEAD(t, secret).Seal(out, nonce, plain, append([]byte{version}, name...))
	return base64.RawURLEncoding.EncodeToString(out)
}

// openTestCookie opens a value the guard sealed for the cookie named name.
func openTestCookie(t testing.TB, secret []byte, name, value string) (deadline time.Time, data []byte, ok bool) {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(value)
	if err != nil || len(b) < 13 || b[0] != 1 {
		return time.Time{}, nil, false
	}
	plain, err := testCookieAEAD(t, secret).Open(nil, b[1:13], b[13:], append([]byte{1}, name...))
	if err != nil || len(plain) < 8 {
		return time.Time{}, nil, false
	}
	return time.Unix(int64(binary.BigEndian.Uint64(plain)), 0), plain[8:], true
}

// keysEnv is an environment whose guard seals its cookie with keys and
// has no gorilla Store.
func keysEnv(t *testing.T, keys [][]byte, more ...func(*stepup.Config)) *stepuptest.Env {
	t.Helper()
	return stepuptest.NewEnv(t, guardedApp, stepuptest.Options{Config: func(c *stepup.Config) {
		c.Sessions = nil
		c.CookieKeys = keys
		for _, f := range more {
			f(c)
		}
	}})
}

// jarCookie returns the value of the browser's cookie name ("" if none).
func jarCookie(env *stepuptest.Env, b *stepuptest.Browser, name string) string {
	for _, c := range b.Jar.Cookies(mustParse(env.Server.URL)) {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

// setJarCookie replaces the browser's cookie name by value, as a client
// sending what it likes would.
func setJarCookie(env *stepuptest.Env, b *stepuptest.Browser, name, value string) {
	b.Jar.SetCookies(mustParse(env.Server.URL), []*http.Cookie{{Name: name, Value: value, Path: "/"}})
}

// granted logs a browser in as alice and leaves it with a five-minute
// Remember grant for GET /admin (its pass already used), sealed in its
// cookie name; it returns the browser and that cookie's value.
func granted(t *testing.T, env *stepuptest.Env, name string) (*stepuptest.Browser, string) {
	t.Helper()
	b := env.NewBrowser()
	b.Login("alice")
	pass := b.Get(b.Complete(b.Challenge(b.Get("/admin"))))
	require.Equal(t, http.StatusSeeOther, pass.StatusCode, pass.Body)
	require.Equal(t, http.StatusOK, b.Get("/admin").StatusCode, "the pass")
	value := jarCookie(env, b, name)
	require.NotEmpty(t, value)
	require.Equal(t, http.StatusOK, b.Get("/admin").StatusCode, "the grant")
	return b, value
}

// adminWith sends GET /admin with the guard's cookie set to value and
// reports whether the grant let it through (200) or the guard challenged
// it (303): the cookie was no session.
func adminWith(t *testing.T, env *stepuptest.Env, b *stepuptest.Browser, name, value string) bool {
	t.Helper()
	setJarCookie(env, b, name, value)
	resp := b.Get("/admin")
	switch resp.StatusCode {
	case http.StatusOK:
		return true
	case http.StatusSeeOther:
		b.Challenge(resp)
		return false
	}
	require.Failf(t, "unexpected status", "%d %s", resp.StatusCode, resp.Body)
	return false
}

// With CookieKeys and no gorilla Store the guard runs the whole flow: a
// park is redeemed once, a refresh shows the kept answer, a Remember grant
// lets the next GET through, and Forget ends everything but the mark that
// the browser is established for the user. The cookie is
// sealed under the first key with the deadline its Max-Age says, and
// carries the usual options; the park id is not readable in it.
func TestCookieKeysRoundTrip(t *testing.T) {
	env := keysEnv(t, [][]byte{newCookieKey, oldCookieKey})
	b := env.NewBrowser()
	b.Login("alice")
	resp := b.Do(http.MethodPost, "/transfer", stepuptest.Form, "amount=5000", nil)
	cb := b.Complete(b.Challenge(resp))
	park := mustParse(cb).Query().Get("park")
	require.NotEmpty(t, park)

	var c *http.Cookie
	for _, rc := range resp.Cookies() {
		if rc.Name == "stepup" {
			c = rc
		}
	}
	require.NotNil(t, c)
	assert.Equal(t, "/", c.Path)
	assert.True(t, c.HttpOnly)
	assert.Equal(t, http.SameSiteLaxMode, c.SameSite)
	assert.Equal(t, int((10 * time.Minute).Seconds()), c.MaxAge)
	assert.NotContains(t, c.Value, park, "the park id is encrypted")
	raw, err := base64.RawURLEncoding.DecodeString(c.Value)
	require.NoError(t, err)
	assert.NotContains(t, string(raw), park)
	deadline, data, ok := openTestCookie(t, newCookieKey, "stepup", c.Value)
	require.True(t, ok, "sealed under the first key")
	assert.Equal(t, env.Clock.Now().Add(10*time.Minute).Unix(), deadline.Unix(), "the deadline is what Max-Age says")
	assert.Contains(t, string(data), park)
	_, _, ok = openTestCookie(t, oldCookieKey, "stepup", c.Value)
	assert.False(t, ok, "not under the second")

	done := b.Get(cb)
	require.Equal(t, http.StatusOK, done.StatusCode, done.Body)
	assert.Equal(t, http.StatusOK, b.Get(cb).StatusCode, "a refresh shows the kept answer")
	assert.Len(t, env.Ledger.Runs("transfer"), 1, "run exactly once")

	pass := b.Get(b.Complete(b.Challenge(b.Get("/admin"))))
	require.Equal(t, http.StatusSeeOther, pass.StatusCode, pass.Body)
	require.Equal(t, http.StatusOK, b.Get("/admin").StatusCode, "the pass")
	require.Equal(t, http.StatusOK, b.Get("/admin").StatusCode, "the grant")
	assert.Len(t, env.Ledger.Runs("admin"), 2)

	logout := b.Do(http.MethodPost, "/logout", "", "", nil)
	kept := ""
	for _, rc := range logout.Cookies() {
		if rc.Name == "stepup" {
			kept = rc.Value
			assert.Equal(t, int((30 * 24 * time.Hour).Seconds()), rc.MaxAge, "Forget keeps the established mark, 30 days")
		}
	}
	_, data, ok = openTestCookie(t, newCookieKey, "stepup", kept)
	require.True(t, ok)
	assert.NotContains(t, string(data), park, "and nothing else")
	b.Login("alice")
	assert.Equal(t, http.StatusSeeOther, b.Get("/admin").StatusCode, "no grant after Forget")
}

// Forget with CookieKeys deletes the Store records the cookie points to:
// the cookie from before the logout, sent again, holds a grant that no
// longer exists.
func TestCookieKeysForgetDeletesTheRecords(t *testing.T) {
	env := keysEnv(t, [][]byte{newCookieKey})
	b, value := granted(t, env, "stepup")
	b.Do(http.MethodPost, "/logout", "", "", nil)
	b.Login("alice")
	assert.False(t, adminWith(t, env, b, "stepup", value), "a rolled-back cookie revives nothing")
	assert.Len(t, env.Ledger.Runs("admin"), 2)
}

// With both Sessions and CookieKeys the guard uses CookieKeys and never
// touches the Store: a Store that cannot save does not stop a park.
func TestCookieKeysWinOverSessions(t *testing.T) {
	env := stepuptest.NewEnv(t, guardedApp, stepuptest.Options{Config: func(c *stepup.Config) {
		c.Sessions = unsavable{c.Sessions}
		c.CookieKeys = [][]byte{newCookieKey}
	}})
	b := env.NewBrowser()
	b.Login("alice")
	resp := b.Do(http.MethodPost, "/transfer", stepuptest.Form, "amount=5000", nil)
	cb := b.Complete(b.Challenge(resp))
	_, _, ok := openTestCookie(t, newCookieKey, "stepup", jarCookie(env, b, "stepup"))
	assert.True(t, ok, "the cookie is sealed with CookieKeys")
	require.Equal(t, http.StatusOK, b.Get(cb).StatusCode)
	assert.Len(t, env.Ledger.Runs("transfer"), 1)
}

// Any byte of the sealed value changed (version, nonce, ciphertext, tag),
// the value cut short or lengthened, base64 that is not the canonical
// unpadded base64url of its bytes: the cookie is no session, and the
// grant it held lets nothing through.
func TestCookieKeysTamperedCookieIsNoSession(t *testing.T) {
	env := keysEnv(t, [][]byte{newCookieKey}, func(c *stepup.Config) {
		c.MaxChallengesPerUser = 10000 // every refused cookie opens a challenge
		c.MaxChallengesPerSession = 10000
	})
	b, value := granted(t, env, "stepup")
	sealed, err := base64.RawURLEncoding.DecodeString(value)
	require.NoError(t, err)

	for i := range sealed {
		for _, flip := range []byte{0x01, 0x80} {
			tampered := append([]byte(nil), sealed...)
			tampered[i] ^= flip
			assert.False(t, adminWith(t, env, b, "stepup", base64.RawURLEncoding.EncodeToString(tampered)), "byte %d ^ %#x", i, flip)
		}
	}
	require.NotZero(t, len(sealed)%3, "the encoding ends in padding bits")
	last := strings.IndexByte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", value[len(value)-1])
	for name, v := range map[string]string{
		"empty":                "",
		"cut by one byte":      base64.RawURLEncoding.EncodeToString(sealed[:len(sealed)-1]),
		"one byte more":        base64.RawURLEncoding.EncodeToString(append(append([]byte(nil), sealed...), 0)),
		"nonce only":           base64.RawURLEncoding.EncodeToString(sealed[:13]),
		"padded":               base64.URLEncoding.EncodeToString(sealed),
		"standard alphabet":    strings.NewReplacer("-", "+", "_", "/").Replace(value) + "AA",
		"not base64":           value[:len(value)-1] + ".",
		"padding bits set":     value[:len(value)-1] + string("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"[last^1]),
		"twice":                value + value,
		"version 0":            base64.RawURLEncoding.EncodeToString(append([]byte{0}, sealed[1:]...)),
		"version 2":            base64.RawURLEncoding.EncodeToString(append([]byte{2}, sealed[1:]...)),
		"over 4096 characters": value + strings.Repeat("A", 4097-len(value)),
	} {
		assert.False(t, adminWith(t, env, b, "stepup", v), name)
	}
	assert.True(t, adminWith(t, env, b, "stepup", value), "the value itself still opens")
	assert.Len(t, env.Ledger.Runs("admin"), 3, "the pass, the grant in granted, the last check")
}

// A value sealed for one cookie name does not open under another: the
// name is the additional data of the seal.
func TestCookieKeysBindTheCookieName(t *testing.T) {
	env := keysEnv(t, [][]byte{newCookieKey}, func(c *stepup.Config) { c.SessionName = "guard" })
	b, value := granted(t, env, "guard")
	deadline, data, ok := openTestCookie(t, newCookieKey, "guard", value)
	require.True(t, ok)

	assert.False(t, adminWith(t, env, b, "guard", sealTestCookie(t, newCookieKey, "stepup", deadline, data)), "sealed for stepup")
	assert.False(t, adminWith(t, env, b, "guard", sealTestCookie(t, newCookieKey, "guard2", deadline, data)), "sealed for guard2")
	assert.False(t, adminWith(t, env, b, "guard", sealTestCookieVersion(t, newCookieKey, 2, "guard", deadline, data)), "sealed as version 2")
	assert.True(t, adminWith(t, env, b, "guard", sealTestCookie(t, newCookieKey, "guard", deadline, data)), "sealed for guard")
}

// The deadline sealed in the value is the cookie's own: from that second
// on it no longer opens, even if the records it points to live on (a
// client that keeps a cookie past its Max-Age).
func TestCookieKeysExpiredCookieIsNoSession(t *testing.T) {
	env := keysEnv(t, [][]byte{newCookieKey}, func(c *stepup.Config) { c.MaxChallengesPerUser = 100 })
	b, value := granted(t, env, "stepup")
	deadline, data, ok := openTestCookie(t, newCookieKey, "stepup", value)
	require.True(t, ok)
	now := env.Clock.Now()
	assert.Equal(t, now.Add(30*24*time.Hour).Unix(), deadline.Unix(), "the established mark's 30 days, the longest held")

	assert.False(t, adminWith(t, env, b, "stepup", sealTestCookie(t, newCookieKey, "stepup", now, data)), "deadline now")
	assert.False(t, adminWith(t, env, b, "stepup", sealTestCookie(t, newCookieKey, "stepup", now.Add(-time.Hour), data)), "an hour ago")
	assert.True(t, adminWith(t, env, b, "stepup", sealTestCookie(t, newCookieKey, "stepup", now.Add(time.Second), data)), "a second left")

	short := sealTestCookie(t, newCookieKey, "stepup", now.Add(time.Minute), data)
	env.Clock.Advance(time.Minute - time.Second)
	assert.True(t, adminWith(t, env, b, "stepup", short), "a second before its deadline")
	env.Clock.Advance(time.Second)
	assert.False(t, adminWith(t, env, b, "stepup", short), "kept past its Max-Age, the grant alive")
	env.Clock.Advance(4*time.Minute - time.Second)
	assert.True(t, adminWith(t, env, b, "stepup", value), "the grant's last second")
}

// Rotation: a cookie sealed under the old key opens while the old key is
// listed after the new one, and no longer once it is dropped; a key the
// guard never had opens nothing. The guard seals under the first key.
func TestCookieKeysRotation(t *testing.T) {
	t.Run("new, old", func(t *testing.T) {
		env := keysEnv(t, [][]byte{newCookieKey, oldCookieKey}, func(c *stepup.Config) { c.MaxChallengesPerUser = 100 })
		b, value := granted(t, env, "stepup")
		deadline, data, ok := openTestCookie(t, newCookieKey, "stepup", value)
		require.True(t, ok, "sealed under the new key")
		assert.True(t, adminWith(t, env, b, "stepup", sealTestCookie(t, oldCookieKey, "stepup", deadline, data)), "sealed under the old key")
		assert.False(t, adminWith(t, env, b, "stepup", sealTestCookie(t, otherCookieKey, "stepup", deadline, data)), "another key")
	})
	t.Run("new only", func(t *testing.T) {
		env := keysEnv(t, [][]byte{newCookieKey}, func(c *stepup.Config) { c.MaxChallengesPerUser = 100 })
		b, value := granted(t, env, "stepup")
		deadline, data, ok := openTestCookie(t, newCookieKey, "stepup", value)
		require.True(t, ok)
		assert.False(t, adminWith(t, env, b, "stepup", sealTestCookie(t, oldCookieKey, "stepup", deadline, data)), "sealed under the old key")
		assert.True(t, adminWith(t, env, b, "stepup", sealTestCookie(t, newCookieKey, "stepup", deadline, data)), "sealed under the new key")
	})
	t.Run("a cookie written after rotation is sealed under the new key", func(t *testing.T) {
		env := keysEnv(t, [][]byte{newCookieKey, oldCookieKey})
		b, value := granted(t, env, "stepup")
		deadline, data, ok := openTestCookie(t, newCookieKey, "stepup", value)
		require.True(t, ok)
		setJarCookie(env, b, "stepup", sealTestCookie(t, oldCookieKey, "stepup", deadline, data))
		b.Challenge(b.Do(http.MethodPost, "/transfer", stepuptest.Form, "amount=5000", nil)) // adds a park
		_, _, ok = openTestCookie(t, newCookieKey, "stepup", jarCookie(env, b, "stepup"))
		assert.True(t, ok)
		assert.Equal(t, http.StatusOK, b.Get("/admin").StatusCode, "the grant came along")
	})
}

// New refuses a key shorter than 32 bytes, naming it, and a Config with
// neither Sessions nor CookieKeys.
func TestNewCookieKeys(t *testing.T) {
	short := []byte("0123456789abcdef0123456789abcde") // 31 bytes
	for _, tc := range []struct {
		name     string
		sessions bool
		keys     [][]byte
		err      string
	}{
		{"one key of 32 bytes, no Sessions", false, [][]byte{newCookieKey}, ""},
		{"a longer key", false, [][]byte{append(append([]byte(nil), newCookieKey...), newCookieKey...)}, ""},
		{"keys and Sessions", true, [][]byte{newCookieKey}, ""},
		{"Sessions only", true, nil, ""},
		{"a key of 31 bytes", false, [][]byte{short}, "Config.CookieKeys[0] is 31 bytes"},
		{"the second key short", true, [][]byte{newCookieKey, []byte("secret")}, "Config.CookieKeys[1] is 6 bytes"},
		{"an empty key", false, [][]byte{newCookieKey, oldCookieKey, nil}, "Config.CookieKeys[2] is 0 bytes"},
		{"neither", false, nil, "Config.Sessions or Config.CookieKeys is required"},
		{"an empty list", false, [][]byte{}, "Config.Sessions or Config.CookieKeys is required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := validConfig()
			if !tc.sessions {
				cfg.Sessions = nil
			}
			cfg.CookieKeys = tc.keys
			g, err := stepup.New(cfg)
			if tc.err == "" {
				require.NoError(t, err)
				assert.NotNil(t, g)
				return
			}
			require.Error(t, err)
			assert.Nil(t, g)
			assert.Contains(t, err.Error(), tc.err)
		})
	}
	cfg := validConfig()
	cfg.Sessions = nil
	cfg.CookieKeys = [][]byte{short}
	_, err := stepup.New(cfg)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "at least 32 bytes")
}

// testSession writes the guard's session data in its documented encoding
// (sessioncodec.go): version 1, user, id, open, then the parks, grants and
// passes, each list a count and its entries; strings are a uvarint length
// and bytes, numbers varints.
type testSession struct {
	user, id string
	open     int64
	parks    []testPark
	grants   []testGrant
	passes   []testGrant
}

type testPark struct {
	id      string
	expires int64
	done    bool
}

type testGrant struct {
	id, action string
	expires    int64
}

func (s testSession) encode() []byte {
	str := func(b []byte, v string) []byte { return append(binary.AppendUvarint(b, uint64(len(v))), v...) }
	b := str([]byte{1}, s.user)
	b = str(b, s.id)
	b = binary.AppendVarint(b, s.open)
	b = binary.AppendUvarint(b, uint64(len(s.parks)))
	for _, p := range s.parks {
		b = binary.AppendVarint(str(b, p.id), p.expires)
		if p.done {
			b = append(b, 1)
		} else {
			b = append(b, 0)
		}
	}
	for _, gs := range [][]testGrant{s.grants, s.passes} {
		b = binary.AppendUvarint(b, uint64(len(gs)))
		for _, g := range gs {
			b = binary.AppendVarint(str(str(b, g.id), g.action), g.expires)
		}
	}
	return b
}

func userHashOf(user string) string {
	h := sha256.Sum256([]byte("stepup-user\x00" + user))
	return base64.RawURLEncoding.EncodeToString(h[:12])
}

// paddedSession is a session of alice holding park and as many grants of
// nothing as make its encoding exactly size bytes long.
func paddedSession(t *testing.T, park string, expires int64, size int) []byte {
	t.Helper()
	s := testSession{user: userHashOf("alice"), parks: []testPark{{id: park, expires: expires}}}
	const least, most = 7, 261 // a grant's bytes: two lengths, a 5-byte varint, 0 to 127 bytes each of id and action
	require.Len(t, binary.AppendVarint(nil, expires), 5)
	add := func(n int) { // a grant of n bytes
		s.grants = append(s.grants, testGrant{id: strings.Repeat("i", min(n-least, 127)),
			action: strings.Repeat("a", n-least-min(n-least, 127)), expires: expires})
	}
	for gap := size - len(s.encode()); gap > 0; gap = size - len(s.encode()) {
		switch {
		case gap <= most:
			add(gap)
		case gap < most+least:
			add(gap - least)
		default:
			add(most)
		}
	}
	data := s.encode()
	require.Len(t, data, size)
	return data
}

// The guard opens a value of up to 4096 characters, securecookie's limit,
// and nothing longer: a cookie of exactly 4096 characters redeems its
// park, one of 4098 (the next length base64 gives) is no session.
func TestCookieKeysValueLengthLimit(t *testing.T) {
	env := keysEnv(t, [][]byte{newCookieKey})
	b := env.NewBrowser()
	b.Login("alice")
	for _, tc := range []struct {
		length int  // of the cookie value
		data   int  // bytes of session data that seal to it
		opens  bool // whether the callback redeems the park
	}{
		{4096, 3072 - 37, true},
		{4098, 3073 - 37, false},
	} {
		cb := b.Complete(b.Challenge(b.Do(http.MethodPost, "/transfer", stepuptest.Form, "amount=5000", nil)))
		park := mustParse(cb).Query().Get("park")
		expires := env.Clock.Now().Add(10 * time.Minute)
		value := sealTestCookie(t, newCookieKey, "stepup", expires, paddedSession(t, park, expires.Unix(), tc.data))
		require.Len(t, value, tc.length)
		setJarCookie(env, b, "stepup", value)
		runs := len(env.Ledger.Runs("transfer"))
		resp := b.Get(cb)
		if tc.opens {
			assert.Equal(t, http.StatusOK, resp.StatusCode, "%d characters: %s", tc.length, resp.Body)
			assert.Len(t, env.Ledger.Runs("transfer"), runs+1)
		} else {
			assert.Equal(t, http.StatusForbidden, resp.StatusCode, "%d characters", tc.length)
			assert.Len(t, env.Ledger.Runs("transfer"), runs)
		}
	}
}

// The largest session the guard keeps (MaxPending 20 parks, 16 grants
// and 5 passes, every action code of 64 characters) seals to a value
// under the 4096 characters the guard opens, so that the guard never
// writes a cookie it would not read back.
func TestCookieKeysLargestSessionFits(t *testing.T) {
	action := func(prefix string, i int) string {
		a := prefix + strings.Repeat("x", 64)
		return a[:64-2] + string(rune('a'+i/10)) + string(rune('0'+i%10))
	}
	var policies []stepup.Policy
	for i := range 16 {
		policies = append(policies, stepup.Policy{Method: http.MethodGet, Route: "/r/" + string(rune('a'+i)), Action: action("read", i), Remember: time.Hour})
	}
	policies = append(policies, stepup.Policy{Method: http.MethodPost, Route: "/pay", Action: action("pay", 0)})
	app := muxAdapter(func(mux *http.ServeMux, _ *stepup.Guard, h stepuptest.Handlers) {
		for _, p := range policies {
			mux.Handle(p.Method+" "+p.Route, h.Report)
		}
	})
	env := newPolicyEnv(t, app, policies, func(c *stepup.Config) {
		c.Sessions = nil
		c.CookieKeys = [][]byte{newCookieKey}
		c.MaxPending = 20
		c.MaxChallengesPerUser = 100
		c.MaxChallengesPerSession = 100
	})
	b := env.NewBrowser()
	b.Login("alice")
	for _, p := range policies[:16] {
		resp := b.Get(b.Complete(b.Challenge(b.Get(p.Route))))
		require.Equal(t, http.StatusSeeOther, resp.StatusCode, "pass and grant for %s", p.Route)
	}
	for range 20 {
		b.Challenge(b.Do(http.MethodPost, "/pay", stepuptest.Form, "", nil))
	}
	value := jarCookie(env, b, "stepup")
	_, data, ok := openTestCookie(t, newCookieKey, "stepup", value)
	require.True(t, ok)
	assert.Greater(t, len(data), 2500, "20 parks, 16 grants, 5 passes")
	assert.LessOrEqual(t, len(value), 4096)
	t.Logf("largest session: %d bytes of data, a %d-character cookie", len(data), len(value))
	before := len(env.Emulator.Tracked())
	assert.Equal(t, http.StatusOK, b.Get(policies[0].Route).StatusCode, "the oldest grant still lets its route through")
	assert.Len(t, env.Emulator.Tracked(), before, "without a challenge")
}

// countingProvider allows every action and counts what it is asked to
// track.
type countingProvider struct {
	fakeProvider
	tracks atomic.Int64
}

func (p *countingProvider) Track(ctx context.Context, user, action string, req authsignal.TrackRequest) (*authsignal.TrackResponse, error) {
	p.tracks.Add(1)
	return p.fakeProvider.Track(ctx, user, action, req)
}

// FuzzOpenCookie: whatever value the guard's cookie has, the guard never
// panics or answers 500, and only the value it sealed itself opens. One
// guard (challenging) leaves a Remember grant for GET /report in a cookie;
// a second guard with the same keys and Store, whose provider allows
// everything, is sent each value: the grant lets GET /report through
// without tracking for that value only; any other is no session, so the
// request is tracked (and allowed) as if it had no cookie.
func FuzzOpenCookie(f *testing.F) {
	clock := newBenchClock()
	store := stepup.NewMemoryStore(stepup.MemoryClock(clock.Now))
	build := func(p stepup.Provider) (*stepup.Guard, http.Handler) {
		cfg := validConfig()
		cfg.Provider = p
		cfg.Sessions = nil
		cfg.CookieKeys = [][]byte{newCookieKey, oldCookieKey}
		cfg.Store = store
		cfg.Now = clock.Now
		cfg.Policies = []stepup.Policy{{Method: http.MethodGet, Route: "/report", Action: "report", Remember: time.Hour}}
		cfg.Logger = slog.New(slog.DiscardHandler)
		g, err := stepup.New(cfg)
		require.NoError(f, err)
		mux := http.NewServeMux()
		mux.Handle("GET /report", benchHandler)
		root := g.Middleware(mux)
		mux.Handle("GET /stepup/callback", g.Callback(root))
		return g, root
	}
	serve := func(h http.Handler, target, cookie string) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, newRequest(http.MethodGet, target, "", cookie))
		return w
	}
	cookieOf := func(w *httptest.ResponseRecorder) string {
		for _, c := range w.Result().Cookies() {
			if c.Name == "stepup" {
				return c.Value
			}
		}
		return ""
	}
	challenger := &challengeProvider{}
	_, challenging := build(challenger)
	w := serve(challenging, "/report", "")
	require.Equal(f, http.StatusSeeOther, w.Code)
	key := challenger.last()
	w = serve(challenging, "/stepup/callback?park="+key+"&token=ok."+key, "stepup="+cookieOf(w))
	require.Equal(f, http.StatusSeeOther, w.Code, "the pass and the grant")
	w = serve(challenging, "/report", "stepup="+cookieOf(w))
	require.Equal(f, http.StatusOK, w.Code, "the pass")
	valid := cookieOf(w)
	require.NotEmpty(f, valid)

	provider := &countingProvider{fakeProvider: fakeProvider{state: authsignal.StateAllow}}
	_, allowing := build(provider)

	deadline, data, ok := openTestCookie(f, newCookieKey, "stepup", valid)
	require.True(f, ok)
	sealed, err := base64.RawURLEncoding.DecodeString(valid)
	require.NoError(f, err)
	for _, seed := range []string{
		valid, valid[:len(valid)-1], valid + "A", `"` + valid + `"`, valid + "; x=y", "", "A", strings.Repeat("A", 4096), strings.Repeat("_", 4097),
		base64.RawURLEncoding.EncodeToString(sealed[:36]), base64.RawURLEncoding.EncodeToString(sealed[:37]),
		sealTestCookie(f, oldCookieKey, "stepup", clock.Now().Add(-2*time.Hour), data),                              // expired
		sealTestCookie(f, newCookieKey, "other", deadline, data),                                                    // another name
		sealTestCookie(f, newCookieKey, "stepup", deadline, nil),                                                    // no session data
		sealTestCookie(f, newCookieKey, "stepup", deadline, []byte{1, 0xff, 0xff, 0xff, 0xff}),                      // garbage
		sealTestCookie(f, otherCookieKey, "stepup", deadline, data),                                                 // another key
		base64.RawURLEncoding.EncodeToString(testCookieAEAD(f, newCookieKey).Seal(nil, make([]byte, 12), nil, nil)), // too short
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, value string) {
		r := newRequest(http.MethodGet, "/report", "", "stepup="+value)
		c, err := r.Cookie("stepup") // what reaches the guard: net/http drops quotes, stops at ';'
		sealedByGuard := err == nil && c.Value == valid
		before := provider.tracks.Load()
		w := httptest.NewRecorder()
		allowing.ServeHTTP(w, r)
		require.Equal(t, http.StatusOK, w.Code, w.Body.String())
		if sealedByGuard {
			assert.Equal(t, before, provider.tracks.Load(), "the grant the guard sealed")
		} else {
			assert.Equal(t, before+1, provider.tracks.Load(), "not a session: tracked")
		}
	})
}
