package emulator

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
)

// The users, authenticators and query endpoints parse query strings and
// bodies from the network: they must answer 2xx or 4xx with JSON, never
// panic or 5xx, and keep the emulator's invariants.

// serveQueryFuzz sends one authenticated API request with a raw query.
func serveQueryFuzz(t *testing.T, e *Emulator, method, path, rawQuery string, body []byte) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, "http://emulator.test/", bytes.NewReader(body))
	req.URL.Path, req.URL.RawPath, req.URL.RawQuery = path, "", rawQuery
	req.SetBasicAuth(DefaultSecret, "")
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, req)
	if rec.Code >= 500 {
		t.Fatalf("%s %s?%s %q: status %d: %s", method, path, rawQuery, body, rec.Code, rec.Body)
	}
	if !json.Valid(rec.Body.Bytes()) {
		t.Fatalf("%s %s?%s %q: invalid JSON answer %q", method, path, rawQuery, body, rec.Body)
	}
	return rec
}

func FuzzQueryActions(f *testing.F) {
	e := fuzzEmulator(f)
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, "http://emulator.test/v1/users/alice/actions/transfer", bytes.NewReader([]byte(`{"custom":{"amount":5000}}`)))
	req.SetBasicAuth(DefaultSecret, "")
	req.Header.Set("Content-Type", "application/json")
	e.ServeHTTP(rec, req)
	for _, q := range []string{"", "codes=transfer,login&state=CHALLENGE_REQUIRED", "fromDate=2020-01-01T00:00:00Z",
		"fromDate=2026-13-01T00:00:00Z", "codes=%zz", "state=REVIEW", "codes=,,,", "codes=a&codes=b", "x=1"} {
		f.Add(q)
	}
	f.Fuzz(func(t *testing.T, rawQuery string) {
		rec := serveQueryFuzz(t, e, http.MethodGet, "/v1/users/alice/actions", rawQuery, nil)
		if rec.Code == http.StatusOK {
			var list []queriedAction
			if err := json.Unmarshal(rec.Body.Bytes(), &list); err != nil {
				t.Fatalf("answer is not a list of actions: %s", rec.Body)
			}
			for _, a := range list {
				if a.ActionCode == "" || a.IdempotencyKey == "" {
					t.Fatalf("incomplete action %+v", a)
				}
			}
		}
	})
}

func FuzzQueryUsers(f *testing.F) {
	e := fuzzEmulator(f)
	for _, q := range []string{"", "limit=1", "limit=0", "limit=-1", "limit=99999999999999999999", "email=a%40b.c&username=x",
		"token=e30.e30.e30", "lastEvaluatedUserId=%00", "token=&token=", "phoneNumber=%2B64"} {
		f.Add(q)
	}
	f.Fuzz(func(t *testing.T, rawQuery string) {
		rec := serveQueryFuzz(t, e, http.MethodGet, "/v1/users", rawQuery, nil)
		if rec.Code == http.StatusOK {
			var resp queryUsersResponse
			if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil || resp.Users == nil {
				t.Fatalf("answer is not a page of users: %s", rec.Body)
			}
			if q, err := url.ParseQuery(rawQuery); err == nil && q.Has("token") && resp.TokenPayload == nil {
				t.Fatalf("a token query answered without its payload: %s", rec.Body)
			}
		}
	})
}

func FuzzUserAndAuthenticatorBodies(f *testing.F) {
	e := fuzzEmulator(f)
	f.Add("PATCH", "", []byte(`{"email":"a@b.c","emailVerified":true,"locale":"en","custom":{"a":1}}`))
	f.Add("POST", "", []byte(`{"phoneNumberVerified":false,"defaultVerificationMethod":"EMAIL_OTP"}`))
	f.Add("DELETE", "actions=true", []byte(nil))
	f.Add("DELETE", "actions=maybe", []byte(nil))
	f.Add("ENROL", "", []byte(`{"verificationMethod":"SMS","phoneNumber":"+64270000000","isDefault":true}`))
	f.Add("ENROL", "", []byte(`{"oobChannel":"EMAIL_OTP","email":"x@y"}`))
	f.Add("ENROL", "", []byte(`{"verificationMethod":"PASSKEY"}`))
	f.Fuzz(func(t *testing.T, method, rawQuery string, body []byte) {
		path := "/v1/users/fuzz"
		switch method {
		case http.MethodPatch, http.MethodPost, http.MethodDelete:
		case "ENROL":
			method, path = http.MethodPost, path+"/authenticators"
		default:
			t.Skip()
		}
		serveQueryFuzz(t, e, method, path, rawQuery, body)
		rec := serveQueryFuzz(t, e, http.MethodGet, "/v1/users/fuzz/authenticators", "", nil)
		var auths []authenticatorResponse
		if err := json.Unmarshal(rec.Body.Bytes(), &auths); err != nil {
			t.Fatalf("authenticators: %s", rec.Body)
		}
		seen := map[string]bool{}
		for _, a := range auths {
			if !supportedMethod(a.VerificationMethod) || seen[a.VerificationMethod] || a.UserAuthenticatorID == "" {
				t.Fatalf("bad authenticators %+v", auths)
			}
			seen[a.VerificationMethod] = true
		}
	})
}
