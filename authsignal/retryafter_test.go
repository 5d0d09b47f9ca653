package authsignal

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name   string
		given  string
		expect time.Duration
	}{
		{"absent", "", 0},
		{"seconds", "120", 2 * time.Minute},
		{"zero", "0", 0},
		{"blank around", " 7 ", 7 * time.Second},
		{"HTTP date ahead", now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{"HTTP date past", now.Add(-time.Hour).Format(http.TimeFormat), 0},
		{"HTTP date far ahead is capped", now.Add(48 * time.Hour).Format(http.TimeFormat), MaxRetryAfter},
		{"huge seconds are capped", "999999999999999999999999", MaxRetryAfter},
		{"just over the cap", "3601", MaxRetryAfter},
		{"negative", "-5", 0},
		{"fraction", "1.5", 0},
		{"trailing junk", "5s", 0},
		{"garbage", "soon", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.expect, parseRetryAfter(tt.given, now))
		})
	}
}

func TestClientSurfacesRetryAfter(t *testing.T) {
	ts := newTestServer(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Retry-After", "30")
		respond(http.StatusTooManyRequests, `{"errorCode":"too_many_requests","errorDescription":"slow down"}`)(w, nil)
	})

	_, err := newTestClient(ts).Validate(t.Context(), ValidateRequest{Token: "t"})

	var apiErr *APIError
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, APIError{StatusCode: 429, Code: "too_many_requests", Description: "slow down", RetryAfter: 30 * time.Second}, *apiErr)
	assert.Contains(t, err.Error(), "retry after 30s")
	assert.Len(t, ts.requests(), 1, "a 429 is not retried")
}

func TestClientDecodesListResponses(t *testing.T) {
	t.Run("authenticators", func(t *testing.T) {
		ts := newTestServer(t, respond(http.StatusOK, `[{"userAuthenticatorId":"a1","verificationMethod":"SMS","phoneNumber":"+64270000000","createdAt":"2026-01-02T03:04:05.000Z","webauthnCredential":{"name":"x"}}]`))
		got, err := newTestClient(ts).GetAuthenticators(t.Context(), "u1")
		require.NoError(t, err)
		assert.Equal(t, []Authenticator{{UserAuthenticatorID: "a1", VerificationMethod: "SMS", PhoneNumber: "+64270000000", CreatedAt: "2026-01-02T03:04:05.000Z"}}, got)
	})
	t.Run("actions", func(t *testing.T) {
		ts := newTestServer(t, respond(http.StatusOK, `[{"actionCode":"login","idempotencyKey":"k","state":"REVIEW","countryCode":"NZ"}]`))
		got, err := newTestClient(ts).QueryUserActions(t.Context(), "u1", QueryUserActionsRequest{})
		require.NoError(t, err)
		assert.Equal(t, []UserAction{{ActionCode: "login", IdempotencyKey: "k", State: StateReviewRequired, CountryCode: "NZ"}}, got)
	})
	t.Run("an empty list", func(t *testing.T) {
		ts := newTestServer(t, respond(http.StatusOK, ` []`))
		got, err := newTestClient(ts).GetAuthenticators(t.Context(), "u1")
		require.NoError(t, err)
		assert.Empty(t, got)
	})
	for _, body := range []string{`{"userAuthenticatorId":"a1"}`, `null`, ``, `[{]`, `"a"`} {
		t.Run("malformed "+body, func(t *testing.T) {
			ts := newTestServer(t, respond(http.StatusOK, body))
			_, err := newTestClient(ts).GetAuthenticators(t.Context(), "u1")
			assert.ErrorIs(t, err, ErrMalformedResponse)
		})
	}
	t.Run("an object where a list is due is refused", func(t *testing.T) {
		ts := newTestServer(t, respond(http.StatusOK, `[]`))
		_, err := newTestClient(ts).GetUser(t.Context(), "u1")
		assert.ErrorIs(t, err, ErrMalformedResponse)
	})
}

