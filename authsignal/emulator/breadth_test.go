package emulator_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup/authsignal/emulator"
)

// callList sends an authenticated request whose answer is a JSON array.
func callList(t testing.TB, srv *emulator.Server, method, path string, body any) (int, []map[string]any) {
	t.Helper()
	status, raw := callRaw(t, srv.URL, secret, method, path, body)
	var out []map[string]any
	if status == http.StatusOK {
		require.NoError(t, json.Unmarshal(raw, &out), "body %s", raw)
	}
	return status, out
}

func TestTrackAcceptsWhatTheOfficialSDKsSend(t *testing.T) {
	srv := start(t, emulator.Config{})
	crypto := map[string]any{"asset": "BTC", "address": "bc1q", "txnHash": "0xab", "assetAmount": 0.5, "assetAmountUsd": nil}
	got := track(t, srv, "alice", "withdraw", map[string]any{
		"customDomain":       "auth.example.com", // Node SDK 2.21
		"crypto":             crypto,             // Go SDK v2
		"redirectToSettings": nil,                // Go SDK v2 sends a nil *bool as null
		"locale":             "en",
	})
	assert.Equal(t, "ALLOW", got.State)
	tracked := srv.Tracked()
	require.Len(t, tracked, 1)
	assert.Equal(t, "auth.example.com", tracked[0].CustomDomain, "kept")
	assert.Equal(t, crypto, tracked[0].Crypto, "kept")

	tests := []struct {
		name string
		body map[string]any
	}{
		{"a field no SDK or doc knows", map[string]any{"customDomian": "x"}},
		{"crypto that is not an object", map[string]any{"crypto": "BTC"}},
		{"customDomain that is not a string", map[string]any{"customDomain": 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := call(t, srv, http.MethodPost, "/v1/users/alice/actions/withdraw", tt.body)
			assert.Equal(t, http.StatusBadRequest, status, "%v", body)
		})
	}
}

func TestUpdateUserAcceptsWhatTheOfficialSDKsSend(t *testing.T) {
	srv := start(t, emulator.Config{Users: []emulator.User{alice}})
	for _, method := range []string{http.MethodPatch, http.MethodPost} { // Ruby sends POST
		t.Run(method, func(t *testing.T) {
			status, got := call(t, srv, method, "/v1/users/alice", map[string]any{
				"email": "new@example.com", "emailVerified": true,
				"phoneNumber": "+6427123456", "phoneNumberVerified": false,
				"username": "alice", "displayName": "Alice", "locale": "fr-NZ",
				"custom": map[string]any{"foo": "bar"}, "defaultVerificationMethod": "EMAIL_OTP",
			})
			require.Equal(t, http.StatusOK, status, "%v", got)
			assert.Equal(t, "alice", got["userId"])
			assert.Equal(t, "new@example.com", got["email"])
			assert.Equal(t, true, got["emailVerified"])
			assert.Equal(t, "+6427123456", got["phoneNumber"])
			assert.Equal(t, false, got["phoneNumberVerified"])
			assert.Equal(t, "fr-NZ", got["locale"])
			assert.Equal(t, map[string]any{"foo": "bar"}, got["custom"])
		})
	}

	_, got := call(t, srv, http.MethodGet, "/v1/users/alice", nil)
	assert.Equal(t, true, got["emailVerified"], "kept and returned by get user")
	assert.Nil(t, got["userId"], "get user does not answer userId")

	t.Run("a new email is unverified unless said otherwise", func(t *testing.T) {
		_, got := call(t, srv, http.MethodPatch, "/v1/users/alice", map[string]any{"email": "other@example.com"})
		assert.Equal(t, false, got["emailVerified"])
	})
	t.Run("an empty string clears a field, a missing one keeps it", func(t *testing.T) {
		_, got := call(t, srv, http.MethodPatch, "/v1/users/alice", map[string]any{"displayName": ""})
		assert.Nil(t, got["displayName"])
		assert.Equal(t, "fr-NZ", got["locale"])
	})

	refusals := []struct {
		name string
		body map[string]any
	}{
		{"a field no SDK or doc knows", map[string]any{"nickname": "al"}},
		{"emailVerified that is not a boolean", map[string]any{"emailVerified": "yes"}},
		{"a default method the user has not enrolled", map[string]any{"defaultVerificationMethod": "SMS"}},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			status, body := call(t, srv, http.MethodPatch, "/v1/users/alice", tt.body)
			assert.Equal(t, http.StatusBadRequest, status, "%v", body)
		})
	}
}

