package emulator_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup/authsignal/emulator"
)

func TestAuthIsCheckedBeforeRouting(t *testing.T) {
	srv := start(t, emulator.Config{})
	paths := []struct{ method, path string }{
		{http.MethodPost, "/v1/users/alice/actions/transfer"},
		{http.MethodPost, "/v1/validate"},
		{http.MethodGet, "/v1/users/alice"},
		{http.MethodGet, "/v1/users/alice/actions/transfer/k"},
		{http.MethodGet, "/v1/no-such-thing"},
		{http.MethodDelete, "/"},
		{http.MethodGet, "/v2/anything"},
		{http.MethodGet, "/v1/__emulator/tracked"},
	}
	creds := []struct {
		name string
		set  func(*http.Request)
	}{
		{"none", func(*http.Request) {}},
		{"wrong secret", func(r *http.Request) { r.SetBasicAuth("not-the-secret", "") }},
		{"secret as password", func(r *http.Request) { r.SetBasicAuth("", secret) }},
		{"non-empty password", func(r *http.Request) { r.SetBasicAuth(secret, "x") }},
		{"bearer", func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+secret) }},
	}
	for _, p := range paths {
		for _, c := range creds {
			t.Run(p.method+" "+p.path+" "+c.name, func(t *testing.T) {
				req, err := http.NewRequest(p.method, srv.URL+p.path, strings.NewReader("{}"))
				require.NoError(t, err)
				req.Header.Set("Content-Type", "application/json")
				c.set(req)
				resp, err := http.DefaultClient.Do(req)
				require.NoError(t, err)
				defer resp.Body.Close()
				assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
				var body map[string]string
				require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
				assert.Equal(t, map[string]string{
					"error":            "unauthorized",
					"errorCode":        "unauthorized",
					"errorDescription": "The request is unauthorized. Check that your API key and region base URL are correctly configured.",
				}, body)
			})
		}
	}
	t.Run("the right key gets through", func(t *testing.T) {
		status, _ := call(t, srv, http.MethodGet, "/v1/users/alice", nil)
		assert.Equal(t, http.StatusOK, status)
	})
	t.Run("a custom secret", func(t *testing.T) {
		custom := start(t, emulator.Config{Secret: "s3cret"})
		status, _ := callRaw(t, custom.URL, secret, http.MethodGet, "/v1/users/alice", nil)
		assert.Equal(t, http.StatusUnauthorized, status)
		status, _ = callRaw(t, custom.URL, "s3cret", http.MethodGet, "/v1/users/alice", nil)
		assert.Equal(t, http.StatusOK, status)
	})
}

func TestErrorShapes(t *testing.T) {
	srv := start(t, emulator.Config{})
	big := `{"custom":{"x":"` + strings.Repeat("a", 1<<20) + `"}}`
	tests := []struct {
		name         string
		method, path string
		contentType  string
		body         string
		expectStatus int
		expectCode   string
	}{
		{"unknown route", http.MethodGet, "/v1/nope", "", "", 404, "not_found"},
		{"unknown nested route", http.MethodPost, "/v1/users/a/actions/b/c/d", "", "{}", 404, "not_found"},
		{"empty segment", http.MethodPost, "/v1/users//actions/transfer", "", "{}", 404, "not_found"},
		{"trailing slash", http.MethodPost, "/v1/validate/", "", "{}", 404, "not_found"},
		{"wrong method", http.MethodGet, "/v1/validate", "", "", 405, "method_not_allowed"},
		{"bad JSON", http.MethodPost, "/v1/validate", "", `{"token":`, 400, "invalid_request"},
		{"array body", http.MethodPost, "/v1/validate", "", `[]`, 400, "invalid_request"},
		{"null body", http.MethodPost, "/v1/validate", "", `null`, 400, "invalid_request"},
		{"empty body", http.MethodPost, "/v1/users/a/actions/transfer", "", ``, 400, "invalid_request"},
		{"trailing garbage", http.MethodPost, "/v1/users/a/actions/transfer", "", `{} x`, 400, "invalid_request"},
		{"bad action code", http.MethodPost, "/v1/users/a/actions/trans%20fer", "", "{}", 400, "invalid_request"},
		{"action code too long", http.MethodPost, "/v1/users/a/actions/" + strings.Repeat("a", 65), "", "{}", 400, "invalid_request"},
		{"unknown field", http.MethodPost, "/v1/users/a/actions/transfer", "", `{"amount":5}`, 400, "invalid_request"},
		{"field in the wrong case", http.MethodPost, "/v1/users/a/actions/transfer", "", `{"DeviceID":"d"}`, 400, "invalid_request"},
		{"wrong field type", http.MethodPost, "/v1/users/a/actions/transfer", "", `{"deviceId":5}`, 400, "invalid_request"},
		{"custom not an object", http.MethodPost, "/v1/users/a/actions/transfer", "", `{"custom":[1]}`, 400, "invalid_request"},
		{"javascript redirect", http.MethodPost, "/v1/users/a/actions/transfer", "", `{"redirectUrl":"javascript:alert(1)"}`, 400, "invalid_request"},
		{"relative redirect", http.MethodPost, "/v1/users/a/actions/transfer", "", `{"redirectUrl":"/cb"}`, 400, "invalid_request"},
		{"not JSON content type", http.MethodPost, "/v1/validate", "text/plain", `{"token":"x"}`, 400, "invalid_request"},
		{"body over 1 MiB", http.MethodPost, "/v1/users/a/actions/transfer", "", big, 413, "invalid_request"},
		{"missing token", http.MethodPost, "/v1/validate", "", `{}`, 400, "invalid_request"},
		{"bad PATCH state", http.MethodPatch, "/v1/users/a", "", `{"state":"ALLOW"}`, 400, "invalid_request"},
		{"user id not UTF-8", http.MethodGet, "/v1/users/%C8", "", "", 400, "invalid_request"},
		{"user id too long", http.MethodGet, "/v1/users/" + strings.Repeat("u", 513), "", "", 400, "invalid_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body *strings.Reader
			if tt.body != "" || tt.method == http.MethodPost {
				body = strings.NewReader(tt.body)
			}
			req, err := http.NewRequest(tt.method, srv.URL+tt.path, nil)
			if body != nil {
				req, err = http.NewRequest(tt.method, srv.URL+tt.path, body)
			}
			require.NoError(t, err)
			req.SetBasicAuth(secret, "")
			ct := tt.contentType
			if ct == "" {
				ct = "application/json; charset=utf-8"
			}
			req.Header.Set("Content-Type", ct)
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			assert.Equal(t, tt.expectStatus, resp.StatusCode)
			assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
			var got map[string]string
			require.NoError(t, json.NewDecoder(resp.Body).Decode(&got))
			assert.Equal(t, tt.expectCode, got["errorCode"])
			assert.Equal(t, tt.expectCode, got["error"], "error is the twin of errorCode")
			assert.NotEmpty(t, got["errorDescription"])
		})
	}
}

