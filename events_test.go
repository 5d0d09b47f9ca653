package stepup_test

import (
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup"
	"github.com/stepupkit/stepup/stepuptest"
)

func TestLogsNeverCarrySecrets(t *testing.T) {
	var logs syncBuffer
	env := stepuptest.NewEnv(t, serveMux, stepuptest.Options{Config: func(c *stepup.Config) {
		c.Logger = slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}})
	b := env.NewBrowser()
	b.Login("alice")

	// A full flow, a refused token and an API challenge.
	cb := b.Complete(b.Challenge(b.Do(http.MethodPost, "/transfer", stepuptest.Form, "amount=5000&pin=hunter2", nil)))
	require.Equal(t, http.StatusOK, b.Get(cb).StatusCode)
	b.Get(cb)
	api := b.API(http.MethodPost, "/api/transfer", `{"amount": 9000, "pin": "hunter3"}`, nil)
	require.Equal(t, http.StatusUnauthorized, api.StatusCode)
	b.API(http.MethodPost, "/api/transfer", `{"amount": 9000}`, http.Header{stepup.TokenHeader: {"forged.token.value"}})

	out := logs.String()
	require.NotEmpty(t, out)
	assert.Contains(t, out, `"event":"challenge"`)
	assert.Contains(t, out, `"event":"replay"`)
	assert.Contains(t, out, `"event":"refuse"`)
	assert.Contains(t, out, `"action":"transfer"`)
	assert.Contains(t, out, `"state":"CHALLENGE_REQUIRED"`, "a decision line carries Authsignal's state")
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if strings.Contains(line, `"event":"refuse"`) {
			assert.NotContains(t, line, `"state"`, "a refusal before any decision has no state: %s", line)
		}
	}
	for _, secret := range []string{stepuptest.Param(cb, "token"), "hunter2", "hunter3", "forged.token.value", "emulator-secret"} {
		assert.NotContains(t, out, secret)
	}
	for _, c := range b.Jar.Cookies(mustParse(env.Server.URL)) {
		assert.NotContains(t, out, c.Value, "cookie %s", c.Name)
	}
}

// useDefaultLogger points slog.Default() at a buffer for the test.
func useDefaultLogger(t *testing.T) *syncBuffer {
	t.Helper()
	var logs syncBuffer
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewJSONHandler(&logs, nil)))
	t.Cleanup(func() { slog.SetDefault(prev) })
	return &logs
}

// A guard without Config.Logger is not silent: what goes wrong reaches
// slog.Default(), what goes right does not.
func TestRefusalsReachTheDefaultLoggerWithoutLogger(t *testing.T) {
	logs := useDefaultLogger(t)
	env := stepuptest.NewEnv(t, serveMux, stepuptest.Options{})
	b := env.NewBrowser()
	b.Login("alice")
	require.Equal(t, http.StatusOK, b.Do(http.MethodPost, "/transfer", stepuptest.Form, "amount=5", nil).StatusCode)
	cb := b.Complete(b.Challenge(b.Do(http.MethodPost, "/transfer", stepuptest.Form, "amount=5000&pin=hunter2", nil)))
	require.Equal(t, http.StatusOK, b.Get(cb).StatusCode)
	assert.Empty(t, logs.String(), "allowed, challenged and replayed requests log nothing by default")

	require.Equal(t, http.StatusForbidden, b.Do(http.MethodPost, "/block", stepuptest.Form, "x=1", nil).StatusCode)
	cb2 := b.Complete(b.Challenge(b.Do(http.MethodPost, "/transfer", stepuptest.Form, "amount=6000", nil)))
	require.Equal(t, http.StatusForbidden, b.Get(stepuptest.WithParam(cb2, "token", "forged.token.value")).StatusCode)
	out := logs.String()
	assert.Contains(t, out, `"level":"WARN","msg":"stepup","event":"block"`)
	assert.Contains(t, out, `"event":"refuse"`)
	assert.Contains(t, out, `"reason":"step_up_failed"`)
	for _, secret := range []string{stepuptest.Param(cb, "token"), stepuptest.Param(cb2, "token"), "hunter2", "forged.token.value", "emulator-secret"} {
		assert.NotContains(t, out, secret)
	}
	for _, c := range b.Jar.Cookies(mustParse(env.Server.URL)) {
		assert.NotContains(t, out, c.Value, "cookie %s", c.Name)
	}
}

// The classic first-run mistake: the emulator (or a custom Authsignal
// host) missing from ChallengeOrigins. Every challenge fails closed with
// a 500 misconfigured (no retry helps), and the log line names the setting
// and the origin to add.
func TestChallengeOriginMistakeIsLoggedWithTheFix(t *testing.T) {
	logs := useDefaultLogger(t)
	env := stepuptest.NewEnv(t, serveMux, stepuptest.Options{Config: func(c *stepup.Config) { c.ChallengeOrigins = nil }})
	b := env.NewBrowser()
	b.Login("alice")
	resp := b.Do(http.MethodPost, "/transfer", stepuptest.Form, "amount=5000", nil)
	require.Equal(t, http.StatusInternalServerError, resp.StatusCode)
	assert.Empty(t, resp.Header.Get("Retry-After"))
	out := logs.String()
	assert.Contains(t, out, `"level":"ERROR"`)
	assert.Contains(t, out, `"reason":"misconfigured"`)
	assert.Contains(t, out, "Config.ChallengeOrigins")
	assert.Contains(t, out, env.Emulator.URL, "the origin to add")
	assert.NotContains(t, out, "token=", "the challenge URL itself holds a token")
}
