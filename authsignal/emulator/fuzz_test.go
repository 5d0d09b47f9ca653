package emulator

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"
	"unicode/utf8"
)

const fuzzRules = `
actions:
  transfer:
    rules:
      - {id: ip, when: {field: ipAddress, op: in, value: ["10.0.0.0/8", "::1"]}, state: BLOCK}
      - {id: big, when: {field: custom.amount, op: gt, value: 1000}, state: CHALLENGE_REQUIRED}
      - {id: tags, when: {field: custom.tags, op: contains, value: x}, state: REVIEW}
      - {id: nested, when: [{field: custom.a.b, op: eq, value: true}, {field: deviceId, op: unknown}], state: BLOCK}
`

func fuzzEmulator(tb testing.TB) *Emulator {
	r, err := ParseRules([]byte(fuzzRules))
	if err != nil {
		tb.Fatal(err)
	}
	e, err := NewHandler(Config{Rules: r, AutoEnroll: true, MaxActions: 64})
	if err != nil {
		tb.Fatal(err)
	}
	return e
}

// serveFuzz sends one API request and fails on a 5xx or a non-JSON answer.
func serveFuzz(t *testing.T, e *Emulator, method, target string, body []byte) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, "http://emulator.test/", bytes.NewReader(body))
	req.URL.Path, req.URL.RawPath = "", ""
	u, err := url.Parse(target)
	if err != nil {
		t.Skip()
	}
	req.URL.Path, req.URL.RawPath = u.Path, u.RawPath
	req.SetBasicAuth(DefaultSecret, "")
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, req)
	if rec.Code >= 500 {
		t.Fatalf("%s %s %q: status %d: %s", method, target, body, rec.Code, rec.Body)
	}
	if !json.Valid(rec.Body.Bytes()) {
		t.Fatalf("%s %s %q: invalid JSON answer %q", method, target, body, rec.Body)
	}
	return rec
}

func FuzzTrackBody(f *testing.F) {
	e := fuzzEmulator(f)
	f.Add("alice", []byte(`{}`))
	f.Add("a/b", []byte(`{"custom":{"amount":5000,"tags":["x"],"a":{"b":true}},"deviceId":"d","ipAddress":"10.1.2.3"}`))
	f.Add("u", []byte(`{"custom":{"amount":"1e309"},"ipAddress":"::ffff:10.0.0.1"}`))
	f.Add("u", []byte(`{"redirectUrl":"https://app.example/cb?x=1","idempotencyKey":"k"}`))
	f.Add("", []byte(`{"custom":null,"email":null}`))
	f.Add("u", []byte(`{"custom":{"amount":[1,2]},"redirectUrl":"http://[::1"}`))
	f.Fuzz(func(t *testing.T, user string, body []byte) {
		rec := serveFuzz(t, e, http.MethodPost, "/v1/users/"+url.PathEscape(user)+"/actions/transfer", body)
		if rec.Code == http.StatusOK {
			var resp trackResponse
			if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil || resp.State == "" || resp.Token == "" {
				t.Fatalf("bad track answer %s", rec.Body)
			}
			if _, err := verifyToken(e.secret, resp.Token, e.now()); err != nil {
				t.Fatalf("track token does not verify: %v", err)
			}
		}
	})
}

func FuzzValidateBody(f *testing.F) {
	e := fuzzEmulator(f)
	e.mu.Lock()
	rec := &actionRecord{key: actionKey{"alice", "transfer", "k"}, state: StateChallengeSucceeded}
	e.storeActionLocked(rec)
	good := e.issueToken(rec, "http://emulator.test")
	e.mu.Unlock()
	f.Add([]byte(`{"token":"` + good + `"}`))
	f.Add([]byte(`{"token":"` + good + `","userId":"bob","action":"x"}`))
	f.Add([]byte(`{"token":"a.b.c"}`))
	f.Add([]byte(`{"token":""}`))
	f.Add([]byte(`{"token":1}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		rec := serveFuzz(t, e, http.MethodPost, "/v1/validate", body)
		if rec.Code == http.StatusOK {
			var resp validateResponse
			if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
				t.Fatal(err)
			}
			if resp.IsValid && resp.Error != "" {
				t.Fatalf("valid with an error: %s", rec.Body)
			}
		}
	})
}

func FuzzParseRules(f *testing.F) {
	f.Add([]byte(fuzzRules))
	f.Add([]byte(`{"defaultState":"BLOCK","actions":{"a":{"default":"REVIEW","enrol":true}}}`))
	f.Add([]byte(`actions: {a: {rules: [{id: r, when: {field: custom.x, op: lte, value: "7"}, state: ALLOW}]}}`))
	f.Add([]byte("actions:\n  a:\n    rules:\n      - id: r\n        when: {field: ipAddress, op: unknown}\n        state: BLOCK\n"))
	f.Add([]byte(`&a [*a]`))
	req := &Request{DeviceID: "d", IPAddress: "10.0.0.1", Email: "e@x", Custom: map[string]any{
		"x": 7.0, "amount": "12", "tags": []any{"x", 1.0}, "a": map[string]any{"b": true}}}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseRules(data)
		if err != nil {
			return
		}
		rs, err := compileRules(r)
		if err != nil {
			t.Fatalf("ParseRules accepted rules that do not compile: %v", err)
		}
		for code := range r.Actions {
			state, _, _ := rs.evaluate(code, req, func(string, string) bool { return false })
			if _, ok := ruleState(state); !ok {
				t.Fatalf("evaluate gave %q", state)
			}
		}
	})
}

func FuzzVerifyToken(f *testing.F) {
	secret := []byte(DefaultSecret)
	now := time.Unix(1_700_000_000, 0)
	c := claims{Sub: "u", Iat: now.Unix(), Exp: now.Unix() + 600, Iss: "http://x", Scope: "s",
		Other: tokenOther{UserID: "u", ActionCode: "a", IdempotencyKey: "k"}}
	f.Add(signToken(secret, c), "u", "a", "k")
	f.Add("eyJhbGciOiJub25lIn0.e30.", "", "", "")
	f.Add("a.b.c", "x", "y", "z")
	f.Add("...", "", "", "")
	f.Fuzz(func(t *testing.T, tok, user, action, key string) {
		if got, err := verifyToken(secret, tok, now); err == nil && (got.Sub == "" || got.Other.UserID != got.Sub) {
			t.Fatalf("accepted a token without a coherent subject: %+v", got)
		}
		want := claims{Sub: user, Iat: now.Unix(), Exp: now.Unix() + 600,
			Other: tokenOther{UserID: user, ActionCode: action, IdempotencyKey: key}}
		got, err := verifyToken(secret, signToken(secret, want), now)
		if !utf8.ValidString(user) || !utf8.ValidString(action) || !utf8.ValidString(key) {
			return // JSON would replace the bad bytes; the API refuses such ids
		}
		if user != "" && action != "" && key != "" {
			if err != nil || got != want {
				t.Fatalf("round trip: %+v, %v", got, err)
			}
		} else if err == nil {
			t.Fatalf("accepted a token without user, action or key")
		}
		if _, err := verifyToken([]byte("other"), signToken(secret, want), now); err == nil {
			t.Fatal("accepted another key's signature")
		}
	})
}
