package emulator

import (
	"crypto/subtle"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"
)

// FuzzTOTPCode: a code the page is given is accepted only when it is the
// code of a step of the window, and then for that step.
func FuzzTOTPCode(f *testing.F) {
	const secret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, d := range []time.Duration{-60, -30, 0, 30, 60} {
		c, _ := totp.GenerateCodeCustom(secret, now.Add(d*time.Second), totpOpts)
		f.Add(c)
	}
	f.Add("")
	f.Add(" 123456")
	f.Add("１２３４５６")
	f.Fuzz(func(t *testing.T, code string) {
		step, ok := totpStep(secret, code, now)
		if !ok {
			return
		}
		at := time.Unix(step*totpPeriod, 0)
		want, err := totp.GenerateCodeCustom(secret, at, totpOpts)
		if err != nil || subtle.ConstantTimeCompare([]byte(code), []byte(want)) != 1 {
			t.Fatalf("code %q accepted for step %d, whose code is %q", code, step, want)
		}
		if d := step - now.Unix()/totpPeriod; d < -totpSkew || d > totpSkew {
			t.Fatalf("code %q accepted for step %d, %d steps from now", code, step, d)
		}
	})
}

// FuzzPasskeyFinish: whatever the browser answers a passkey ceremony with,
// the emulator neither fails nor lets the action succeed (a real answer
// needs the authenticator's private key).
func FuzzPasskeyFinish(f *testing.F) {
	r, err := ParseRules([]byte("actions: {p: {default: CHALLENGE_REQUIRED, enrol: true, methods: [PASSKEY]}}"))
	if err != nil {
		f.Fatal(err)
	}
	e, err := NewHandler(Config{Rules: r, PublicURL: "http://localhost:1", MaxActions: 64})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(`{}`)
	f.Add(`{"id":"AQ","rawId":"AQ","type":"public-key","response":{"clientDataJSON":"e30","attestationObject":"oA"}}`)
	f.Add(`{"id":"AQ","rawId":"AQ","type":"public-key","response":{"clientDataJSON":"eyJ0eXBlIjoid2ViYXV0aG4uY3JlYXRlIn0","attestationObject":"o2NmbXRkbm9uZWdhdHRTdG10oGhhdXRoRGF0YVgl"}}`)
	f.Add("garbage")
	f.Fuzz(func(t *testing.T, credential string) {
		e.mu.Lock()
		rec := &actionRecord{key: actionKey{user: "u", action: "p", key: "k"}, state: StateChallengeRequired,
			allowed: []string{MethodPasskey}, enrol: true, enrolEmail: "u@example.com", enrolMethod: MethodPasskey}
		if old := e.actions[rec.key]; old != nil {
			e.removeActionLocked(old)
		}
		e.storeActionLocked(rec)
		token := e.issueToken(rec, "http://localhost:1")
		e.mu.Unlock()
		post := func(path string, form url.Values) int {
			form.Set("token", token)
			form.Set("csrf", e.csrfToken(token))
			req := httptest.NewRequest(http.MethodPost, "http://localhost:1"+path, strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			w := httptest.NewRecorder()
			e.ServeHTTP(w, req)
			return w.Code
		}
		if code := post("/challenge/passkey/begin", url.Values{}); code != http.StatusOK {
			t.Fatalf("begin: %d", code)
		}
		if code := post("/challenge/passkey/finish", url.Values{"credential": {credential}}); code >= 500 {
			t.Fatalf("finish: %d", code)
		}
		e.mu.Lock()
		defer e.mu.Unlock()
		if rec.state == StateChallengeSucceeded || len(e.users["u"].passkeys) > 0 {
			t.Fatalf("credential %q passed", credential)
		}
	})
}
