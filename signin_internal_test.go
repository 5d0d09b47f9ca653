package stepup

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup/authsignal"
)

// noProvider is never called: these tests read and write the sign-in
// cookie only.
type noProvider struct{}

func (noProvider) Track(context.Context, string, string, authsignal.TrackRequest) (*authsignal.TrackResponse, error) {
	panic("not called")
}

func (noProvider) Validate(context.Context, authsignal.ValidateRequest) (*authsignal.ValidateResponse, error) {
	panic("not called")
}

var signInTestNow = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)

// signInGuard seals the sign-in cookie with CookieKeys, at a fixed clock.
func signInGuard(t *testing.T) *Guard {
	t.Helper()
	g, err := New(Config{
		Provider:    noProvider{},
		CookieKeys:  [][]byte{[]byte("a 32-byte secret for the suite!!")},
		UserID:      func(*http.Request) (string, error) { return "", nil },
		CallbackURL: "https://app.example/stepup/callback",
		Now:         func() time.Time { return signInTestNow },
		SignIn:      &SignIn{Complete: func(http.ResponseWriter, *http.Request, string) error { return nil }},
	})
	require.NoError(t, err)
	require.NotNil(t, g.signIn.codec)
	return g
}

// signInRequest carries raw, sealed as the sign-in cookie until an hour
// from now.
func signInRequest(t *testing.T, g *Guard, raw []byte) *http.Request {
	t.Helper()
	v, err := g.signIn.codec.seal(raw, signInTestNow.Add(time.Hour))
	require.NoError(t, err)
	r := httptest.NewRequest(http.MethodGet, "/stepup/callback", nil)
	r.AddCookie(&http.Cookie{Name: g.signIn.cookie, Value: v})
	return r
}

func knownHashes(users ...string) []string {
	var ks []string
	for _, u := range users {
		ks = append(ks, string(appendUserHash(nil, u)))
	}
	return ks
}

const pendingID = "AAAAAAAAAAAAAAAAAAAAAA"

func TestSignInCookieLoad(t *testing.T) {
	g := signInGuard(t)
	later := signInTestNow.Add(10 * time.Minute).Unix()
	load := func(d signInData) signInData {
		raw, err := json.Marshal(&d)
		require.NoError(t, err)
		return g.loadSignIn(signInRequest(t, g, raw)).data
	}

	t.Run("a pending sign-in and known users read back", func(t *testing.T) {
		d := signInData{Pending: pendingID, Until: later, Browser: "b", Known: knownHashes("a", "b", "c", "d")}
		assert.Equal(t, d, load(d), "maxKnownUsers users are no more than it keeps")
	})
	t.Run("known users without a pending sign-in read back", func(t *testing.T) {
		d := signInData{Browser: "b", Known: knownHashes("a")}
		assert.Equal(t, d, load(d))
	})
	t.Run("more than maxKnownUsers: no state", func(t *testing.T) {
		assert.Equal(t, signInData{}, load(signInData{Pending: pendingID, Until: later, Browser: "b",
			Known: knownHashes("a", "b", "c", "d", "e")}))
	})
	t.Run("an invalid pending id: no state", func(t *testing.T) {
		assert.Equal(t, signInData{}, load(signInData{Pending: "not-an-id", Until: later, Browser: "b",
			Known: knownHashes("a")}))
	})
	for _, until := range []int64{signInTestNow.Unix(), signInTestNow.Unix() - 1} {
		t.Run("a pending sign-in past its deadline is dropped, the known users kept", func(t *testing.T) {
			got := load(signInData{Pending: pendingID, Until: until, Done: true, Browser: "b", Known: knownHashes("a")})
			assert.Equal(t, signInData{Browser: "b", Known: knownHashes("a")}, got)
		})
	}
	t.Run("at most 2048 bytes", func(t *testing.T) {
		d := signInData{Pending: pendingID, Until: later}
		raw, err := json.Marshal(&d)
		require.NoError(t, err)
		raw = append(raw, bytes.Repeat([]byte(" "), 2048-len(raw))...) // JSON allows trailing space
		assert.Equal(t, d, g.loadSignIn(signInRequest(t, g, raw)).data, "2048 bytes read")
		raw = append(raw, ' ')
		assert.Equal(t, signInData{}, g.loadSignIn(signInRequest(t, g, raw)).data, "2049 bytes are no state")
	})
}

// The sign-in cookie lasts as long as what it holds: the pending sign-in,
// knownBrowserTTL once a user signed in, and is deleted when it holds
// nothing.
func TestSignInCookieSave(t *testing.T) {
	g := signInGuard(t)
	save := func(d signInData) *http.Cookie {
		w := httptest.NewRecorder()
		require.NoError(t, g.saveSignIn(w, httptest.NewRequest(http.MethodGet, "/", nil), &signInState{data: d}))
		cs := w.Result().Cookies()
		require.Len(t, cs, 1)
		require.Equal(t, g.signIn.cookie, cs[0].Name)
		return cs[0]
	}
	c := save(signInData{Pending: pendingID, Until: signInTestNow.Add(10 * time.Minute).Unix()})
	assert.Equal(t, 600, c.MaxAge, "a pending sign-in only: until it expires")
	c = save(signInData{Pending: pendingID, Until: signInTestNow.Add(10 * time.Minute).Unix(), Browser: "b", Known: knownHashes("a")})
	assert.Equal(t, int(knownBrowserTTL/time.Second), c.MaxAge, "a known user: knownBrowserTTL")
	c = save(signInData{})
	assert.Less(t, c.MaxAge, 0, "nothing: deleted")
	assert.Empty(t, c.Value)
	c = save(signInData{Pending: pendingID, Until: signInTestNow.Unix()})
	assert.Less(t, c.MaxAge, 0, "a pending sign-in that expires now: deleted")
}

// The known users of a browser: each once, newest last, at most
// maxKnownUsers, the oldest dropped.
func TestSignInKnownUsers(t *testing.T) {
	sc := &signInState{}
	for _, u := range []string{"a", "b", "a"} {
		sc.signedIn(u)
	}
	assert.Equal(t, knownHashes("b", "a"), sc.data.Known)
	for _, u := range []string{"c", "d", "e"} {
		sc.signedIn(u)
	}
	assert.Equal(t, knownHashes("a", "c", "d", "e"), sc.data.Known, "b, the oldest, dropped")
	assert.True(t, sc.knows("a"))
	assert.False(t, sc.knows("b"))
}