const trackRules = `
defaultState: ALLOW
actions:
  transfer:
    default: ALLOW
    rules:
      - id: bad-network
        when: {field: ipAddress, op: in, value: ["203.0.113.0/24", "2001:db8::1"]}
        state: BLOCK
      - id: large-transfer
        when: {field: custom.amount, op: gt, value: 1000}
        state: CHALLENGE_REQUIRED
      - id: vip
        when:
          - {field: custom.tier, op: eq, value: vip}
          - {field: custom.flags, op: contains, value: trusted}
        state: ALLOW
      - id: watched-country
        when: {field: custom.geo.country, op: in, value: [KP, IR]}
        state: REVIEW
      - id: no-amount
        when: {field: custom.amount, op: exists, value: false}
        state: CHALLENGE_REQUIRED
  login:
    rules:
      - id: new-device
        when: {field: deviceId, op: unknown}
        state: CHALLENGE_REQUIRED
  changeEmail: {default: CHALLENGE_REQUIRED}
  signup: {default: CHALLENGE_REQUIRED, enrol: true}
  wire: {default: REVIEW_REQUIRED}
`

func TestTrackAppliesRules(t *testing.T) {
	srv := start(t, emulator.Config{Rules: mustRules(t, trackRules), Users: []emulator.User{alice}})
	tests := []struct {
		name        string
		user        string
		action      string
		body        map[string]any
		expectState string
		expectRules []string
		expectEnrol bool
	}{
		{"small amount", "alice", "transfer", map[string]any{"custom": map[string]any{"amount": 10}}, "ALLOW", []string{}, true},
		{"large amount", "alice", "transfer", map[string]any{"custom": map[string]any{"amount": 5000}}, "CHALLENGE_REQUIRED", []string{"large-transfer"}, true},
		{"large amount as a numeric string", "alice", "transfer", map[string]any{"custom": map[string]any{"amount": "1000.01"}}, "CHALLENGE_REQUIRED", []string{"large-transfer"}, true},
		{"boundary is not greater", "alice", "transfer", map[string]any{"custom": map[string]any{"amount": 1000}}, "ALLOW", []string{}, true},
		{"non-numeric amount", "alice", "transfer", map[string]any{"custom": map[string]any{"amount": "lots"}}, "ALLOW", []string{}, true},
		{"missing amount", "alice", "transfer", map[string]any{}, "CHALLENGE_REQUIRED", []string{"no-amount"}, true},
		{"IP in CIDR", "alice", "transfer", map[string]any{"ipAddress": "203.0.113.77", "custom": map[string]any{"amount": 5}}, "BLOCK", []string{"bad-network"}, true},
		{"single IPv6", "alice", "transfer", map[string]any{"ipAddress": "2001:db8::1", "custom": map[string]any{"amount": 5}}, "BLOCK", []string{"bad-network"}, true},
		{"IP outside CIDR", "alice", "transfer", map[string]any{"ipAddress": "203.0.114.1", "custom": map[string]any{"amount": 5}}, "ALLOW", []string{}, true},
		{"first match wins", "alice", "transfer", map[string]any{"ipAddress": "203.0.113.1", "custom": map[string]any{"amount": 5000}}, "BLOCK", []string{"bad-network"}, true},
		{"all conditions hold", "alice", "transfer", map[string]any{"custom": map[string]any{"amount": 5, "tier": "vip", "flags": []any{"x", "trusted"}}}, "ALLOW", []string{"vip"}, true},
		{"nested custom field in list", "alice", "transfer", map[string]any{"custom": map[string]any{"amount": 5, "geo": map[string]any{"country": "KP"}}}, "REVIEW_REQUIRED", []string{"watched-country"}, true},
		{"action default", "alice", "changeEmail", nil, "CHALLENGE_REQUIRED", []string{}, true},
		{"review", "alice", "wire", nil, "REVIEW_REQUIRED", []string{}, true},
		{"unlisted action uses defaultState", "alice", "somethingElse", nil, "ALLOW", []string{}, true},
		{"unenrolled user is allowed", "bob", "changeEmail", nil, "ALLOW", []string{}, false},
		{"unenrolled user is still blocked", "bob", "transfer", map[string]any{"ipAddress": "203.0.113.9"}, "BLOCK", []string{"bad-network"}, false},
		{"enrol rule challenges unenrolled users", "bob", "signup", nil, "CHALLENGE_REQUIRED", []string{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := track(t, srv, tt.user, tt.action, tt.body)
			assert.Equal(t, tt.expectState, got.State)
			assert.Equal(t, tt.expectRules, got.RuleIDs)
			assert.Equal(t, tt.expectEnrol, got.IsEnrolled)
		})
	}
}

