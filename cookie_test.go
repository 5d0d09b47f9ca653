package stepup_test

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup"
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
// lets the next GET through, and Forget ends everything. The cookie is
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
	for _, rc := range logout.Cookies() {
		if rc.Name == "stepup" {
			assert.Negative(t, rc.MaxAge, "Forget deletes the cookie")
		}
	}
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
	assert.Equal(t, now.Add(10*time.Minute).Unix(), deadline.Unix(), "the redeemed park's ten minutes, the longest held")

	assert.False(t, adminWith(t, env, b, "stepup", sealTestCookie(t, newCookieKey, "stepup", now, data)), "deadline now")
	assert.False(t, adminWith(t, env, b, "stepup", sealTestCookie(t, newCookieKey, "stepup", now.Add(-time.Hour), data)), "an hour ago")
	assert.True(t, adminWith(t, env, b, "stepup", sealTestCookie(t, newCookieKey, "stepup", now.Add(time.Second), data)), "a second left")

	env.Clock.Advance(5*time.Minute - time.Second)
	assert.True(t, adminWith(t, env, b, "stepup", value), "the grant's last second")
	env.Clock.Advance(5*time.Minute + time.Second)
	assert.False(t, adminWith(t, env, b, "stepup", value), "kept past its Max-Age")
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
