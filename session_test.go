package stepup_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/securecookie"
	"github.com/gorilla/sessions"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup"
	"github.com/stepupkit/stepup/authsignal"
	"github.com/stepupkit/stepup/stepuptest"
)

// unsavable is a session store that reads like the one it wraps and
// cannot write.
type unsavable struct{ sessions.Store }

func (u unsavable) Get(r *http.Request, name string) (*sessions.Session, error) {
	return sessions.GetRegistry(r).Get(u, name)
}

func (u unsavable) New(r *http.Request, name string) (*sessions.Session, error) {
	inner, err := u.Store.New(r, name)
	s := sessions.NewSession(u, name) // Save goes through u
	if inner != nil {
		s.Values, s.Options, s.IsNew, s.ID = inner.Values, inner.Options, inner.IsNew, inner.ID
	}
	return s, err
}

func (unsavable) Save(*http.Request, http.ResponseWriter, *sessions.Session) error {
	return errors.New("disk full")
}

// A park whose id cannot be written to the session could never be
// redeemed: the guard refuses (500) and sends nobody to a challenge, rather
// than let the user verify for nothing.
func TestUnsavableSessionRefusesToPark(t *testing.T) {
	env := stepuptest.NewEnv(t, guardedApp, stepuptest.Options{Config: func(c *stepup.Config) {
		c.Sessions = unsavable{c.Sessions}
	}})
	b := env.NewBrowser()
	b.Login("alice")
	resp := b.Do(http.MethodPost, "/transfer", stepuptest.Form, "amount=5000", nil)
	assert.Equal(t, http.StatusInternalServerError, resp.StatusCode)
	assert.Empty(t, resp.Header.Get("Location"), "nobody is sent to a challenge that cannot come back")
	assert.Empty(t, env.Ledger.Runs("transfer"))
}

// wrappedStore is a gorilla Store that is not a *sessions.CookieStore:
// the guard then keeps its data through the Store, as it does with a
// filesystem or Redis store.
type wrappedStore struct{ sessions.Store }

func (s wrappedStore) Get(r *http.Request, name string) (*sessions.Session, error) {
	return sessions.GetRegistry(r).Get(s, name)
}

func (s wrappedStore) New(r *http.Request, name string) (*sessions.Session, error) {
	inner, err := s.Store.New(r, name)
	out := sessions.NewSession(s, name)
	if inner != nil {
		out.Values, out.Options, out.IsNew, out.ID = inner.Values, inner.Options, inner.IsNew, inner.ID
	}
	return out, err
}

// The guard's session works the same with any gorilla Store: with a
// CookieStore it writes its own compact cookie with the store's keys; with
// any other Store (a filesystem store, a wrapper) it goes through the
// Store. A park is redeemed once, a refresh shows the kept answer, a
// Remember grant lets the next GET through, and Forget ends everything.
func TestGuardSessionWithAnyGorillaStore(t *testing.T) {
	keys := [][]byte{[]byte("fedcba9876543210fedcba9876543210"), []byte("0123456789abcdef0123456789abcdef")}
	for _, tc := range []struct {
		name  string
		store func(t *testing.T) sessions.Store
	}{
		{"CookieStore", func(*testing.T) sessions.Store { return sessions.NewCookieStore(keys...) }},
		{"FilesystemStore", func(t *testing.T) sessions.Store { return sessions.NewFilesystemStore(t.TempDir(), keys...) }},
		{"a wrapped CookieStore", func(*testing.T) sessions.Store { return wrappedStore{sessions.NewCookieStore(keys...)} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := stepuptest.NewEnv(t, guardedApp, stepuptest.Options{Config: func(c *stepup.Config) {
				c.Sessions = tc.store(t)
			}})
			b := env.NewBrowser()
			b.Login("alice")
			cb := b.Complete(b.Challenge(b.Do(http.MethodPost, "/transfer", stepuptest.Form, "amount=5000", nil)))
			done := b.Get(cb)
			require.Equal(t, http.StatusOK, done.StatusCode, done.Body)
			again := b.Get(cb)
			assert.Equal(t, http.StatusOK, again.StatusCode, "a refresh shows the kept answer")
			assert.Len(t, env.Ledger.Runs("transfer"), 1, "run exactly once")

			pass := b.Get(b.Complete(b.Challenge(b.Get("/admin")))) // Remember 5m
			require.Equal(t, http.StatusSeeOther, pass.StatusCode, pass.Body)
			require.Equal(t, http.StatusOK, b.Get("/admin").StatusCode, "the pass")
			require.Equal(t, http.StatusOK, b.Get("/admin").StatusCode, "the grant")
			assert.Len(t, env.Ledger.Runs("admin"), 2)

			b.Do(http.MethodPost, "/logout", "", "", nil)
			b.Login("alice")
			assert.Equal(t, http.StatusSeeOther, b.Get("/admin").StatusCode, "no grant after Forget")
		})
	}
}

// An application sharing its CookieStore with the guard keeps its own
// encoding: the guard writes its cookie through copies of the store's
// codecs and never changes the store.
func TestGuardLeavesTheApplicationsCookieStoreAlone(t *testing.T) {
	store := sessions.NewCookieStore([]byte("0123456789abcdef0123456789abcdef"))
	cfg := validConfig()
	cfg.Sessions = store
	_, err := stepup.New(cfg)
	require.NoError(t, err)

	w := httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	s, err := store.New(r, "app")
	require.NoError(t, err)
	s.Values["user"] = "alice"
	s.Values[42] = []string{"a", "b"} // gorilla's map: anything gob encodes
	require.NoError(t, s.Save(r, w))

	r = httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("Cookie", strings.Split(w.Header().Get("Set-Cookie"), ";")[0])
	s, err = store.Get(r, "app")
	require.NoError(t, err)
	assert.Equal(t, "alice", s.Values["user"])
	assert.Equal(t, []string{"a", "b"}, s.Values[42])
}

