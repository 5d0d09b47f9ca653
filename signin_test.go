package stepup_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/sessions"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup"
	"github.com/stepupkit/stepup/authsignal"
	"github.com/stepupkit/stepup/stepuptest"
)

// enrolledProvider is fakeProvider answering for a user with a second
// factor.
type enrolledProvider struct{ *fakeProvider }

func (p enrolledProvider) Track(ctx context.Context, user, action string, req authsignal.TrackRequest) (*authsignal.TrackResponse, error) {
	resp, err := p.fakeProvider.Track(ctx, user, action, req)
	if resp != nil {
		resp.IsEnrolled = true
	}
	return resp, err
}

func TestSignInServeMux(t *testing.T) {
	stepuptest.RunSignIn(t, serveMux)
}

// The sign-in cookie through each way the guard keeps its state: sealed
// with CookieKeys, through any other gorilla Store.
func TestSignInCookieModes(t *testing.T) {
	keys := [][]byte{[]byte("fedcba9876543210fedcba9876543210"), []byte("0123456789abcdef0123456789abcdef")}
	for _, tc := range []struct {
		name   string
		config func(t *testing.T, c *stepup.Config)
	}{
		{"CookieKeys", func(_ *testing.T, c *stepup.Config) {
			c.Sessions, c.CookieKeys = nil, [][]byte{[]byte("a 32-byte secret for the suite!!")}
		}},
		{"FilesystemStore", func(t *testing.T, c *stepup.Config) { c.Sessions = sessions.NewFilesystemStore(t.TempDir(), keys...) }},
		{"a Store that names its cookies itself", func(_ *testing.T, c *stepup.Config) {
			c.Sessions = prefixedStore{sessions.NewCookieStore(keys...)}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := stepuptest.NewEnv(t, guardedApp, stepuptest.Options{Config: func(c *stepup.Config) { tc.config(t, c) }})
			b := env.NewBrowser()
			cb := b.Complete(b.Challenge(b.SignIn("alice", "")))
			assert.Equal(t, "", b.User())
			resp := b.Get(cb)
			require.Equal(t, http.StatusSeeOther, resp.StatusCode, resp.Body)
			assert.Equal(t, stepuptest.SignInNext, resp.Header.Get("Location"))
			assert.Equal(t, "alice", b.User())
			refresh := b.Get(cb)
			assert.Equal(t, http.StatusSeeOther, refresh.StatusCode)
			assert.Len(t, env.Ledger.Runs("signIn"), 1)

			victim := env.NewBrowser()
			cb2 := b.Complete(b.Challenge(b.SignIn("mallory", "")))
			assert.Equal(t, http.StatusForbidden, victim.Get(cb2).StatusCode, "login CSRF refused")
			assert.Equal(t, "", victim.User())
		})
	}
}

// prefixedStore is a gorilla Store that keeps each session in a cookie
// of a name of its own ("app-" and the session's): the guard, which cannot
// know it, reads the sign-in cookie through the Store at every callback.
type prefixedStore struct{ *sessions.CookieStore }

func (s prefixedStore) Get(r *http.Request, name string) (*sessions.Session, error) {
	return s.New(r, name) // not through the registry, which names a session as asked
}

func (s prefixedStore) New(r *http.Request, name string) (*sessions.Session, error) {
	return s.CookieStore.New(r, "app-"+name)
}

func TestNewChecksSignIn(t *testing.T) {
	complete := func(http.ResponseWriter, *http.Request, string) error { return nil }
	for _, tc := range []struct {
		name   string
		given  stepup.SignIn
		expect string
	}{
		{"Complete is required", stepup.SignIn{}, "Config.SignIn.Complete is required"},
		{"Next is a local path", stepup.SignIn{Complete: complete, Next: "https://evil.example/"}, "Config.SignIn.Next"},
		{"Next is not protocol-relative", stepup.SignIn{Complete: complete, Next: "//evil.example/"}, "Config.SignIn.Next"},
		{"Next has no backslash", stepup.SignIn{Complete: complete, Next: `/\evil.example`}, "Config.SignIn.Next"},
		{"Next has no control characters", stepup.SignIn{Complete: complete, Next: "/home\r\nX: y"}, "Config.SignIn.Next"},
		{"Action is an action code", stepup.SignIn{Complete: complete, Action: "sign in"}, "action code"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := validConfig()
			cfg.SignIn = &tc.given
			_, err := stepup.New(cfg)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.expect)
		})
	}
	t.Run("defaults: action signIn, Next /", func(t *testing.T) {
		cfg := validConfig()
		cfg.Provider = enrolledProvider{&fakeProvider{state: authsignal.StateAllow}}
		given := &stepup.SignIn{Complete: func(http.ResponseWriter, *http.Request, string) error { return nil }}
		cfg.SignIn = given
		g, err := stepup.New(cfg)
		require.NoError(t, err)
		given.Next = "https://evil.example/" // the guard keeps its own copy

		w := httptest.NewRecorder()
		r := httptest.NewRequest(http.MethodPost, "/login", nil)
		r.Header.Set("Accept", "text/html")
		g.SignIn(w, r, "alice")
		assert.Equal(t, http.StatusSeeOther, w.Code)
		assert.Equal(t, "/", w.Header().Get("Location"))
	})
}

