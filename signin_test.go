package stepup_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

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
