package authsignal

import (
	"encoding/json"
	"testing"
	"time"
)

// Retry-After and the list answers are read from the network.

func FuzzParseRetryAfter(f *testing.F) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, seed := range []string{"", "0", "120", " 7 ", "-1", "1.5", "99999999999999999999", "Fri, 02 Jan 2026 03:05:05 GMT",
		"Friday, 02-Jan-26 03:05:05 GMT", "Fri Jan  2 03:05:05 2026", "soon"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, v string) {
		d := parseRetryAfter(v, now)
		if d < 0 || d > MaxRetryAfter {
			t.Fatalf("parseRetryAfter(%q) = %v, outside [0, %v]", v, d, MaxRetryAfter)
		}
	})
}

func FuzzDecodeListResponses(f *testing.F) {
	for _, seed := range []string{`[]`, ` [{"userAuthenticatorId":"a","verificationMethod":"SMS"}]`, `[{"state":"REVIEW"}]`,
		`[null]`, `[1]`, `{}`, `null`, ``, `[`, `[{"state":7}]`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var auths []Authenticator
		if err := decodeResponse(body, &auths); err == nil {
			if _, err := json.Marshal(auths); err != nil {
				t.Fatalf("decoded authenticators do not re-encode: %v", err)
			}
		}
		var actions []UserAction
		if err := decodeResponse(body, &actions); err == nil {
			for _, a := range actions {
				if a.State == stateReviewAlias {
					t.Fatalf("REVIEW not normalised")
				}
			}
		}
		var users QueryUsersResponse
		if err := decodeResponse(body, &users); err == nil && !isJSONObject(body) {
			t.Fatalf("a page of users decoded from a non-object %q", body)
		}
	})
}