// The guard's own cookie is as safe as the store's: authenticated with its
// hash key and encrypted with its block key. The park id is not readable
// in it, and a cookie changed by one character is no session at all, so
// its callback redeems nothing.
func TestGuardCookieIsAuthenticatedAndEncrypted(t *testing.T) {
	env := stepuptest.NewEnv(t, guardedApp, stepuptest.Options{})
	b := env.NewBrowser()
	b.Login("alice")
	resp := b.Do(http.MethodPost, "/transfer", stepuptest.Form, "amount=5000", nil)
	cb := b.Complete(b.Challenge(resp))
	u, err := url.Parse(cb)
	require.NoError(t, err)
	park := u.Query().Get("park")
	require.NotEmpty(t, park)

	var value string
	for _, c := range resp.Cookies() {
		if c.Name == "stepup" {
			value = c.Value
		}
	}
	require.NotEmpty(t, value)
	outer, err := base64.URLEncoding.DecodeString(value)
	require.NoError(t, err)
	parts := bytes.SplitN(outer, []byte("|"), 3)
	require.Len(t, parts, 3, "securecookie's date|value|mac")
	inner, err := base64.URLEncoding.DecodeString(string(parts[1]))
	require.NoError(t, err)
	for _, s := range [][]byte{[]byte(value), outer, inner} {
		assert.NotContains(t, string(s), park, "the park id is encrypted")
	}

	// One character changed in the MAC: not this browser's session.
	tampered := []byte(value)
	i := len(tampered) - 5
	tampered[i] ^= 'A' ^ 'B'
	req, err := http.NewRequest(http.MethodGet, cb, nil)
	require.NoError(t, err)
	for _, c := range b.Jar.Cookies(u) {
		if c.Name != "stepup" {
			req.AddCookie(c)
		}
	}
	req.AddCookie(&http.Cookie{Name: "stepup", Value: string(tampered)})
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	_ = res.Body.Close()
	assert.Equal(t, http.StatusForbidden, res.StatusCode)
	assert.Empty(t, env.Ledger.Runs("transfer"))
}

// FuzzGuardSessionData: a cookie signed with the store's own keys, so that
// it passes the MAC, whose content is anything at all, is decoded strictly:
// the guard never panics or fails with a 500, and such a cookie grants
// nothing (a protected GET is challenged).
func FuzzGuardSessionData(f *testing.F) {
	hashKey := []byte("0123456789abcdef0123456789abcdef")
	uh := sha256.Sum256([]byte("stepup-user\x00alice"))
	user := base64.RawURLEncoding.EncodeToString(uh[:12])
	id := "AAAAAAAAAAAAAAAAAAAAAA"
	valid := []byte{1, byte(len(user))}
	valid = append(valid, user...)
	valid = append(valid, 0, 0, 0, 1, byte(len(id)))
	valid = append(valid, id...)
	valid = append(valid, 0x80, 0x80, 0x80, 0x80, 0x10, 0, 0)
	for _, seed := range [][]byte{nil, {}, {1}, {0}, {2}, {1, 0, 0, 0, 0, 0, 0}, valid,
		{1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}} {
		f.Add(seed)
	}
	cfg := validConfig()
	cfg.Provider = &fakeProvider{state: authsignal.StateChallengeRequired}
	cfg.Sessions = sessions.NewCookieStore(hashKey)
	cfg.Policies = []stepup.Policy{{Method: http.MethodGet, Route: "/report", Action: "report", Remember: time.Hour}}
	cfg.Logger = slog.New(slog.DiscardHandler)
	codec := securecookie.New(hashKey, nil).SetSerializer(securecookie.NopEncoder{})
	f.Fuzz(func(t *testing.T, data []byte) {
		if data == nil {
			data = []byte{}
		}
		value, err := codec.Encode("stepup", data)
		if err != nil {
			t.Skip("too long for a cookie")
		}
		r := httptest.NewRequest(http.MethodGet, "/report", nil)
		r.Header.Set("Accept", "text/html")
		r.AddCookie(&http.Cookie{Name: "stepup", Value: value})
		g, err := stepup.New(cfg) // a guard per input: the per-user cap counts challenges
		require.NoError(t, err)
		mux := http.NewServeMux()
		ran := false
		mux.HandleFunc("GET /report", func(http.ResponseWriter, *http.Request) { ran = true })
		w := httptest.NewRecorder()
		g.Middleware(mux).ServeHTTP(w, r)
		assert.Equal(t, http.StatusSeeOther, w.Code, w.Body.String())
		assert.False(t, ran)
	})
}

// Why the guard encodes its own data rather than ask for a lighter
// gorilla serializer: a gorilla session's Values is a
// map[interface{}]interface{}, which encoding/json cannot encode, so a
// CookieStore whose codecs use securecookie.JSONEncoder cannot save any
// session at all.
func TestGorillaSessionsCannotUseJSONEncoder(t *testing.T) {
	store := sessions.NewCookieStore([]byte("0123456789abcdef0123456789abcdef"))
	for _, c := range store.Codecs {
		c.(*securecookie.SecureCookie).SetSerializer(securecookie.JSONEncoder{})
	}
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	s, err := store.New(r, "stepup")
	require.NoError(t, err)
	s.Values["stepup"] = "{}"
	err = s.Save(r, httptest.NewRecorder())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "map[interface {}]interface {}")
}
