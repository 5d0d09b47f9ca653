package stepup_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stepupkit/stepup"
	"github.com/stepupkit/stepup/authsignal"
)

// FuzzWebhook sends Guard.Webhook correctly signed bodies of any shape:
// each is handled (200) or refused as unreadable (400), never a failure
// of the guard, and never a panic.
func FuzzWebhook(f *testing.F) {
	for _, s := range []string{
		string(actionUpdated("alice", "wire", "AAAAAAAAAAAAAAAAAAAAAA", authsignal.StateReviewSucceeded)),
		string(actionUpdated("alice", "wire", "AAAAAAAAAAAAAAAAAAAAAA", authsignal.StateReviewFailed)),
		`{"type":"action.updated","data":{"userId":"a","action":"w","idempotencyKey":"x","state":"REVIEW"}}`,
		`{"type":"authenticator.deleted","data":{"userId":"alice"}}`,
		`{"type":"action.updated","data":{"state":7}}`, `{"type":""}`, `{}`, `[]`, ``, `{"type":"a"}{}`, "\xff",
	} {
		f.Add([]byte(s))
	}
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	c := validConfig()
	c.WebhookSecret = webhookSecret
	c.Now = func() time.Time { return now }
	g, err := stepup.New(c)
	if err != nil {
		f.Fatal(err)
	}
	h := g.Webhook()
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequest(http.MethodPost, "/stepup/webhook", strings.NewReader(string(body)))
		req.Header.Set(authsignal.WebhookSignatureHeader, sign(webhookSecret, now, body))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK && rec.Code != http.StatusBadRequest && rec.Code != http.StatusRequestEntityTooLarge {
			t.Fatalf("status %d for %q: %s", rec.Code, body, rec.Body)
		}
	})
}