func TestAuthenticators(t *testing.T) {
	clk := newClock()
	srv := start(t, emulator.Config{Now: clk.Now, Rules: mustRules(t, trackRules)})
	path := "/v1/users/bob/authenticators"

	status, list := callList(t, srv, http.MethodGet, path, nil)
	require.Equal(t, http.StatusOK, status)
	assert.Empty(t, list, "an unknown user has none")

	status, got := call(t, srv, http.MethodPost, path, map[string]any{"verificationMethod": "SMS", "phoneNumber": "+64270000000"})
	require.Equal(t, http.StatusOK, status, "%v", got)
	sms := got["authenticator"].(map[string]any)
	assert.Equal(t, "SMS", sms["verificationMethod"])
	assert.Equal(t, "+64270000000", sms["phoneNumber"])
	assert.Equal(t, "bob", sms["userId"])
	assert.Equal(t, "2026-01-02T03:04:05.000Z", sms["createdAt"])
	assert.NotEmpty(t, sms["userAuthenticatorId"])

	_, user := call(t, srv, http.MethodGet, "/v1/users/bob", nil)
	assert.Equal(t, true, user["isEnrolled"])
	assert.Equal(t, true, user["phoneNumberVerified"], "an enrolled number is verified")

	clk.Advance(time.Minute)
	status, got = call(t, srv, http.MethodPost, path, map[string]any{"verificationMethod": "EMAIL_OTP", "email": "bob@example.com", "isDefault": true})
	require.Equal(t, http.StatusOK, status, "%v", got)
	email := got["authenticator"].(map[string]any)
	_, user = call(t, srv, http.MethodGet, "/v1/users/bob", nil)
	assert.Equal(t, "EMAIL_OTP", user["defaultVerificationMethod"], "isDefault puts it first")

	_, list = callList(t, srv, http.MethodGet, path, nil)
	require.Len(t, list, 2)
	assert.Equal(t, email["userAuthenticatorId"], list[0]["userAuthenticatorId"])
	assert.Equal(t, sms["userAuthenticatorId"], list[1]["userAuthenticatorId"], "ids are stable")

	// The enrolled user is now challenged, and the code goes to the enrolled address.
	c := track(t, srv, "bob", "changeEmail", nil)
	require.Equal(t, "CHALLENGE_REQUIRED", c.State)
	_, err := srv.CompleteChallenge(ctx(t), c.URL)
	require.NoError(t, err)
	assert.Equal(t, "bob@example.com", srv.Outbox()[0].To)

	status, got = call(t, srv, http.MethodDelete, path+"/"+url.PathEscape(email["userAuthenticatorId"].(string)), nil)
	require.Equal(t, http.StatusOK, status, "%v", got)
	status, _ = call(t, srv, http.MethodDelete, path+"/"+url.PathEscape(email["userAuthenticatorId"].(string)), nil)
	assert.Equal(t, http.StatusNotFound, status, "deleted once")
	status, _ = call(t, srv, http.MethodDelete, "/v1/users/alice/authenticators/"+url.PathEscape(sms["userAuthenticatorId"].(string)), nil)
	assert.Equal(t, http.StatusNotFound, status, "another user's authenticator")

	status, _ = call(t, srv, http.MethodDelete, path+"/"+url.PathEscape(sms["userAuthenticatorId"].(string)), nil)
	require.Equal(t, http.StatusOK, status)
	_, user = call(t, srv, http.MethodGet, "/v1/users/bob", nil)
	assert.Equal(t, false, user["isEnrolled"], "the last authenticator gone, the user is not enrolled")
	assert.Equal(t, "ALLOW", track(t, srv, "bob", "changeEmail", nil).State, "and is let through, as with Authsignal")

	refusals := []struct {
		name string
		body map[string]any
	}{
		{"no method", map[string]any{"email": "bob@example.com"}},
		{"unknown method", map[string]any{"verificationMethod": "CARRIER_PIGEON"}},
		{"a method the page cannot run", map[string]any{"verificationMethod": "PASSKEY"}},
		{"email OTP without an email", map[string]any{"verificationMethod": "EMAIL_OTP"}},
		{"SMS with a number not in E.164", map[string]any{"verificationMethod": "SMS", "phoneNumber": "027 000 0000"}},
		{"a field no SDK or doc knows", map[string]any{"verificationMethod": "SMS", "phoneNumber": "+64270000000", "label": "x"}},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			status, body := call(t, srv, http.MethodPost, path, tt.body)
			assert.Equal(t, http.StatusBadRequest, status, "%v", body)
		})
	}
	t.Run("the deprecated oobChannel names the method", func(t *testing.T) {
		status, got := call(t, srv, http.MethodPost, path, map[string]any{"oobChannel": "EMAIL_OTP", "email": "bob@example.com"})
		require.Equal(t, http.StatusOK, status, "%v", got)
		assert.Equal(t, "EMAIL_OTP", got["authenticator"].(map[string]any)["verificationMethod"])
	})
}

