package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup/authsignal"
)

// syncBuffer is an io.Writer safe to read while run writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

var apiURLRE = regexp.MustCompile(`API base URL: (\S+)`)

// startRun runs the program in the background and returns its API URL.
func startRun(t *testing.T, args []string, getenv func(string) string) (apiURL string, stdout, stderr *syncBuffer, stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stdout, stderr = &syncBuffer{}, &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- run(ctx, args, getenv, stdout, stderr) }()
	require.Eventually(t, func() bool { return apiURLRE.MatchString(stdout.String()) }, 5*time.Second, 10*time.Millisecond)
	stop = func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(10 * time.Second):
			t.Fatal("run did not return after cancel")
			return nil
		}
	}
	return apiURLRE.FindStringSubmatch(stdout.String())[1], stdout, stderr, stop
}

func post(t *testing.T, url, key, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	require.NoError(t, err)
	req.SetBasicAuth(key, "")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

func TestRunServesAndShutsDown(t *testing.T) {
	rules := filepath.Join(t.TempDir(), "rules.yaml")
	require.NoError(t, os.WriteFile(rules, []byte("actions: {transfer: {default: CHALLENGE_REQUIRED}}\n"), 0o600))
	const secret = "env-secret-value"
	api, stdout, stderr, stop := startRun(t,
		[]string{"-addr", "127.0.0.1:0", "-rules", rules, "-user", "alice:alice@example.com", "-user", "bob:bob@example.com"},
		env(map[string]string{"AUTHSIGNAL_SECRET": secret}))

	assert.True(t, strings.HasPrefix(api, "http://127.0.0.1:"), api)
	assert.True(t, strings.HasSuffix(api, "/v1"), api)
	status, body := post(t, api+"/users/alice/actions/transfer", secret, `{}`)
	assert.Equal(t, http.StatusOK, status)
	assert.Contains(t, body, `"state":"CHALLENGE_REQUIRED"`)
	assert.Contains(t, body, `"url":"`+strings.TrimSuffix(api, "/v1")+`/challenge?token=`)
	status, _ = post(t, api+"/users/alice/actions/transfer", "emulator-secret", `{}`)
	assert.Equal(t, http.StatusUnauthorized, status, "the secret comes from the environment")

	require.NoError(t, stop())
	assert.Contains(t, stdout.String(), "custom (not shown)")
	for _, out := range []string{stdout.String(), stderr.String()} {
		assert.NotContains(t, out, secret, "the secret is never printed")
		assert.NotContains(t, out, "eyJ", "tokens are never printed")
	}
}

func TestRunSecretFlagWins(t *testing.T) {
	api, _, _, stop := startRun(t, []string{"-addr", "127.0.0.1:0", "-secret", "flag-secret", "-auto-enroll", "-dev=false"},
		env(map[string]string{"AUTHSIGNAL_SECRET": "env-secret"}))
	defer stop()
	status, body := post(t, api+"/users/u/actions/login", "flag-secret", `{}`)
	assert.Equal(t, http.StatusOK, status)
	assert.Contains(t, body, `"isEnrolled":true`)
}

func TestRunRejectsBadArguments(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{"user without email", []string{"-user", "alice"}},
		{"unknown flag", []string{"-nope"}},
		{"missing rules file", []string{"-rules", "/does/not/exist.yaml"}},
		{"stray argument", []string{"serve"}},
		{"bad public URL", []string{"-addr", "127.0.0.1:0", "-public-url", "ftp://x"}},
		{"bad address", []string{"-addr", "256.0.0.1:99999"}},
		{"app origin with a path", []string{"-addr", "127.0.0.1:0", "-app-origin", "http://127.0.0.1:8080/app"}},
		{"app origin wildcard", []string{"-addr", "127.0.0.1:0", "-app-origin", "*"}},
		{"webhook URL without a secret", []string{"-addr", "127.0.0.1:0", "-webhook-url", "http://127.0.0.1:1/hook"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			err := run(context.Background(), tt.args, env(map[string]string{"AUTHSIGNAL_SECRET": "hidden-secret"}), &out, &out)
			assert.Error(t, err)
			assert.NotContains(t, out.String(), "hidden-secret", "usage never shows the secret")
		})
	}
}

func TestRunAppOriginMayFrameThePage(t *testing.T) {
	api, stdout, _, stop := startRun(t, []string{"-addr", "127.0.0.1:0", "-auto-enroll",
		"-app-origin", "http://127.0.0.1:8080", "-app-origin", "http://localhost:3000"}, env(nil))
	defer stop()
	assert.Contains(t, stdout.String(), "app origins:  http://127.0.0.1:8080 http://localhost:3000")
	status, body := post(t, api+"/users/u/actions/login", "emulator-secret", `{}`)
	require.Equal(t, http.StatusOK, status)
	challenge := regexp.MustCompile(`"url":"([^"]+)"`).FindStringSubmatch(body)
	require.NotNil(t, challenge)
	resp, err := http.Get(strings.ReplaceAll(challenge[1], `\u0026`, "&") + "&mode=popup")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Contains(t, resp.Header.Get("Content-Security-Policy"), "frame-ancestors http://127.0.0.1:8080 http://localhost:3000;")
	assert.Empty(t, resp.Header.Get("X-Frame-Options"))
}

