package emulator_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup/authsignal/emulator"
)

func do(t testing.TB, srv *emulator.Server, path string) (*http.Response, string, error) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, srv.URL+path, strings.NewReader(`{}`))
	require.NoError(t, err)
	req.SetBasicAuth(secret, "")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, string(body), err
}

func TestFaults(t *testing.T) {
	const trackPath = "/v1/users/alice/actions/login"
	tests := []struct {
		name  string
		fault emulator.Fault
		check func(t *testing.T, resp *http.Response, body string, err error, elapsed time.Duration)
	}{
		{"latency then a normal answer", emulator.Fault{Latency: 150 * time.Millisecond},
			func(t *testing.T, resp *http.Response, body string, err error, elapsed time.Duration) {
				require.NoError(t, err)
				assert.Equal(t, http.StatusOK, resp.StatusCode)
				assert.GreaterOrEqual(t, elapsed, 150*time.Millisecond)
			}},
		{"503", emulator.Fault{Status: 503},
			func(t *testing.T, resp *http.Response, body string, err error, _ time.Duration) {
				require.NoError(t, err)
				assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
				var e map[string]string
				require.NoError(t, json.Unmarshal([]byte(body), &e))
				assert.Equal(t, "internal_error", e["errorCode"])
				assert.Equal(t, e["errorCode"], e["error"])
			}},
		{"429", emulator.Fault{Status: 429},
			func(t *testing.T, resp *http.Response, body string, err error, _ time.Duration) {
				require.NoError(t, err)
				assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
				assert.Contains(t, body, `"errorCode":"too_many_requests"`)
			}},
		{"malformed 200", emulator.Fault{Malformed: true},
			func(t *testing.T, resp *http.Response, body string, err error, _ time.Duration) {
				require.NoError(t, err)
				assert.Equal(t, http.StatusOK, resp.StatusCode)
				assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
				assert.False(t, json.Valid([]byte(body)), body)
			}},
		{"malformed 502", emulator.Fault{Malformed: true, Status: 502},
			func(t *testing.T, resp *http.Response, body string, err error, _ time.Duration) {
				require.NoError(t, err)
				assert.Equal(t, http.StatusBadGateway, resp.StatusCode)
				assert.False(t, json.Valid([]byte(body)))
			}},
		{"drop", emulator.Fault{Drop: true},
			func(t *testing.T, resp *http.Response, body string, err error, _ time.Duration) {
				assert.Error(t, err)
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := start(t, emulator.Config{})
			srv.SetFault(tt.fault)
			began := time.Now()
			resp, body, err := do(t, srv, trackPath)
			tt.check(t, resp, body, err, time.Since(began))
			assert.Equal(t, 1, srv.Requests())

			srv.ClearFaults()
			resp, _, err = do(t, srv, trackPath)
			require.NoError(t, err)
			assert.Equal(t, http.StatusOK, resp.StatusCode, "cleared")
			assert.Equal(t, 2, srv.Requests())
		})
	}
}

func TestFaultTimesAndPathPrefix(t *testing.T) {
	srv := start(t, emulator.Config{Users: []emulator.User{alice}})
	got := track(t, srv, "alice", "login", nil)

	srv.SetFault(emulator.Fault{Status: 500, Times: 2, PathPrefix: "/validate"})
	statuses := func(path string, n int) []int {
		var out []int
		for range n {
			resp, _, err := do(t, srv, path)
			require.NoError(t, err)
			out = append(out, resp.StatusCode)
		}
		return out
	}
	assert.Equal(t, []int{200}, statuses("/v1/users/alice/actions/login", 1), "other paths are untouched")
	status, _ := callRaw(t, srv.URL, secret, http.MethodPost, "/v1/validate", map[string]any{"token": got.Token})
	assert.Equal(t, 500, status)
	status, _ = callRaw(t, srv.URL, secret, http.MethodPost, "/v1/validate", map[string]any{"token": got.Token})
	assert.Equal(t, 500, status)
	status, _ = callRaw(t, srv.URL, secret, http.MethodPost, "/v1/validate", map[string]any{"token": got.Token})
	assert.Equal(t, 200, status, "Times: 2 faults, then normal")
	assert.Equal(t, 5, srv.Requests())

	srv.SetFault(emulator.Fault{Drop: true})
	resp, _ := newBrowser(t).get(got.URL)
	assert.Equal(t, http.StatusOK, resp.StatusCode, "faults never apply to the hosted page")
	status, _ = callRaw(t, srv.URL, secret, http.MethodGet, "/v1/__emulator/tracked", nil)
	assert.Equal(t, http.StatusOK, status, "nor to the emulator's own endpoints")
	_, err := srv.CompleteChallenge(ctx(t), got.URL)
	require.Error(t, err, "an ALLOW action for an enrolled user has nothing to complete")
	assert.Equal(t, 5, srv.Requests())
}

func TestLatencyFaultEndsWithTheRequest(t *testing.T) {
	srv := start(t, emulator.Config{})
	srv.SetFault(emulator.Fault{Latency: time.Hour})
	client := &http.Client{Timeout: 100 * time.Millisecond}
	req, err := http.NewRequest(http.MethodGet, srv.URL+"/v1/users/alice", nil)
	require.NoError(t, err)
	req.SetBasicAuth(secret, "")
	_, err = client.Do(req)
	assert.Error(t, err)
	done := make(chan struct{})
	go func() { srv.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close waits for a sleeping fault")
	}
}

func TestMaxActionsEvictsTheOldest(t *testing.T) {
	srv := start(t, emulator.Config{MaxActions: 3, AutoEnroll: true, Rules: mustRules(t, `defaultState: CHALLENGE_REQUIRED`)})
	var results []trackResult
	for i := range 5 {
		r := track(t, srv, fmt.Sprintf("u%d", i), "login", nil)
		_, err := srv.FailChallenge(ctx(t), r.URL) // one code each in the outbox
		require.NoError(t, err)
		results = append(results, r)
	}
	tracked := srv.Tracked()
	require.Len(t, tracked, 3)
	assert.Equal(t, []string{"u2", "u3", "u4"}, []string{tracked[0].UserID, tracked[1].UserID, tracked[2].UserID})
	assert.Equal(t, "Action not found.", validate(t, srv, map[string]any{"token": results[0].Token})["error"])
	assert.Equal(t, "CHALLENGE_FAILED", validate(t, srv, map[string]any{"token": results[4].Token})["state"])

	out := srv.Outbox()
	require.Len(t, out, 3, "the outbox is bounded too")
	assert.Equal(t, "u2", out[0].UserID)
}

func TestConcurrentTrackAndValidate(t *testing.T) {
	srv := start(t, emulator.Config{MaxActions: 50, Rules: mustRules(t, trackRules), Users: []emulator.User{alice}})
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				amount := (g*20 + i) * 100
				got := track(t, srv, "alice", "transfer", map[string]any{
					"custom": map[string]any{"amount": amount}, "idempotencyKey": fmt.Sprintf("k-%d-%d", g, i%5)})
				v := validate(t, srv, map[string]any{"token": got.Token, "userId": "alice"})
				assert.Equal(t, false, v["isValid"])
				_ = srv.Tracked()
				_ = srv.Outbox()
				if i%7 == 0 {
					srv.EnrollUser(emulator.User{ID: fmt.Sprintf("g%d", g)})
				}
			}
		}()
	}
	wg.Wait()
	assert.LessOrEqual(t, len(srv.Tracked()), 50)
	assert.Equal(t, 16*20*2, srv.Requests())
}
