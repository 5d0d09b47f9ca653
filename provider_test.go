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
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup"
	"github.com/stepupkit/stepup/authsignal"
	"github.com/stepupkit/stepup/authsignal/emulator"
	"github.com/stepupkit/stepup/stepuptest"
)

// emulatorGuard is a guard on an emulator in development mode (every action
// challenged), whose client uses secret, and the buffer it logs to.
func emulatorGuard(t *testing.T, secret string, mutate func(*stepup.Config)) (*stepup.Guard, *emulator.Server, *bytes.Buffer) {
	t.Helper()
	emu, err := emulator.New(emulator.Config{AutoEnroll: true, ChallengeByDefault: true})
	require.NoError(t, err)
	t.Cleanup(emu.Close)
	var logs bytes.Buffer
	cfg := validConfig()
	cfg.Provider = authsignal.NewClient(secret, authsignal.WithBaseURL(emu.APIURL()))
	cfg.ChallengeOrigins = []string{emu.URL}
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	if mutate != nil {
		mutate(&cfg)
	}
	g, err := stepup.New(cfg)
	require.NoError(t, err)
	return g, emu, &logs
}

func postTransfer(t *testing.T, h http.Handler, api bool) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/transfer", strings.NewReader("amount=5"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if api {
		req.Header.Set("Accept", "application/json")
	} else {
		req.Header.Set("Accept", "text/html")
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestMisconfiguredProviderIsNotAnOutage(t *testing.T) {
	tests := []struct {
		name      string
		secret    string
		config    func(*stepup.Config)
		expectLog []string // the logged reason names what to fix
	}{
		{"a wrong secret key", "not-the-secret", nil, []string{
			"Authsignal refused the secret key (authsignal: API error: status 401 unauthorized",
			"check the key given to authsignal.NewClient"}},
		{"a challenge URL outside ChallengeOrigins", emulator.DefaultSecret,
			func(c *stepup.Config) { c.ChallengeOrigins = nil }, // Authsignal's hosts only
			[]string{"the challenge URL's origin http://127.0.0.1:", "is not in Config.ChallengeOrigins", "add it there"}},
	}
	for _, tt := range tests {
		for _, failOpen := range []bool{false, true} {
			name := tt.name
			if failOpen {
				name += ", fail-open policy"
			}
			t.Run(name, func(t *testing.T) {
				g, _, logs := emulatorGuard(t, tt.secret, tt.config)
				var opts []stepup.RequireOption
				if failOpen {
					opts = append(opts, stepup.WithFailOpen())
				}
				ran := false
				h := g.Require("transfer", opts...)(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { ran = true }))

				page := postTransfer(t, h, false)
				assert.Equal(t, http.StatusInternalServerError, page.Code, "misconfigured, not 503")
				assert.Empty(t, page.Header().Get("Retry-After"), "trying again cannot help")
				assert.Empty(t, page.Header().Get("Location"))
				api := postTransfer(t, h, true)
				assert.Equal(t, http.StatusInternalServerError, api.Code)
				assert.Contains(t, api.Body.String(), `"error":"misconfigured"`)
				assert.False(t, ran, "fails closed, even for a fail-open policy")

				for _, want := range tt.expectLog {
					assert.Contains(t, logs.String(), want, "the log names what to fix")
				}
				assert.Contains(t, logs.String(), "level=ERROR")
				assert.NotContains(t, logs.String(), "not-the-secret", "the key is never logged")
			})
		}
	}
}

func TestProviderOutageIsStillA503(t *testing.T) {
	g, emu, _ := emulatorGuard(t, emulator.DefaultSecret, nil)
	emu.SetFault(emulator.Fault{Status: http.StatusBadGateway})
	rec := postTransfer(t, g.Require("transfer")(http.NotFoundHandler()), true)
	assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
	assert.NotEmpty(t, rec.Header().Get("Retry-After"))
}

func TestCheckProvider(t *testing.T) {
	tests := []struct {
		name   string
		secret string
		fault  *emulator.Fault
		expect error // nil: the guard can talk to the provider
	}{
		{"the right key", emulator.DefaultSecret, nil, nil},
		{"a wrong key", "not-the-secret", nil, stepup.ErrMisconfigured},
		{"a provider answering 500", emulator.DefaultSecret, &emulator.Fault{Status: http.StatusInternalServerError}, stepup.ErrProvider},
		{"a provider answering 429", emulator.DefaultSecret, &emulator.Fault{Status: http.StatusTooManyRequests}, stepup.ErrProvider},
		{"a provider answering 399", emulator.DefaultSecret, &emulator.Fault{Status: 399}, stepup.ErrProvider},
		{"a provider dropping connections", emulator.DefaultSecret, &emulator.Fault{Drop: true}, stepup.ErrProvider},
		{"a provider refusing the request for another reason", emulator.DefaultSecret, &emulator.Fault{Status: http.StatusBadRequest}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, emu, _ := emulatorGuard(t, tt.secret, nil)
			if tt.fault != nil {
				emu.SetFault(*tt.fault)
			}
			err := g.CheckProvider(context.Background())
			if tt.expect == nil {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, tt.expect)
				assert.NotContains(t, err.Error(), "not-the-secret")
			}
			assert.Empty(t, emu.Tracked(), "the check tracks nothing")
		})
	}
}

func TestCheckProviderNamesTheKeyToFix(t *testing.T) {
	g, _, _ := emulatorGuard(t, "not-the-secret", nil)
	err := g.CheckProvider(context.Background())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "check the key given to authsignal.NewClient")
}

func TestCheckProviderHonoursTheProviderTimeout(t *testing.T) {
	g, emu, _ := emulatorGuard(t, emulator.DefaultSecret, func(c *stepup.Config) { c.ProviderTimeout = 50 * time.Millisecond })
	emu.SetFault(emulator.Fault{Latency: 2 * time.Second})
	start := time.Now()
	err := g.CheckProvider(context.Background())
	assert.True(t, errors.Is(err, stepup.ErrProvider), "%v", err)
	assert.Less(t, time.Since(start), time.Second)
}

// refusingValidate is a provider whose validate calls Authsignal refuses,
// as with a key rotated between the track and the callback.
type refusingValidate struct{ stepup.Provider }

func (refusingValidate) Validate(context.Context, authsignal.ValidateRequest) (*authsignal.ValidateResponse, error) {
	return nil, &authsignal.APIError{StatusCode: http.StatusUnauthorized, Code: "unauthorized"}
}

func TestCallbackWithARefusedKeyIsMisconfigured(t *testing.T) {
	env := stepuptest.NewEnv(t, guardedApp, stepuptest.Options{Provider: func(p stepup.Provider) stepup.Provider {
		return refusingValidate{p}
	}})
	b := env.NewBrowser()
	b.Login("alice")
	cb := b.Complete(b.Challenge(b.Do(http.MethodPost, "/transfer", stepuptest.Form, "amount=5000", nil)))
	resp := b.Get(cb)
	assert.Equal(t, http.StatusInternalServerError, resp.StatusCode, resp.Body)
	assert.Empty(t, resp.Header.Get("Retry-After"))
	assert.Empty(t, env.Ledger.Runs("transfer"), "nothing runs")
}
