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