func TestTrackWithoutRulesAllowsEverything(t *testing.T) {
	srv := start(t, emulator.Config{AutoEnroll: true})
	got := track(t, srv, "anyone", "anything", map[string]any{"custom": map[string]any{"amount": 1e9}})
	assert.Equal(t, "ALLOW", got.State)
	assert.True(t, got.IsEnrolled, "AutoEnroll")
	assert.Equal(t, []string{"EMAIL_OTP"}, got.EnrolledVerificationMethods)
}

func TestTrackUnknownDevice(t *testing.T) {
	srv := start(t, emulator.Config{Rules: mustRules(t, trackRules), Users: []emulator.User{alice}})
	first := track(t, srv, "alice", "login", map[string]any{"deviceId": "laptop"})
	require.Equal(t, "CHALLENGE_REQUIRED", first.State)
	assert.Equal(t, []string{"new-device"}, first.RuleIDs)

	again := track(t, srv, "alice", "login", map[string]any{"deviceId": "laptop"})
	assert.Equal(t, "CHALLENGE_REQUIRED", again.State, "a challenged device is not known until the challenge succeeds")

	_, err := srv.CompleteChallenge(ctx(t), first.URL)
	require.NoError(t, err)
	assert.Equal(t, "ALLOW", track(t, srv, "alice", "login", map[string]any{"deviceId": "laptop"}).State)
	assert.Equal(t, "CHALLENGE_REQUIRED", track(t, srv, "alice", "login", map[string]any{"deviceId": "phone"}).State)
	assert.Equal(t, "CHALLENGE_REQUIRED", track(t, srv, "alice", "login", nil).State, "no device id counts as unknown")

	srv.EnrollUser(emulator.User{ID: "carol"})
	assert.Equal(t, "CHALLENGE_REQUIRED", track(t, srv, "carol", "login", map[string]any{"deviceId": "laptop"}).State,
		"devices are per user")
}

func TestTrackResponse(t *testing.T) {
	clk := newClock()
	srv := start(t, emulator.Config{Now: clk.Now, Rules: mustRules(t, trackRules), Users: []emulator.User{
		{ID: "alice", Email: "alice@example.com", PhoneNumber: "+15550100", Methods: []string{"SMS", "EMAIL_OTP"}},
	}})
	status, raw := callRaw(t, srv.URL, secret, http.MethodPost, "/v1/users/alice/actions/changeEmail", `{}`)
	require.Equal(t, http.StatusOK, status)
	var body map[string]any
	require.NoError(t, json.Unmarshal(raw, &body))
	for _, k := range []string{"state", "idempotencyKey", "url", "token", "isEnrolled", "enrolledVerificationMethods",
		"allowedVerificationMethods", "defaultVerificationMethod", "ruleIds"} {
		assert.Contains(t, body, k)
	}
	assert.Equal(t, "CHALLENGE_REQUIRED", body["state"])
	assert.Equal(t, []any{"SMS", "EMAIL_OTP"}, body["enrolledVerificationMethods"])
	assert.Equal(t, []any{"EMAIL_OTP", "SMS"}, body["allowedVerificationMethods"])
	assert.Equal(t, "SMS", body["defaultVerificationMethod"])
	assert.Regexp(t, `^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`, body["idempotencyKey"])
	assert.Equal(t, srv.URL+"/challenge?token="+body["token"].(string), body["url"], "the url already carries a query")

	tracked := srv.Tracked()
	require.Len(t, tracked, 1)
	assert.Equal(t, "alice", tracked[0].UserID)
	assert.Equal(t, "changeEmail", tracked[0].Action)
	assert.Equal(t, body["idempotencyKey"], tracked[0].IdempotencyKey)
	assert.Equal(t, clk.Now(), tracked[0].CreatedAt)
}