func TestSignInWithoutConfigIsMisconfigured(t *testing.T) {
	var logs bytes.Buffer
	cfg := validConfig()
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	g, err := stepup.New(cfg)
	require.NoError(t, err)
	w := httptest.NewRecorder()
	g.SignIn(w, httptest.NewRequest(http.MethodPost, "/login", nil), "alice")
	assert.Equal(t, http.StatusInternalServerError, w.Code)
	assert.Contains(t, logs.String(), "Config.SignIn is not set")
}

// Complete that answers itself keeps its answer; one that fails after
// answering is logged, not answered twice.
func TestSignInCompleteAnswers(t *testing.T) {
	for _, tc := range []struct {
		name     string
		err      error
		expectIn string
	}{
		{"answers", nil, "level=INFO"},
		{"answers, then fails", errors.New("audit log down"), "audit log down"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			cfg := validConfig()
			cfg.Provider = enrolledProvider{&fakeProvider{state: authsignal.StateAllow}}
			cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
			cfg.SignIn = &stepup.SignIn{Complete: func(w http.ResponseWriter, _ *http.Request, user string) error {
				w.WriteHeader(http.StatusOK)
				_, _ = w.Write([]byte("welcome " + user))
				return tc.err
			}}
			g, err := stepup.New(cfg)
			require.NoError(t, err)
			w := httptest.NewRecorder()
			r := httptest.NewRequest(http.MethodPost, "/login", nil)
			r.Header.Set("Accept", "text/html")
			g.SignIn(w, r, "alice")
			assert.Equal(t, http.StatusOK, w.Code)
			assert.Equal(t, "welcome alice", w.Body.String())
			assert.Contains(t, logs.String(), tc.expectIn)
			assert.Contains(t, logs.String(), "sign_in=true")
			var names []string
			for _, c := range w.Result().Cookies() {
				names = append(names, c.Name)
			}
			assert.Contains(t, names, "stepup-signin", "the sign-in cookie goes out with Complete's answer")
			assert.True(t, strings.Contains(logs.String(), "event=sign_in") == (tc.err == nil))
		})
	}
}

// A pending sign-in keeps the user, the action and the idempotency key —
// never the request's body, headers or password — in its sealed record.
func TestPendingSignInKeepsNoCredential(t *testing.T) {
	keys := [][]byte{[]byte("a 32-byte record key for testing")}
	env := stepuptest.NewEnv(t, guardedApp, stepuptest.Options{Config: func(c *stepup.Config) { c.RecordKeys = keys }})
	b := env.NewBrowser()
	cb := b.Complete(b.Challenge(b.SignIn("alice", "")))
	park := stepuptest.Param(cb, "park")
	stored, err := env.Store.Get(context.Background(), park)
	require.NoError(t, err)
	rec, err := stepup.OpenRecord(keys, park, stored)
	require.NoError(t, err)
	assert.Equal(t, stepup.KindSignIn, rec.Kind)
	assert.Equal(t, "alice", rec.UserID)
	assert.Empty(t, rec.Body, "no body, no password at rest")
	assert.Empty(t, rec.Header)
	assert.Empty(t, rec.BodyHash)
	assert.Empty(t, rec.Query)
	plain, err := json.Marshal(rec)
	require.NoError(t, err)
	assert.NotContains(t, string(plain), stepuptest.Password)
}

// A new sign-in in a browser ends the pending sign-in it had: one pending
// sign-in per browser.
func TestSignInAgainEndsThePendingOne(t *testing.T) {
	env := stepuptest.NewEnv(t, guardedApp, stepuptest.Options{})
	b := env.NewBrowser()
	park := stepuptest.Param(b.Complete(b.Challenge(b.SignIn("alice", ""))), "park")
	_, err := env.Store.Get(context.Background(), park)
	require.NoError(t, err)
	cb := b.Complete(b.Challenge(b.SignIn("alice", "")))
	_, err = env.Store.Get(context.Background(), park)
	assert.ErrorIs(t, err, stepup.ErrNotFound, "the first pending sign-in ended")
	assert.Equal(t, http.StatusSeeOther, b.Get(cb).StatusCode)
	assert.Equal(t, "alice", b.User())
}

