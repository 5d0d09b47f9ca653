package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup/examples/internal/authsignalbrowser"
)

// TestSPAOverHTTP is the SPA's flow without a browser: 401 with the
// challenge URL, the challenge completed in popup mode, the retry with the
// token runs the transfer once, and the token cannot be used again.
func TestSPAOverHTTP(t *testing.T) {
	s := startServers(t)
	send := func(body, token string) (int, map[string]any) {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, s.AppURL+"/api/transfer", strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json")
		if token != "" {
			req.Header.Set("Step-Up-Token", token)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		var out map[string]any
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
		return resp.StatusCode, out
	}
	body := `{"amount": 500, "to": "bob"}`
	status, challenge := send(body, "")
	require.Equal(t, http.StatusUnauthorized, status)
	url, _ := challenge["url"].(string)
	require.True(t, strings.HasPrefix(url, s.EmulatorURL+"/challenge?"), url)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done, err := s.Emulator.CompleteChallenge(ctx, url+"&mode=popup")
	require.NoError(t, err)
	assert.Equal(t, "/challenge/done", done.Path, "popup mode hands the token to the SDK")
	token := done.Query().Get("token")

	status, out := send(body, token)
	assert.Equal(t, http.StatusOK, status)
	assert.Equal(t, "Sent 500.00 to bob after verification (token).", out["message"])
	status, _ = send(body, token)
	assert.Equal(t, http.StatusConflict, status, "a token is spent once")
	assert.Equal(t, int64(1), s.App.Transfers.Load())
}

func TestSPAServesTheSDKUnderAStrictCSP(t *testing.T) {
	s := startServers(t)
	resp, err := http.Get(s.AppURL + "/")
	require.NoError(t, err)
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Contains(t, string(page), `<script src="/authsignal-browser.js"></script>`)
	csp := resp.Header.Get("Content-Security-Policy")
	assert.Contains(t, csp, "script-src 'self';")
	assert.Contains(t, csp, "style-src 'self' "+authsignalbrowser.StyleHash+";")
	assert.Contains(t, csp, "frame-src "+s.EmulatorURL+";")

	resp, err = http.Get(s.AppURL + "/authsignal-browser.js")
	require.NoError(t, err)
	sdk, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, authsignalbrowser.Script(), sdk)

	// The page's styling is a file of its own: the CSP allows no inline style.
	assert.Contains(t, string(page), `<link rel="stylesheet" href="/style.css">`)
	resp, err = http.Get(s.AppURL + "/style.css")
	require.NoError(t, err)
	css, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, resp.Header.Get("Content-Type"), "text/css")
	assert.Contains(t, string(css), "#log")

	req, err := http.NewRequest(http.MethodPost, s.AppURL+"/api/transfer", strings.NewReader(`{"amount": 5, "to": "bob"}`))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusForbidden, resp.StatusCode, "a cross-site POST never reaches the guard")
	assert.Equal(t, int64(0), s.App.Transfers.Load())
}

// TestSPASignInOverHTTP is the SPA's sign-in without a browser: the
// password gets a 401 challenge (no password in it), the challenge is
// completed in popup mode, the same request with the token starts the
// session (204 and the login cookie), once; the token cannot sign in again.
func TestSPASignInOverHTTP(t *testing.T) {
	s := startServers(t)
	send := func(body, token string) *http.Response {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, s.AppURL+"/api/signin", strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json")
		if token != "" {
			req.Header.Set("Step-Up-Token", token)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	assert.Equal(t, http.StatusUnauthorized, send(`{"user": "alice", "password": "guess"}`, "").StatusCode)

	body := `{"user": "alice", "password": "alice-password"}`
	resp := send(body, "")
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	assert.NotContains(t, string(raw), "alice-password")
	var challenge struct{ Action, URL string }
	require.NoError(t, json.Unmarshal(raw, &challenge))
	assert.Equal(t, "signIn", challenge.Action)
	assert.Equal(t, int64(0), s.App.SignIns.Load(), "nobody signed in before the second factor")

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done, err := s.Emulator.CompleteChallenge(ctx, challenge.URL+"&mode=popup")
	require.NoError(t, err)
	token := done.Query().Get("token")

	resp = send(body, token)
	assert.Equal(t, http.StatusNoContent, resp.StatusCode)
	var session bool
	for _, c := range resp.Cookies() {
		session = session || c.Name == "spa"
	}
	assert.True(t, session, "the login session starts with the token")
	assert.Equal(t, int64(1), s.App.SignIns.Load())
	assert.Equal(t, http.StatusConflict, send(body, token).StatusCode, "a spent token signs nobody in")
	assert.Equal(t, int64(1), s.App.SignIns.Load())
}
