package emulator

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// A ceremony begun at one origin of the emulator (no PublicURL: the page's
// own host) is not finished at another.
func TestPasskeyCeremonyIsBoundToItsOrigin(t *testing.T) {
	r, err := ParseRules([]byte("actions: {p: {default: CHALLENGE_REQUIRED, enrol: true, methods: [PASSKEY]}}"))
	if err != nil {
		t.Fatal(err)
	}
	var logged []string
	e, err := NewHandler(Config{Rules: r, Logf: func(format string, args ...any) {
		logged = append(logged, fmt.Sprintf(format, args...))
	}})
	if err != nil {
		t.Fatal(err)
	}
	rec := &actionRecord{key: actionKey{user: "u", action: "p", key: "k"}, state: StateChallengeRequired,
		allowed: []string{MethodPasskey}, enrol: true, enrolEmail: "u@example.com", enrolMethod: MethodPasskey}
	e.mu.Lock()
	e.storeActionLocked(rec)
	token := e.issueToken(rec, "http://localhost:1")
	e.mu.Unlock()
	post := func(host, path string, form url.Values) (int, map[string]string) {
		form.Set("token", token)
		form.Set("csrf", e.csrfToken(token))
		req := httptest.NewRequest(http.MethodPost, "http://"+host+path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		w := httptest.NewRecorder()
		e.ServeHTTP(w, req)
		var out map[string]string
		json.Unmarshal(w.Body.Bytes(), &out)
		return w.Code, out
	}
	if code, out := post("localhost:1", "/challenge/passkey/begin", url.Values{}); code != http.StatusOK {
		t.Fatalf("begin: %d %v", code, out)
	}
	if rec.passkey == nil || rec.passkey.origin != "http://localhost:1" {
		t.Fatalf("ceremony %+v", rec.passkey)
	}
	code, out := post("localhost:2", "/challenge/passkey/finish", url.Values{"credential": {"{}"}})
	if code != http.StatusUnprocessableEntity || out["error"] != "The passkey was not accepted. 2 attempts left." {
		t.Fatalf("finish at another origin: %d %v", code, out)
	}
	if rec.passkey != nil {
		t.Fatal("the ceremony survived a wrong answer")
	}
	if last := logged[len(logged)-1]; !strings.Contains(last, "passkey refused") || !strings.Contains(last, "no passkey ceremony is under way") {
		t.Fatalf("refused for another reason than the origin: %s", last)
	}
}
