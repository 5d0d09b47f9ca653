package main

import (
	"encoding/json"
	"html"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup/authsignal/emulator"
)

// anyMethodForChangeEmail writes the bank's rules with changeEmail
// accepting any method on the emulator's page, and, with policy too, the
// bank's policies without its passkey-only demand.
func anyMethodForChangeEmail(t *testing.T, policy bool) func(*AppConfig) {
	t.Helper()
	dir := t.TempDir()
	edit := func(name, line string) string {
		data, err := os.ReadFile(name)
		require.NoError(t, err)
		require.Contains(t, string(data), line)
		path := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(path, []byte(strings.Replace(string(data), line, "", 1)), 0o600))
		return path
	}
	rules := edit("rules.yaml", "    methods: [PASSKEY]   # what the page offers; the bank's policy checks it again\n")
	policies := ""
	if policy {
		policies = edit("policies.yaml", "    methods: [PASSKEY]\n")
	}
	return func(c *AppConfig) { c.RulesFile, c.PoliciesFile = rules, policies }
}

// Changing the email address takes a passkey: the challenge page offers
// alice (enrolled with email codes) to set one up, never an email code.
func TestChangeEmailNeedsAPasskey(t *testing.T) {
	tb := startBank(t)
	alice := tb.newUser().login("alice")
	challenge := tb.challenged(alice.post("/settings/email", url.Values{"email": {"alice@new.example"}}))
	tracked := tb.tracked()
	require.NotEmpty(t, tracked)
	assert.Equal(t, "changeEmail", tracked[len(tracked)-1].Action)

	_, err := tb.app.Emulator().CompleteChallengeWith(ctx(t), challenge, emulator.MethodEmailOTP)
	require.Error(t, err, "the page offers no email code for changeEmail")
	assert.NotContains(t, alice.get("/settings").Body, "alice@new.example")
}

// Where Authsignal's action offers only codes (its portal, here the
// emulator's rules, not set to passkeys), no challenge could satisfy the
// bank's policy: a 403 before anything is parked, that says what is
// needed, and nothing changes.
func TestChangeEmailRefusedWhenAuthsignalOffersNoPasskey(t *testing.T) {
	tb := startBank(t, anyMethodForChangeEmail(t, false))
	alice := tb.newUser().login("alice")
	resp := alice.post("/settings/email", url.Values{"email": {"alice@new.example"}})
	require.Equal(t, http.StatusForbidden, resp.Status, resp.Body)
	assert.Contains(t, html.UnescapeString(resp.Body), "This action needs verification with a passkey, which is not available for your account.")
	assert.Contains(t, resp.Body, `data-code="method_unavailable"`)
	assert.NotContains(t, alice.get("/settings").Body, "alice@new.example")
}

// The API's 401 carries what the customer approves, as Authsignal's rules
// judged it, for the dashboard to show beside the challenge.
func TestAPITransferShowsWhatIsApproved(t *testing.T) {
	tb := startBank(t)
	alice := tb.newUser().login("alice")
	resp := alice.api(`{"amount": 3000, "to": "bob"}`, "")
	require.Equal(t, http.StatusUnauthorized, resp.Status, resp.Body)
	var doc struct {
		Display map[string]any `json:"display"`
	}
	require.NoError(t, json.Unmarshal([]byte(resp.Body), &doc))
	assert.Equal(t, map[string]any{"amount": float64(3000), "to": "bob"}, doc.Display)
	tracked := tb.tracked()
	require.NotEmpty(t, tracked)
	assert.Equal(t, doc.Display, tracked[len(tracked)-1].Request.Custom, "shown as judged")
}