func TestQueryActions(t *testing.T) {
	clk := newClock()
	srv := start(t, emulator.Config{Now: clk.Now, Rules: mustRules(t, trackRules), Users: []emulator.User{alice}})
	old := track(t, srv, "alice", "login", map[string]any{"deviceId": "d1", "ipAddress": "192.0.2.1", "userAgent": "UA"})
	clk.Advance(31 * 24 * time.Hour)
	l := track(t, srv, "alice", "login", map[string]any{"deviceId": "d2", "ipAddress": "192.0.2.1", "userAgent": "UA"})
	clk.Advance(time.Hour)
	w := track(t, srv, "alice", "wire", nil)
	track(t, srv, "bob", "wire", nil)

	keys := func(list []map[string]any) []any {
		out := []any{}
		for _, a := range list {
			out = append(out, a["idempotencyKey"])
		}
		return out
	}
	tests := []struct {
		name   string
		query  string
		expect []any
	}{
		{"all of the last 30 days, newest first", "", []any{w.IdempotencyKey, l.IdempotencyKey}},
		{"by code", "?codes=login", []any{l.IdempotencyKey}},
		{"by codes, as the Node SDK joins them", "?codes=" + url.QueryEscape("login,wire"), []any{w.IdempotencyKey, l.IdempotencyKey}},
		{"by state", "?state=REVIEW_REQUIRED", []any{w.IdempotencyKey}},
		{"from a date", "?fromDate=" + url.QueryEscape(clk.Now().Add(-time.Minute).Format(time.RFC3339)), []any{w.IdempotencyKey}},
		{"no earlier than 30 days ago", "?fromDate=2020-01-01T00:00:00Z", []any{w.IdempotencyKey, l.IdempotencyKey}},
		{"a code with no actions", "?codes=transfer", []any{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, list := callList(t, srv, http.MethodGet, "/v1/users/alice/actions"+tt.query, nil)
			require.Equal(t, http.StatusOK, status)
			assert.Equal(t, tt.expect, keys(list))
			assert.NotContains(t, keys(list), old.IdempotencyKey)
		})
	}

	_, list := callList(t, srv, http.MethodGet, "/v1/users/alice/actions?codes=login", nil)
	require.Len(t, list, 1)
	assert.Equal(t, map[string]any{
		"actionCode": "login", "idempotencyKey": l.IdempotencyKey, "state": "CHALLENGE_REQUIRED",
		"createdAt": "2026-02-02T03:04:05.000Z", "updatedAt": "2026-02-02T03:04:05.000Z",
		"stateUpdatedAt": "2026-02-02T03:04:05.000Z", "userAgent": "UA", "ipAddress": "192.0.2.1",
	}, list[0])

	for _, q := range []string{"?codes=bad%20code", "?state=MAYBE", "?fromDate=yesterday", "?limit=1", "?codes=a&codes=b"} {
		status, _ := call(t, srv, http.MethodGet, "/v1/users/alice/actions"+q, nil)
		assert.Equal(t, http.StatusBadRequest, status, q)
	}
	status, _ := call(t, srv, http.MethodPost, "/v1/users/alice/actions", map[string]any{})
	assert.Equal(t, http.StatusMethodNotAllowed, status)
}