func TestTrackRecordsTheRequest(t *testing.T) {
	srv := start(t, emulator.Config{})
	track(t, srv, "alice", "transfer", map[string]any{
		"redirectUrl": "https://app.example/cb?park=1", "ipAddress": "198.51.100.4", "userAgent": "UA/1",
		"deviceId": "d1", "custom": map[string]any{"amount": 42, "to": map[string]any{"iban": "X"}, "tags": []any{"a", map[string]any{"b": 1}}},
	})
	got := srv.Tracked()
	require.Len(t, got, 1)
	assert.Equal(t, "198.51.100.4", got[0].IPAddress)
	assert.Equal(t, "UA/1", got[0].UserAgent)
	assert.Equal(t, "d1", got[0].DeviceID)
	assert.Equal(t, "https://app.example/cb?park=1", got[0].Request.RedirectURL)
	assert.Equal(t, map[string]any{"amount": 42.0, "to": map[string]any{"iban": "X"}, "tags": []any{"a", map[string]any{"b": 1.0}}}, got[0].Custom)

	got[0].Custom["to"].(map[string]any)["iban"] = "changed"
	got[0].Custom["tags"].([]any)[1].(map[string]any)["b"] = 2.0
	again := srv.Tracked()[0].Custom
	assert.Equal(t, "X", again["to"].(map[string]any)["iban"], "Tracked returns deep copies")
	assert.Equal(t, 1.0, again["tags"].([]any)[1].(map[string]any)["b"], "Tracked returns deep copies")
}

func TestTrackIdempotencyKey(t *testing.T) {
	srv := start(t, emulator.Config{Rules: mustRules(t, trackRules), Users: []emulator.User{alice}})
	body := map[string]any{"idempotencyKey": "park-123", "custom": map[string]any{"amount": 5000}}
	first := track(t, srv, "alice", "transfer", body)
	assert.Equal(t, "park-123", first.IdempotencyKey)
	assert.Equal(t, "CHALLENGE_REQUIRED", first.State)

	body["custom"] = map[string]any{"amount": 1}
	second := track(t, srv, "alice", "transfer", body)
	assert.Equal(t, "park-123", second.IdempotencyKey)
	assert.Equal(t, "CHALLENGE_REQUIRED", second.State, "the stored action is returned, not re-evaluated")
	assert.Len(t, srv.Tracked(), 1)

	track(t, srv, "alice", "changeEmail", map[string]any{"idempotencyKey": "park-123"})
	assert.Len(t, srv.Tracked(), 2, "the same key for another action is another action")

	a, b := track(t, srv, "alice", "transfer", nil), track(t, srv, "alice", "transfer", nil)
	assert.NotEqual(t, a.IdempotencyKey, b.IdempotencyKey, "generated keys are fresh")
}

func TestUserIDsAreEscapedPathSegments(t *testing.T) {
	srv := start(t, emulator.Config{})
	for _, id := range []string{"a/b", "user with spaces", "ünï©ødé", "x?y#z", "%2F", "50%"} {
		t.Run(id, func(t *testing.T) {
			got := track(t, srv, id, "login", nil)
			assert.Equal(t, id, claimsOf(t, got.Token)["sub"])
			v := validate(t, srv, map[string]any{"token": got.Token, "userId": id})
			assert.Equal(t, id, v["userId"])
			status, action := call(t, srv, http.MethodGet, "/v1/users/"+url.PathEscape(id)+"/actions/login/"+url.PathEscape(got.IdempotencyKey), nil)
			require.Equal(t, http.StatusOK, status)
			assert.Equal(t, "ALLOW", action["state"])
		})
	}
}