func TestClientSendsQueryUserActions(t *testing.T) {
	ts := newTestServer(t, respond(http.StatusOK, `[]`))
	c := newTestClient(ts)
	from := time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("NZDT", 13*3600))

	_, err := c.QueryUserActions(t.Context(), "u/1", QueryUserActionsRequest{Codes: []string{"login", "wire"}, FromDate: from, State: StateChallengeSucceeded})
	require.NoError(t, err)
	_, err = c.QueryUserActions(t.Context(), "u1", QueryUserActionsRequest{})
	require.NoError(t, err)

	reqs := ts.requests()
	require.Len(t, reqs, 2)
	assert.Equal(t, "/v1/users/u%2F1/actions?codes=login%2Cwire&fromDate=2026-01-01T14%3A04%3A05Z&state=CHALLENGE_SUCCEEDED", reqs[0].RequestURI)
	assert.Equal(t, "/v1/users/u1/actions", reqs[1].RequestURI)
	assert.Equal(t, http.MethodGet, reqs[0].Method)
}

func TestNewCallsRefuseBadArgumentsBeforeAnyRequest(t *testing.T) {
	ts := newTestServer(t, respond(http.StatusOK, `{}`))
	c := newTestClient(ts)
	ctx := t.Context()
	tests := []struct {
		name   string
		call   func() error
		expect error
	}{
		{"authenticators of no user", func() error { _, err := c.GetAuthenticators(ctx, ""); return err }, ErrInvalidUserID},
		{"enrol for a dot user", func() error {
			_, err := c.EnrollVerifiedAuthenticator(ctx, ".", EnrollVerifiedAuthenticatorRequest{VerificationMethod: "SMS"})
			return err
		}, ErrInvalidUserID},
		{"enrol without a method", func() error {
			_, err := c.EnrollVerifiedAuthenticator(ctx, "u1", EnrollVerifiedAuthenticatorRequest{})
			return err
		}, ErrMissingVerificationMethod},
		{"delete an empty authenticator id", func() error { return c.DeleteAuthenticator(ctx, "u1", "") }, ErrInvalidAuthenticatorID},
		{"delete a dot-dot authenticator id", func() error { return c.DeleteAuthenticator(ctx, "u1", "..") }, ErrInvalidAuthenticatorID},
		{"delete an authenticator of no user", func() error { return c.DeleteAuthenticator(ctx, "", "a1") }, ErrInvalidUserID},
		{"query the actions of no user", func() error {
			_, err := c.QueryUserActions(ctx, "..", QueryUserActionsRequest{})
			return err
		}, ErrInvalidUserID},
		{"query a malformed action code", func() error {
			_, err := c.QueryUserActions(ctx, "u1", QueryUserActionsRequest{Codes: []string{"a,b"}})
			return err
		}, ErrInvalidActionCode},
		{"delete user and actions of no user", func() error { return c.DeleteUserAndActions(ctx, "") }, ErrInvalidUserID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.ErrorIs(t, tt.call(), tt.expect)
		})
	}
	assert.Empty(t, ts.requests())
}

func TestUpdateUserRequestEncoding(t *testing.T) {
	b, err := json.Marshal(UpdateUserRequest{})
	require.NoError(t, err)
	assert.JSONEq(t, `{}`, string(b), "nothing set, nothing sent")
	b, err = json.Marshal(UpdateUserRequest{Email: String(""), PhoneNumberVerified: Bool(false), Custom: map[string]any{}})
	require.NoError(t, err)
	assert.JSONEq(t, `{"email":"","phoneNumberVerified":false,"custom":{}}`, string(b), "a set empty string, false and an empty map are sent")
	b, err = json.Marshal(UpdateUserRequest{Custom: map[string]any{"tier": "gold"}, Username: String("ann")})
	require.NoError(t, err)
	assert.JSONEq(t, `{"username":"ann","custom":{"tier":"gold"}}`, string(b))
}