// A refused callback of this browser's pending sign-in deletes the sign-in
// cookie, which held nothing else.
func TestSignInRefusedDeletesItsCookie(t *testing.T) {
	env := stepuptest.NewEnv(t, guardedApp, stepuptest.Options{})
	b := env.NewBrowser()
	resp := b.Get(b.Fail(b.Challenge(b.SignIn("alice", ""))))
	require.Equal(t, http.StatusForbidden, resp.StatusCode, resp.Body)
	var signIn *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "stepup-signin" {
			signIn = c
		}
	}
	require.NotNil(t, signIn, "the sign-in cookie is written")
	assert.Less(t, signIn.MaxAge, 0, "and deleted")
}

// undeletableStore is a MemoryStore whose Delete fails once fail is set.
type undeletableStore struct {
	*stepup.MemoryStore
	fail *atomic.Bool
}

func (s undeletableStore) Delete(ctx context.Context, id string) error {
	if s.fail.Load() {
		return errStoreDown
	}
	return s.MemoryStore.Delete(ctx, id)
}

// The callback of a sign-in opened in another browser ends it; a Store
// that fails to end it is reported with the refusal.
func TestSignInElsewhereReportsTheStore(t *testing.T) {
	fail := &atomic.Bool{}
	env := stepuptest.NewEnv(t, guardedApp, stepuptest.Options{Store: func(now func() time.Time) stepup.Store {
		return undeletableStore{stepup.NewMemoryStore(stepup.MemoryClock(now)), fail}
	}})
	attacker := env.NewBrowser()
	cb := attacker.Complete(attacker.Challenge(attacker.SignIn("mallory", "")))
	assert.Equal(t, http.StatusForbidden, env.NewBrowser().Get(cb).StatusCode)
	err := env.Events.LastRefusal()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "sign-in ended")
	assert.NotContains(t, err.Error(), "ending it")

	cb = attacker.Complete(attacker.Challenge(attacker.SignIn("mallory", "")))
	fail.Store(true)
	assert.Equal(t, http.StatusForbidden, env.NewBrowser().Get(cb).StatusCode)
	err = env.Events.LastRefusal()
	require.ErrorIs(t, err, errStoreDown, "the Store's error is reported")
	assert.Contains(t, err.Error(), "ending it")
}

// signInUnsavable is a gorilla Store that cannot write the sign-in cookie
// (any other it writes).
type signInUnsavable struct{ sessions.Store }

func (u signInUnsavable) Get(r *http.Request, name string) (*sessions.Session, error) {
	return sessions.GetRegistry(r).Get(u, name)
}

func (u signInUnsavable) New(r *http.Request, name string) (*sessions.Session, error) {
	inner, err := u.Store.New(r, name)
	s := sessions.NewSession(u, name) // Save goes through u
	if inner != nil {
		s.Values, s.Options, s.IsNew, s.ID = inner.Values, inner.Options, inner.IsNew, inner.ID
	}
	return s, err
}

func (u signInUnsavable) Save(r *http.Request, w http.ResponseWriter, s *sessions.Session) error {
	if s.Name() == "stepup-signin" {
		return errors.New("disk full")
	}
	return u.Store.Save(r, w, s)
}

// A sign-in cookie that cannot be written does not undo the sign-in: the
// browser is only not remembered, and the event says why.
func TestSignInCookieUnsaved(t *testing.T) {
	keys := [][]byte{[]byte("fedcba9876543210fedcba9876543210")}
	env := stepuptest.NewEnv(t, guardedApp, stepuptest.Options{Config: func(c *stepup.Config) {
		c.Sessions = signInUnsavable{sessions.NewFilesystemStore(t.TempDir(), keys...)}
	}})
	b := env.NewBrowser()
	resp := b.SignIn("alice", "trusted")
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, resp.Body)
	assert.Equal(t, "alice", b.User())
	signIns := env.Events.Of(stepup.EventSignIn)
	require.Len(t, signIns, 1)
	require.Error(t, signIns[0].Err)
	assert.Contains(t, signIns[0].Err.Error(), "saving the sign-in cookie: disk full")
}