func TestTokenClaims(t *testing.T) {
	clk := newClock()
	srv := start(t, emulator.Config{Now: clk.Now, Users: []emulator.User{alice}})
	got := track(t, srv, "alice", "transfer", map[string]any{"scope": "custom:scope"})

	parts := strings.Split(got.Token, ".")
	require.Len(t, parts, 3)
	hdr, err := base64.RawURLEncoding.DecodeString(parts[0])
	require.NoError(t, err)
	assert.JSONEq(t, `{"alg":"HS256","typ":"JWT"}`, string(hdr))
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(parts[0] + "." + parts[1]))
	assert.Equal(t, base64.RawURLEncoding.EncodeToString(m.Sum(nil)), parts[2], "HS256 with the secret")

	c := claimsOf(t, got.Token)
	jti, _ := c["jti"].(string)
	assert.NotEmpty(t, jti, "every token carries a random jti")
	delete(c, "jti")
	iat := float64(clk.Now().Unix())
	assert.Equal(t, map[string]any{
		"sub":   "alice",
		"iat":   iat,
		"exp":   iat + 600,
		"iss":   srv.URL,
		"scope": "custom:scope",
		"other": map[string]any{
			"tenantId":       "emulator-tenant",
			"publishableKey": "emulator-publishable-key",
			"userId":         "alice",
			"actionCode":     "transfer",
			"idempotencyKey": got.IdempotencyKey,
		},
	}, c)
}

func TestValidate(t *testing.T) {
	clk := newClock()
	srv := start(t, emulator.Config{Now: clk.Now, Rules: mustRules(t, trackRules), Users: []emulator.User{alice}})
	pending := track(t, srv, "alice", "changeEmail", nil)
	allowed := track(t, srv, "alice", "transfer", map[string]any{"custom": map[string]any{"amount": 1}})
	other := signWith(t, "another-secret", claimsOf(t, pending.Token))
	none := noneToken(t, claimsOf(t, pending.Token))
	tests := []struct {
		name   string
		given  map[string]any
		expect map[string]any
	}{
		{"before the challenge", map[string]any{"token": pending.Token, "userId": "alice", "action": "changeEmail"}, map[string]any{
			"isValid": false, "state": "CHALLENGE_REQUIRED", "userId": "alice", "action": "changeEmail", "actionCode": "changeEmail",
			"idempotencyKey": pending.IdempotencyKey, "stateUpdatedAt": "2026-01-02T03:04:05.000Z",
		}},
		{"an allowed action is not a passed challenge", map[string]any{"token": allowed.Token}, map[string]any{
			"isValid": false, "state": "ALLOW", "userId": "alice", "action": "transfer", "actionCode": "transfer",
			"idempotencyKey": allowed.IdempotencyKey, "stateUpdatedAt": "2026-01-02T03:04:05.000Z",
		}},
		{"wrong user", map[string]any{"token": pending.Token, "userId": "mallory"}, map[string]any{"isValid": false, "error": "User is invalid."}},
		{"wrong action", map[string]any{"token": pending.Token, "action": "transfer"}, map[string]any{"isValid": false, "error": "Action is invalid."}},
		{"garbled", map[string]any{"token": "not.a.jwt"}, map[string]any{"isValid": false, "error": "Token is invalid."}},
		{"another secret", map[string]any{"token": other}, map[string]any{"isValid": false, "error": "Token is invalid."}},
		{"alg none", map[string]any{"token": none}, map[string]any{"isValid": false, "error": "Token is invalid."}},
		{"truncated signature", map[string]any{"token": pending.Token[:len(pending.Token)-2]}, map[string]any{"isValid": false, "error": "Token is invalid."}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.expect, validate(t, srv, tt.given))
		})
	}

	t.Run("expiry follows the injected clock", func(t *testing.T) {
		clk.Advance(599 * time.Second)
		assert.Equal(t, "CHALLENGE_REQUIRED", validate(t, srv, map[string]any{"token": pending.Token})["state"])
		clk.Advance(time.Second)
		assert.Equal(t, map[string]any{"isValid": false, "error": "Token has expired."},
			validate(t, srv, map[string]any{"token": pending.Token}))
	})
}

func TestTokensAreUniqueWithinOneSecond(t *testing.T) {
	clk := newClock() // frozen: every token below has the same iat
	srv := start(t, emulator.Config{Now: clk.Now, Rules: mustRules(t, trackRules), Users: []emulator.User{alice}})
	first := track(t, srv, "alice", "changeEmail", map[string]any{
		"idempotencyKey": "k1", "redirectUrl": "https://app.example/stepup/callback?park=abc"})
	again := track(t, srv, "alice", "changeEmail", map[string]any{"idempotencyKey": "k1"})
	loc, err := srv.CompleteChallenge(ctx(t), first.URL)
	require.NoError(t, err)
	done := loc.Query().Get("token")

	seen := map[string]bool{}
	for _, tok := range []string{first.Token, again.Token, done} {
		assert.False(t, seen[tok], "a token was minted twice")
		seen[tok] = true
		assert.Equal(t, claimsOf(t, first.Token)["iat"], claimsOf(t, tok)["iat"], "same second")
		v := validate(t, srv, map[string]any{"token": tok, "userId": "alice", "action": "changeEmail"})
		assert.Equal(t, true, v["isValid"], "a unique token still validates")
		assert.Equal(t, "k1", v["idempotencyKey"])
	}
	assert.NotEqual(t, first.Token, done, "the completion token is not the track token")
}