func TestQueryUsers(t *testing.T) {
	srv := start(t, emulator.Config{Users: []emulator.User{alice,
		{ID: "bob", Email: "bob@example.com"}, {ID: "carol", Email: "carol@example.com", PhoneNumber: "+64270000001"}}})
	ids := func(got map[string]any) []any {
		out := []any{}
		for _, u := range got["users"].([]any) {
			out = append(out, u.(map[string]any)["userId"])
		}
		return out
	}
	a := track(t, srv, "alice", "login", nil)

	tests := []struct {
		name     string
		query    string
		expect   []any
		expectLE any
	}{
		{"everyone, in id order", "", []any{"alice", "bob", "carol"}, nil},
		{"by email", "?email=bob%40example.com", []any{"bob"}, nil},
		{"by phone number", "?phoneNumber=%2B64270000001", []any{"carol"}, nil},
		{"filters are ANDed", "?email=bob%40example.com&phoneNumber=%2B64270000001", []any{}, nil},
		{"a page", "?limit=2", []any{"alice", "bob"}, "bob"},
		{"the next page", "?limit=2&lastEvaluatedUserId=bob", []any{"carol"}, nil},
		{"by token", "?token=" + url.QueryEscape(a.Token), []any{"alice"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, got := call(t, srv, http.MethodGet, "/v1/users"+tt.query, nil)
			require.Equal(t, http.StatusOK, status, "%v", got)
			assert.Equal(t, tt.expect, ids(got))
			assert.Equal(t, tt.expectLE, got["lastEvaluatedUserId"])
		})
	}

	_, got := call(t, srv, http.MethodGet, "/v1/users?token="+url.QueryEscape(a.Token), nil)
	payload := got["tokenPayload"].(map[string]any)
	assert.Equal(t, "alice", payload["sub"])
	u := got["users"].([]any)[0].(map[string]any)
	assert.Equal(t, true, u["isEnrolled"])
	assert.Equal(t, "alice@example.com", u["email"])
	assert.Equal(t, []any{"EMAIL_OTP"}, u["enrolledVerificationMethods"])
	assert.NotEmpty(t, u["createdAt"])

	forged := signWith(t, "not-the-secret", claimsOf(t, a.Token))
	for _, q := range []string{"?limit=0", "?limit=1001", "?limit=x", "?token=" + url.QueryEscape(forged), "?token=", "?name=bob"} {
		status, _ := call(t, srv, http.MethodGet, "/v1/users"+q, nil)
		assert.Equal(t, http.StatusBadRequest, status, q)
	}
}

