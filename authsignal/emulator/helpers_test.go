package emulator_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup/authsignal/emulator"
)

const secret = emulator.DefaultSecret

// clock is a settable Config.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// start runs an emulator for the test.
func start(t testing.TB, cfg emulator.Config) *emulator.Server {
	t.Helper()
	srv, err := emulator.New(cfg)
	require.NoError(t, err)
	t.Cleanup(srv.Close)
	return srv
}

func mustRules(t testing.TB, yaml string) *emulator.Rules {
	t.Helper()
	r, err := emulator.ParseRules([]byte(yaml))
	require.NoError(t, err)
	return r
}

// call sends an authenticated JSON request to the API; body may be nil, a
// string (sent raw) or a value (marshalled). It returns the status and the
// decoded body.
func call(t testing.TB, srv *emulator.Server, method, path string, body any) (int, map[string]any) {
	t.Helper()
	status, raw := callRaw(t, srv.URL, secret, method, path, body)
	var out map[string]any
	if len(bytes.TrimSpace(raw)) > 0 && raw[0] == '{' {
		require.NoError(t, json.Unmarshal(raw, &out), "body %s", raw)
	}
	return status, out
}

func callRaw(t testing.TB, base, key, method, path string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		require.NoError(t, err)
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, base+path, rd)
	require.NoError(t, err)
	if key != "" {
		req.SetBasicAuth(key, "")
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, raw
}

type trackResult struct {
	State                       string   `json:"state"`
	IdempotencyKey              string   `json:"idempotencyKey"`
	URL                         string   `json:"url"`
	Token                       string   `json:"token"`
	IsEnrolled                  bool     `json:"isEnrolled"`
	EnrolledVerificationMethods []string `json:"enrolledVerificationMethods"`
	AllowedVerificationMethods  []string `json:"allowedVerificationMethods"`
	DefaultVerificationMethod   string   `json:"defaultVerificationMethod"`
	RuleIDs                     []string `json:"ruleIds"`
}

func track(t testing.TB, srv *emulator.Server, user, action string, body map[string]any) trackResult {
	t.Helper()
	if body == nil {
		body = map[string]any{}
	}
	status, raw := callRaw(t, srv.URL, secret, http.MethodPost,
		"/v1/users/"+url.PathEscape(user)+"/actions/"+url.PathEscape(action), body)
	require.Equal(t, http.StatusOK, status, "track: %s", raw)
	var out trackResult
	require.NoError(t, json.Unmarshal(raw, &out))
	return out
}

func validate(t testing.TB, srv *emulator.Server, body map[string]any) map[string]any {
	t.Helper()
	status, out := call(t, srv, http.MethodPost, "/v1/validate", body)
	require.Equal(t, http.StatusOK, status, "validate: %v", out)
	return out
}

// claimsOf decodes a JWT's payload without verifying it.
func claimsOf(t testing.TB, token string) map[string]any {
	t.Helper()
	parts := strings.Split(token, ".")
	require.Len(t, parts, 3)
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	require.NoError(t, err)
	var c map[string]any
	require.NoError(t, json.Unmarshal(raw, &c))
	return c
}

func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

var alice = emulator.User{ID: "alice", Email: "alice@example.com", Methods: []string{emulator.MethodEmailOTP}}