func TestValidateAfterChallengeIsNotSingleUse(t *testing.T) {
	srv := start(t, emulator.Config{Rules: mustRules(t, trackRules), Users: []emulator.User{alice}})
	got := track(t, srv, "alice", "changeEmail", map[string]any{"redirectUrl": "https://app.example/stepup/callback?park=abc"})
	loc, err := srv.CompleteChallenge(ctx(t), got.URL)
	require.NoError(t, err)
	token := loc.Query().Get("token")
	require.NotEmpty(t, token)
	assert.Equal(t, claimsOf(t, got.Token)["other"], claimsOf(t, token)["other"], "both tokens name the same action")

	for i := range 2 {
		v := validate(t, srv, map[string]any{"token": token, "userId": "alice", "action": "changeEmail"})
		assert.Equal(t, true, v["isValid"], "validation %d", i+1)
		assert.Equal(t, "CHALLENGE_SUCCEEDED", v["state"])
		assert.Equal(t, "EMAIL_OTP", v["verificationMethod"])
		assert.Equal(t, got.IdempotencyKey, v["idempotencyKey"])
	}
	assert.Equal(t, true, validate(t, srv, map[string]any{"token": got.Token})["isValid"], "the track token reports the current state")
}

func TestActionGetAndPatch(t *testing.T) {
	clk := newClock()
	srv := start(t, emulator.Config{Now: clk.Now, Rules: mustRules(t, trackRules), Users: []emulator.User{alice}})
	wire := track(t, srv, "alice", "wire", nil)
	path := "/v1/users/alice/actions/wire/" + wire.IdempotencyKey

	status, got := call(t, srv, http.MethodGet, path, nil)
	require.Equal(t, http.StatusOK, status)
	assert.Equal(t, "REVIEW_REQUIRED", got["state"])
	assert.Equal(t, "2026-01-02T03:04:05.000Z", got["createdAt"])

	clk.Advance(time.Minute)
	status, got = call(t, srv, http.MethodPatch, path, map[string]any{"state": "REVIEW_SUCCEEDED"})
	require.Equal(t, http.StatusOK, status, "%v", got)
	assert.Equal(t, "REVIEW_SUCCEEDED", got["state"])
	assert.Equal(t, "2026-01-02T03:05:05.000Z", got["stateUpdatedAt"])
	v := validate(t, srv, map[string]any{"token": wire.Token})
	assert.Equal(t, true, v["isValid"], "a settled review validates")

	tests := []struct {
		name         string
		path         string
		body         any
		expectStatus int
	}{
		{"same state is a no-op", path, map[string]any{"state": "REVIEW_SUCCEEDED"}, 200},
		{"unknown state", path, map[string]any{"state": "MAYBE"}, 400},
		{"empty state", path, map[string]any{"state": ""}, 400},
		{"unknown field", path, map[string]any{"state": "REVIEW_FAILED", "note": "x"}, 400},
		{"unknown action", "/v1/users/alice/actions/wire/nope", map[string]any{"state": "REVIEW_FAILED"}, 404},
		{"another user's key", "/v1/users/bob/actions/wire/" + wire.IdempotencyKey, map[string]any{"state": "REVIEW_FAILED"}, 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := call(t, srv, http.MethodPatch, tt.path, tt.body)
			assert.Equal(t, tt.expectStatus, status, "%v", body)
		})
	}

	t.Run("any documented state may follow any other, as with the API", func(t *testing.T) {
		// The Node SDK's own tests move CHALLENGE_REQUIRED to REVIEW_REQUIRED.
		c := track(t, srv, "alice", "changeEmail", nil)
		p := "/v1/users/alice/actions/changeEmail/" + c.IdempotencyKey
		for _, st := range []string{"REVIEW_REQUIRED", "REVIEW_SUCCEEDED", "REVIEW_FAILED", "BLOCK", "CHALLENGE_REQUIRED"} {
			status, body := call(t, srv, http.MethodPatch, p, map[string]any{"state": st})
			require.Equal(t, http.StatusOK, status, "%s: %v", st, body)
			assert.Equal(t, st, body["state"])
		}
		status, body := call(t, srv, http.MethodPatch, p, map[string]any{"state": "REVIEW"})
		require.Equal(t, http.StatusOK, status)
		assert.Equal(t, "REVIEW_REQUIRED", body["state"], "the REVIEW alias is normalised")
	})
	t.Run("validate follows the state and stays bound to user and action", func(t *testing.T) {
		a := track(t, srv, "alice", "transfer", map[string]any{"custom": map[string]any{"amount": 1}})
		require.Equal(t, "ALLOW", a.State)
		p := "/v1/users/alice/actions/transfer/" + a.IdempotencyKey
		status, _ := call(t, srv, http.MethodPatch, p, map[string]any{"state": "CHALLENGE_SUCCEEDED"})
		require.Equal(t, http.StatusOK, status)
		v := validate(t, srv, map[string]any{"token": a.Token, "userId": "alice", "action": "transfer"})
		assert.Equal(t, true, v["isValid"])
		assert.Equal(t, "CHALLENGE_SUCCEEDED", v["state"])
		assert.Equal(t, a.IdempotencyKey, v["idempotencyKey"])
		assert.Equal(t, map[string]any{"isValid": false, "error": "User is invalid."},
			validate(t, srv, map[string]any{"token": a.Token, "userId": "mallory"}))
		assert.Equal(t, map[string]any{"isValid": false, "error": "Action is invalid."},
			validate(t, srv, map[string]any{"token": a.Token, "action": "wire"}))

		status, _ = call(t, srv, http.MethodPatch, p, map[string]any{"state": "CHALLENGE_FAILED"})
		require.Equal(t, http.StatusOK, status)
		v = validate(t, srv, map[string]any{"token": a.Token})
		assert.Equal(t, false, v["isValid"], "a success taken back no longer validates")
		assert.Equal(t, "CHALLENGE_FAILED", v["state"])
	})
	t.Run("a challenge settled by the server", func(t *testing.T) {
		c := track(t, srv, "alice", "changeEmail", nil)
		status, body := call(t, srv, http.MethodPatch, "/v1/users/alice/actions/changeEmail/"+c.IdempotencyKey,
			map[string]any{"state": "CHALLENGE_FAILED"})
		assert.Equal(t, http.StatusOK, status)
		assert.Equal(t, "CHALLENGE_FAILED", body["state"])
		assert.Equal(t, []any{}, body["ruleIds"])
	})
}

