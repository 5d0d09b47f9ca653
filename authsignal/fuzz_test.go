package authsignal

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"
)

// The client decodes every response body with decodeResponse (2xx) or
// parseAPIError (anything else); these targets fuzz exactly those.

func FuzzDecodeTrackResponse(f *testing.F) {
	for _, seed := range []string{
		`{"state":"ALLOW","isEnrolled":true}`,
		`{"state":"CHALLENGE_REQUIRED","url":"https://x/?t=1","token":"t","ruleIds":["a"],"enrolledVerificationMethods":[]}`,
		`{"state":"REVIEW"}`, `{"state":null}`, `{"state":7}`, `null`, `[]`, ``, `{`, ` {"a":1} `, `{"a":1}{}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var out TrackResponse
		if err := decodeResponse(body, &out); err != nil {
			return
		}
		if out.State == stateReviewAlias {
			t.Fatalf("REVIEW not normalised")
		}
		if _, err := json.Marshal(out); err != nil {
			t.Fatalf("decoded value does not re-encode: %v", err)
		}
	})
}

func FuzzDecodeValidateResponse(f *testing.F) {
	for _, seed := range []string{
		`{"isValid":true,"state":"CHALLENGE_SUCCEEDED","userId":"u","action":"a","idempotencyKey":"k"}`,
		`{"isValid":true,"actionCode":"a"}`, `{"action":"","actionCode":"b"}`, `{"isValid":"true"}`,
		`{"isValid":false,"error":"User is invalid."}`, `null`, `"x"`, ``,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var out ValidateResponse
		if err := decodeResponse(body, &out); err != nil {
			return
		}
		var aux struct {
			Action     *string `json:"action"`
			ActionCode *string `json:"actionCode"`
		}
		if json.Unmarshal(body, &aux) == nil && aux.Action != nil && *aux.Action != "" && out.Action != *aux.Action {
			t.Fatalf("action %q lost: got %q", *aux.Action, out.Action)
		}
	})
}

func FuzzParseAPIError(f *testing.F) {
	f.Add(401, []byte(`{"error":"unauthorized","errorCode":"unauthorized","errorDescription":"The request is unauthorized."}`))
	f.Add(400, []byte(`{"error":"invalid_request"}`))
	f.Add(429, []byte(`{"errorCode":1,"errorDescription":["x"]}`))
	f.Add(502, []byte(`<html>bad gateway</html>`))
	f.Add(500, []byte("{\"errorDescription\":\"a\\nb\\u0000\\u202e\"}"))
	f.Add(0, []byte(``))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		e := parseAPIError(status, body)
		if e.StatusCode != status {
			t.Fatalf("status %d became %d", status, e.StatusCode)
		}
		msg := e.Error()
		if !strings.HasPrefix(msg, "authsignal: API error: status "+strconv.Itoa(status)) {
			t.Fatalf("unexpected message %q", msg)
		}
		if !utf8.ValidString(msg) || strings.IndexFunc(msg, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
			t.Fatalf("message is not safe to log: %q", msg)
		}
		if n := utf8.RuneCountInString(msg); n > 400 {
			t.Fatalf("message of %d runes", n)
		}
	})
}

func FuzzVerifyWebhook(f *testing.F) {
	const secret = "whsec_fuzz"
	const now = 1_700_000_000
	f.Add([]byte(`{"type":"x"}`), "t=1700000000,v2="+sign(secret, now, `{"type":"x"}`))
	f.Add([]byte(`{}`), "t=1700000000,v2=a,v2="+sign(secret, now, `{}`)+"=")
	f.Add([]byte(``), "t=,v2=")
	f.Add([]byte(`x`), ",,,=,t=1=2,v2==")
	f.Add([]byte(`x`), "t=9223372036854775807,v2=AAAA")
	f.Fuzz(func(t *testing.T, payload []byte, header string) {
		err := VerifyWebhook(payload, header, secret, 0, time.Unix(now, 0))
		if err != nil {
			return
		}
		// Accepted: the header must carry the true signature for its own t.
		ts, sigs, perr := parseSignatureHeader(header)
		if perr != nil {
			t.Fatalf("accepted a header that does not parse: %q", header)
		}
		m := hmac.New(sha256.New, []byte(secret))
		m.Write([]byte(ts + "." + string(payload)))
		want := base64.RawStdEncoding.EncodeToString(m.Sum(nil))
		for _, s := range sigs {
			if strings.TrimRight(s, "=") == want {
				return
			}
		}
		t.Fatalf("accepted %q for payload %q without the true signature", header, payload)
	})
}