func TestUserUpdateSemantics(t *testing.T) {
	srv := start(t, emulator.Config{Rules: mustRules(t, trackRules), Users: []emulator.User{{ID: "dan", Email: "dan@example.com", PhoneNumber: "+64270000002",
		Methods: []string{emulator.MethodEmailOTP, emulator.MethodSMS}}}})
	patch := func(t *testing.T, body map[string]any) map[string]any {
		t.Helper()
		status, got := call(t, srv, http.MethodPatch, "/v1/users/dan", body)
		require.Equal(t, http.StatusOK, status, "%v", got)
		return got
	}
	tests := []struct {
		name   string
		given  map[string]any
		expect map[string]any
	}{
		{"the default method moves first", map[string]any{"defaultVerificationMethod": "SMS"},
			map[string]any{"defaultVerificationMethod": "SMS", "enrolledVerificationMethods": []any{"SMS", "EMAIL_OTP"}}},
		{"a verified phone number", map[string]any{"phoneNumber": "+64270000003", "phoneNumberVerified": true},
			map[string]any{"phoneNumber": "+64270000003", "phoneNumberVerified": true}},
		{"the same number keeps its verification", map[string]any{"phoneNumber": "+64270000003"},
			map[string]any{"phoneNumberVerified": true}},
		{"a new number is unverified", map[string]any{"phoneNumber": "+64270000004"},
			map[string]any{"phoneNumber": "+64270000004", "phoneNumberVerified": false}},
		{"username", map[string]any{"username": "dan"}, map[string]any{"username": "dan"}},
		{"null leaves a value alone", map[string]any{"username": nil, "locale": nil}, map[string]any{"username": "dan"}},
		{"custom replaced", map[string]any{"custom": map[string]any{"a": 1}}, map[string]any{"custom": map[string]any{"a": float64(1)}}},
		{"custom cleared by {}", map[string]any{"custom": map[string]any{}}, map[string]any{"custom": nil}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := patch(t, tt.given)
			for k, v := range tt.expect {
				assert.Equal(t, v, got[k], k)
			}
		})
	}
	t.Run("the SMS authenticator follows the user's number", func(t *testing.T) {
		_, list := callList(t, srv, http.MethodGet, "/v1/users/dan/authenticators", nil)
		require.Len(t, list, 2)
		assert.Equal(t, "SMS", list[0]["verificationMethod"], "the default first")
		assert.Equal(t, "+64270000004", list[0]["phoneNumber"])
	})
}

func TestDeleteUserKeepsActionsUnlessAsked(t *testing.T) {
	srv := start(t, emulator.Config{})
	a := track(t, srv, "eve", "login", nil)
	for _, q := range []string{"", "?actions=false", "?actions=FALSE"} {
		status, _ := call(t, srv, http.MethodDelete, "/v1/users/eve"+q, nil)
		require.Equal(t, http.StatusOK, status, q)
		assert.Equal(t, "ALLOW", validate(t, srv, map[string]any{"token": a.Token})["state"], q)
	}
	status, _ := call(t, srv, http.MethodDelete, "/v1/users/eve?actions=TRUE", nil)
	require.Equal(t, http.StatusOK, status)
	assert.Equal(t, "Action not found.", validate(t, srv, map[string]any{"token": a.Token})["error"])
	other := track(t, srv, "fay", "login", nil)
	assert.Equal(t, "ALLOW", validate(t, srv, map[string]any{"token": other.Token})["state"], "another user's actions stay")
}

func TestQueryFiltersOneByOne(t *testing.T) {
	srv := start(t, emulator.Config{Users: []emulator.User{alice}})
	_, _ = call(t, srv, http.MethodPatch, "/v1/users/alice", map[string]any{"username": "al"})
	_, _ = call(t, srv, http.MethodPatch, "/v1/users/bob", map[string]any{"username": "bo"})
	_, got := call(t, srv, http.MethodGet, "/v1/users?username=bo", nil)
	require.Len(t, got["users"], 1)
	assert.Equal(t, "bob", got["users"].([]any)[0].(map[string]any)["userId"])
	_, got = call(t, srv, http.MethodGet, "/v1/users?username=", nil)
	assert.Empty(t, got["users"], "an empty filter matches empty values only")

	w := track(t, srv, "alice", "wire", nil)
	_, _ = call(t, srv, http.MethodPatch, "/v1/users/alice/actions/wire/"+w.IdempotencyKey, map[string]any{"state": "REVIEW"})
	status, list := callList(t, srv, http.MethodGet, "/v1/users/alice/actions?state=REVIEW&codes=%20wire%20,", nil)
	require.Equal(t, http.StatusOK, status)
	require.Len(t, list, 1, "REVIEW reads as REVIEW_REQUIRED; codes are trimmed")
	assert.Equal(t, "REVIEW_REQUIRED", list[0]["state"])
}