func TestReopenedChallengeDoesNotSucceed(t *testing.T) {
	srv := start(t, emulator.Config{Rules: mustRules(t, trackRules), Users: []emulator.User{alice}})
	c := track(t, srv, "alice", "changeEmail", nil)
	p := "/v1/users/alice/actions/changeEmail/" + c.IdempotencyKey
	// A failed challenge sends codes and spends the attempts; the server reopens it.
	_, err := srv.FailChallenge(ctx(t), c.URL)
	require.NoError(t, err)
	status, _ := call(t, srv, http.MethodPatch, p, map[string]any{"state": "CHALLENGE_REQUIRED"})
	require.Equal(t, http.StatusOK, status)
	v := validate(t, srv, map[string]any{"token": c.Token})
	assert.Equal(t, false, v["isValid"], "reopening a challenge does not make it succeed")
	assert.Equal(t, "CHALLENGE_REQUIRED", v["state"])
}

func TestUsers(t *testing.T) {
	srv := start(t, emulator.Config{Users: []emulator.User{alice}})

	status, got := call(t, srv, http.MethodGet, "/v1/users/alice", nil)
	require.Equal(t, http.StatusOK, status)
	assert.Equal(t, true, got["isEnrolled"])
	assert.Equal(t, "alice@example.com", got["email"])
	assert.Equal(t, []any{"EMAIL_OTP"}, got["enrolledVerificationMethods"])
	assert.Equal(t, "EMAIL_OTP", got["defaultVerificationMethod"])

	status, got = call(t, srv, http.MethodGet, "/v1/users/nobody", nil)
	require.Equal(t, http.StatusOK, status)
	assert.Equal(t, false, got["isEnrolled"])
	assert.Equal(t, []any{}, got["enrolledVerificationMethods"])

	status, got = call(t, srv, http.MethodPatch, "/v1/users/bob", map[string]any{
		"email": "bob@example.com", "displayName": "Bob", "custom": map[string]any{"plan": "pro"}})
	require.Equal(t, http.StatusOK, status)
	assert.Equal(t, "bob@example.com", got["email"])
	assert.Equal(t, "Bob", got["displayName"])
	assert.Equal(t, map[string]any{"plan": "pro"}, got["custom"])
	assert.Equal(t, false, got["isEnrolled"], "a profile is not an authenticator")
	_, got = call(t, srv, http.MethodGet, "/v1/users/bob", nil)
	assert.Equal(t, "Bob", got["displayName"])

	a := track(t, srv, "alice", "login", nil)
	status, got = call(t, srv, http.MethodDelete, "/v1/users/alice", nil)
	require.Equal(t, http.StatusOK, status)
	assert.Equal(t, map[string]any{"success": true}, got)
	_, got = call(t, srv, http.MethodGet, "/v1/users/alice", nil)
	assert.Equal(t, false, got["isEnrolled"])
	assert.Equal(t, "ALLOW", validate(t, srv, map[string]any{"token": a.Token})["state"],
		"without ?actions=true the user's actions are kept, as the API documents")
	assert.Len(t, srv.Tracked(), 1)

	status, got = call(t, srv, http.MethodDelete, "/v1/users/alice?actions=true", nil)
	require.Equal(t, http.StatusOK, status)
	assert.Equal(t, map[string]any{"success": true}, got)
	assert.Equal(t, map[string]any{"isValid": false, "error": "Action not found."}, validate(t, srv, map[string]any{"token": a.Token}))
	assert.Empty(t, srv.Tracked())

	for _, q := range []string{"?actions=yes", "?actions=true&actions=false", "?purge=true", "?actions=%zz"} {
		status, _ = call(t, srv, http.MethodDelete, "/v1/users/alice"+q, nil)
		assert.Equal(t, http.StatusBadRequest, status, q)
	}
	status, _ = call(t, srv, http.MethodPut, "/v1/users/alice", map[string]any{})
	assert.Equal(t, http.StatusMethodNotAllowed, status)
}

