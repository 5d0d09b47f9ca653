package stepup_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup"
	"github.com/stepupkit/stepup/authsignal"
	"github.com/stepupkit/stepup/stepuptest"
)

func TestChallengeURLOnlyOnAnAllowedOrigin(t *testing.T) {
	// stepuptest covers a foreign host and credentials in the URL; these
	// are the near misses of the default origins, https://authsignal.com
	// and https://*.authsignal.com. A well-formed http(s) URL elsewhere is
	// the configuration's mistake (500 misconfigured: no retry helps); a
	// malformed one the provider's (503 with Retry-After). Both fail closed.
	tests := []struct {
		url    string
		expect int // 303: sent there
	}{
		{"https://authsignal.com/challenge?t=1", http.StatusSeeOther},
		{"https://eu.authsignal.com/challenge?t=1", http.StatusSeeOther},
		{"https://a.b.authsignal.com/challenge", http.StatusSeeOther},
		{"https://EU.AuthSignal.COM/challenge", http.StatusSeeOther},
		{"http://eu.authsignal.com/challenge", http.StatusInternalServerError},
		{"https://eu.authsignal.com:8443/challenge", http.StatusInternalServerError},
		{"https://authsignal.com.evil.example/challenge", http.StatusInternalServerError},
		{"https://evilauthsignal.com/challenge", http.StatusInternalServerError},
		{"https://.authsignal.com/challenge", http.StatusInternalServerError},
		{"https://evil.example/.authsignal.com", http.StatusInternalServerError},
		{"https://evil.example?.authsignal.com", http.StatusInternalServerError},
		{"https://evil.example#.authsignal.com", http.StatusInternalServerError},
		{"https://evil.example\\.authsignal.com/", http.StatusServiceUnavailable},
		{"https://eu.authsignal.com@evil.example/", http.StatusServiceUnavailable},
		{"//eu.authsignal.com/challenge", http.StatusServiceUnavailable},
		{"/challenge", http.StatusServiceUnavailable},
		{"javascript://eu.authsignal.com/%0aalert(1)", http.StatusServiceUnavailable},
		{"https://eu.authsignal.com/challenge\r\nSet-Cookie: a=b", http.StatusServiceUnavailable},
		{"https://eu.authsignal.com/challenge\x00", http.StatusServiceUnavailable},
		{"https://eu.authsignal.com/challenge?t=a b", http.StatusServiceUnavailable},
		{"https://eu.authsignal.com/challenge?t=a\tb", http.StatusServiceUnavailable},
		{"https://eu.authsignal.com/challenge?t=a\x7fb", http.StatusServiceUnavailable},
		{"https://eu.authsignal.com/challenge?t=a~b!", http.StatusSeeOther},
	}
	for _, tc := range tests {
		t.Run(tc.url, func(t *testing.T) {
			provider := &fakeProvider{state: authsignal.StateChallengeRequired, url: tc.url}
			env := stepuptest.NewEnv(t, guardedApp, stepuptest.Options{
				Config:   func(c *stepup.Config) { c.ChallengeOrigins = nil },
				Provider: func(stepup.Provider) stepup.Provider { return provider },
			})
			b := env.NewBrowser()
			b.Login("alice")
			resp := b.Do(http.MethodPost, "/transfer", stepuptest.Form, "amount=5000", nil)
			require.Equal(t, tc.expect, resp.StatusCode, resp.Body)
			api := b.API(http.MethodPost, "/api/transfer", `{"amount": 5000}`, nil)
			if tc.expect == http.StatusSeeOther {
				assert.Equal(t, tc.url, resp.Header.Get("Location"))
				assert.Equal(t, http.StatusUnauthorized, api.StatusCode)
			} else {
				assert.Empty(t, resp.Header.Get("Location"), "fails closed")
				assert.Equal(t, tc.expect, api.StatusCode)
				assert.NotContains(t, api.Body, "evil", "the URL is not handed to API clients either")
			}
			if tc.expect == http.StatusInternalServerError {
				assert.Empty(t, resp.Header.Get("Retry-After"), "a configuration error is not worth retrying")
				assert.Contains(t, api.Body, `"misconfigured"`)
			}
			assert.Empty(t, env.Ledger.Runs(""))
		})
	}
}

func TestRegressionWildcardOriginsThatMatchTooMuch(t *testing.T) {
	for _, o := range []string{"https://*", "https://*evil.example", "https://*."} {
		cfg := validConfig()
		cfg.ChallengeOrigins = []string{o}
		_, err := stepup.New(cfg)
		assert.Error(t, err, "New should reject origin %q", o)
	}
	for _, o := range []string{"https://*.authsignal.com", "http://127.0.0.1:8787", "https://*.eu.example.com:8443"} {
		cfg := validConfig()
		cfg.ChallengeOrigins = []string{o}
		_, err := stepup.New(cfg)
		assert.NoError(t, err, o)
	}
}

// nilTracker answers a track with neither a response nor an error.
type nilTracker struct{ fakeProvider }

func (*nilTracker) Track(context.Context, string, string, authsignal.TrackRequest) (*authsignal.TrackResponse, error) {
	return nil, nil
}

// A provider that answers nothing at all is a provider failure: 503, the
// handler never runs.
func TestEmptyTrackAnswerFailsClosed(t *testing.T) {
	cfg := validConfig()
	cfg.Provider = &nilTracker{}
	g, err := stepup.New(cfg)
	require.NoError(t, err)
	ran := false
	h := g.Require("transfer")(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { ran = true }))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/transfer", strings.NewReader("amount=5")))
	assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
	assert.NotEmpty(t, rec.Header().Get("Retry-After"))
	assert.False(t, ran)
}

// The track request names the callback URL with the park id as its park
// parameter, the configured URL's other parameters kept and sorted (as
// url.Values.Encode writes them), a configured park replaced; and the
// client address as netip writes it, whatever spelling the connection
// reported.
func TestTrackRequestCallbackURLAndClientIP(t *testing.T) {
	for _, tc := range []struct{ callback, remote, wantIP string }{
		{"https://app.example/stepup/callback", "203.0.113.7:51234", "203.0.113.7"},
		{"https://app.example:8443/a%20b/cb?z=1&a=2&park=old&q=%C3%A9+x", "[::ffff:203.0.113.7]:1", "203.0.113.7"},
		{"http://app.example/cb?", "[2001:DB8::0001]:443", "2001:db8::1"},
		{"http://app.example/cb?park=&parka=1&par=2", "198.51.100.1", "198.51.100.1"},
	} {
		t.Run(tc.callback, func(t *testing.T) {
			fp := &fakeProvider{state: authsignal.StateAllow, record: true}
			cfg := validConfig()
			cfg.Provider = fp
			cfg.CallbackURL = tc.callback
			g, err := stepup.New(cfg)
			require.NoError(t, err)
			h := g.Require("transfer")(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
			r := httptest.NewRequest(http.MethodPost, "/transfer", strings.NewReader("amount=5"))
			r.RemoteAddr = tc.remote
			h.ServeHTTP(httptest.NewRecorder(), r)
			tracks := fp.tracked()
			require.Len(t, tracks, 1)
			got := tracks[0]

			want, err := url.Parse(tc.callback)
			require.NoError(t, err)
			q := want.Query()
			q.Set("park", got.IdempotencyKey)
			want.RawQuery = q.Encode()
			assert.Equal(t, want.String(), got.RedirectURL)
			assert.Equal(t, tc.wantIP, got.IPAddress)
		})
	}
}