func TestRunDefaultsToDevModeThatChallenges(t *testing.T) {
	api, stdout, _, stop := startRun(t, []string{"-addr", "127.0.0.1:0"}, env(nil))
	defer stop()
	assert.Contains(t, stdout.String(), "mode:         development: every user is enrolled with email OTP on first sight")
	assert.Contains(t, stdout.String(), "rules:        none: every action CHALLENGE_REQUIRED")
	assert.Regexp(t, `methods:      email and SMS codes, authenticator app \(TOTP\), passkey; .*; `+
		`passkeys need a host name, not 127\.0\.0\.1: -public-url http://localhost:[0-9]+\n`, stdout.String())

	status, body := post(t, api+"/users/someone-new/actions/anything", emulatorSecret, `{}`)
	require.Equal(t, http.StatusOK, status)
	assert.Contains(t, body, `"state":"CHALLENGE_REQUIRED"`, "no rules file: every action is challenged")
	assert.Contains(t, body, `"isEnrolled":true`, "a user is enrolled on first sight")
	assert.Contains(t, body, `"enrolledVerificationMethods":["EMAIL_OTP"]`)
}

func TestRunDevModeRulesStillDecide(t *testing.T) {
	rules := filepath.Join(t.TempDir(), "rules.yaml")
	require.NoError(t, os.WriteFile(rules, []byte("actions: {small: {default: ALLOW}}\n"), 0o600))
	api, stdout, _, stop := startRun(t, []string{"-addr", "127.0.0.1:0", "-rules", rules}, env(nil))
	defer stop()
	assert.Contains(t, stdout.String(), "(an action it does not decide is CHALLENGE_REQUIRED)")
	_, body := post(t, api+"/users/u/actions/small", emulatorSecret, `{}`)
	assert.Contains(t, body, `"state":"ALLOW"`)
	_, body = post(t, api+"/users/u/actions/other", emulatorSecret, `{}`)
	assert.Contains(t, body, `"state":"CHALLENGE_REQUIRED"`)
}

func TestRunFaithfulBehavesAsATenant(t *testing.T) {
	rules := filepath.Join(t.TempDir(), "rules.yaml")
	require.NoError(t, os.WriteFile(rules, []byte("actions: {transfer: {rules: [{id: large-transfer, state: CHALLENGE_REQUIRED}]}}\n"), 0o600))
	tests := []struct {
		name       string
		args       []string
		expectMode string
		expectRule string
		action     string
		expect     string // in the track's answer
		expectLog  string // in the log; "" = not checked
	}{
		{"without rules every action is allowed", []string{"-faithful"},
			"faithful: only -user users are enrolled", "none: every action ALLOW", "anything", `"state":"ALLOW"`, ""},
		{"a challenge for an unenrolled user is allowed, and the log says why", []string{"-faithful", "-rules", rules},
			"faithful: only -user users are enrolled", rules + "\n", "transfer", `"state":"ALLOW"`,
			`state=ALLOW rules=[large-transfer] why="CHALLENGE_REQUIRED became ALLOW: user not enrolled`},
		{"-auto-enroll enrols", []string{"-faithful", "-auto-enroll", "-rules", rules},
			"faithful, with every user enrolled", rules + "\n", "transfer", `"state":"CHALLENGE_REQUIRED"`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			api, stdout, stderr, stop := startRun(t, append([]string{"-addr", "127.0.0.1:0"}, tt.args...), env(nil))
			defer stop()
			assert.Contains(t, stdout.String(), "mode:         "+tt.expectMode)
			assert.Contains(t, stdout.String(), "rules:        "+tt.expectRule)
			_, body := post(t, api+"/users/carol/actions/"+tt.action, emulatorSecret, `{}`)
			assert.Contains(t, body, tt.expect)
			if tt.expectLog != "" {
				assert.Contains(t, stderr.String(), tt.expectLog)
			}
		})
	}
}

const emulatorSecret = "emulator-secret"

func TestBannerWithAHostNameSaysNothingMoreOfPasskeys(t *testing.T) {
	_, stdout, _, stop := startRun(t, []string{"-addr", "127.0.0.1:0", "-public-url", "http://localhost:8787"}, env(nil))
	defer stop()
	assert.Contains(t, stdout.String(), "methods:      email and SMS codes, authenticator app (TOTP), passkey; an action's methods: in the rules limits them\n")
}

func TestRunDeliversSignedWebhooks(t *testing.T) {
	type delivery struct {
		sig  string
		body []byte
	}
	got := make(chan delivery, 4)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- delivery{r.Header.Get(authsignal.WebhookSignatureHeader), b}
	}))
	defer hook.Close()
	api, _, _, stop := startRun(t, []string{"-addr", "127.0.0.1:0", "-webhook-url", hook.URL},
		env(map[string]string{"AUTHSIGNAL_WEBHOOK_SECRET": "whsec"}))
	defer stop()
	status, _ := post(t, api+"/users/alice/actions/wire", "emulator-secret", `{"idempotencyKey":"k1"}`)
	require.Equal(t, http.StatusOK, status)
	req, err := http.NewRequest(http.MethodPatch, api+"/users/alice/actions/wire/k1", strings.NewReader(`{"state":"REVIEW_SUCCEEDED"}`))
	require.NoError(t, err)
	req.SetBasicAuth("emulator-secret", "")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	select {
	case d := <-got:
		require.NoError(t, authsignal.VerifyWebhook(d.body, d.sig, "whsec", 0, time.Now()))
		assert.Contains(t, string(d.body), `"type":"action.updated"`)
		assert.Contains(t, string(d.body), `"idempotencyKey":"k1","state":"REVIEW_SUCCEEDED"`)
	case <-time.After(10 * time.Second):
		t.Fatal("no webhook delivered")
	}
}