func TestControlEndpoints(t *testing.T) {
	srv := start(t, emulator.Config{Rules: mustRules(t, trackRules), Users: []emulator.User{alice}, DevMode: true})
	got := track(t, srv, "alice", "changeEmail", map[string]any{"redirectUrl": "https://app.example/cb"})
	_, err := srv.CompleteChallenge(ctx(t), got.URL)
	require.NoError(t, err)

	status, raw := callRaw(t, srv.URL, secret, http.MethodGet, "/v1/__emulator/tracked", nil)
	require.Equal(t, http.StatusOK, status)
	var tracked []emulator.TrackedAction
	require.NoError(t, json.Unmarshal(raw, &tracked))
	require.Len(t, tracked, 1)
	assert.Equal(t, "CHALLENGE_SUCCEEDED", tracked[0].State)
	assert.Equal(t, "https://app.example/cb", tracked[0].RedirectURL)

	status, raw = callRaw(t, srv.URL, secret, http.MethodGet, "/v1/__emulator/outbox", nil)
	require.Equal(t, http.StatusOK, status)
	var outbox []emulator.Message
	require.NoError(t, json.Unmarshal(raw, &outbox))
	require.Len(t, outbox, 1)
	assert.Equal(t, "alice@example.com", outbox[0].To)
	assert.Equal(t, "email", outbox[0].Channel)
	code, ok := srv.LastCode("alice")
	assert.True(t, ok)
	assert.Equal(t, outbox[0].Code, code)
	_, ok = srv.LastCode("bob")
	assert.False(t, ok)
}

func TestHandlerDerivesURLsFromTheRequest(t *testing.T) {
	h, err := emulator.NewHandler(emulator.Config{Users: []emulator.User{alice}, Rules: mustRules(t, trackRules)})
	require.NoError(t, err)
	ts := httptest.NewServer(h)
	defer ts.Close()
	status, raw := callRaw(t, ts.URL, secret, http.MethodPost, "/v1/users/alice/actions/changeEmail", `{}`)
	require.Equal(t, http.StatusOK, status)
	var got trackResult
	require.NoError(t, json.Unmarshal(raw, &got))
	assert.True(t, strings.HasPrefix(got.URL, ts.URL+"/challenge?token="), got.URL)
	assert.Equal(t, ts.URL, claimsOf(t, got.Token)["iss"])
	loc, err := h.CompleteChallenge(ctx(t), got.URL)
	require.NoError(t, err)
	assert.Equal(t, "/challenge/done", loc.Path)
}

func TestNewHandlerRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name  string
		given emulator.Config
	}{
		{"negative MaxActions", emulator.Config{MaxActions: -1}},
		{"relative PublicURL", emulator.Config{PublicURL: "/emulator"}},
		{"PublicURL with query", emulator.Config{PublicURL: "http://x/?a=b"}},
		{"ftp PublicURL", emulator.Config{PublicURL: "ftp://x"}},
		{"PublicURL with a path", emulator.Config{PublicURL: "http://x/emulator"}},
		{"user without id", emulator.Config{Users: []emulator.User{{Email: "x@example.com"}}}},
		{"duplicate user", emulator.Config{Users: []emulator.User{alice, alice}}},
		{"unsupported method", emulator.Config{Users: []emulator.User{{ID: "a", Methods: []string{"PASSKEY"}}}}},
		{"bad rules", emulator.Config{Rules: &emulator.Rules{DefaultState: "MAYBE"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := emulator.NewHandler(tt.given)
			assert.Error(t, err)
		})
	}
}

// signWith signs claims with another key, as a forger would.
func signWith(t testing.TB, key string, claims map[string]any) string {
	t.Helper()
	hdr := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))
	body, err := json.Marshal(claims)
	require.NoError(t, err)
	signed := hdr + "." + base64.RawURLEncoding.EncodeToString(body)
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte(signed))
	return signed + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func noneToken(t testing.TB, claims map[string]any) string {
	t.Helper()
	hdr := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`))
	body, err := json.Marshal(claims)
	require.NoError(t, err)
	return hdr + "." + base64.RawURLEncoding.EncodeToString(body) + "."
}
