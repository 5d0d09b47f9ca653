package authsignal

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const webhookSecret = "whsec_test_0123456789"

// sign computes a signature the way Authsignal documents it, independently
// of webhook.go.
func sign(secret string, t int64, payload string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(strconv.FormatInt(t, 10) + "." + payload))
	return base64.RawStdEncoding.EncodeToString(m.Sum(nil))
}

func TestVerifyWebhook(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	ts := now.Unix()
	const payload = `{"type":"email.created","data":{"to":"a@b.c"}}`
	good := sign(webhookSecret, ts, payload)
	tests := []struct {
		name      string
		payload   string
		header    string
		secret    string
		tolerance time.Duration
		expect    string // "" for valid; else a substring of the error
	}{
		{name: "valid", payload: payload, header: "t=" + strconv.FormatInt(ts, 10) + ",v2=" + good},
		{name: "valid with spaces", payload: payload, header: " t=" + strconv.FormatInt(ts, 10) + " , v2=" + good + " "},
		{name: "valid with padding", payload: payload, header: "t=" + strconv.FormatInt(ts, 10) + ",v2=" + good + "="},
		{name: "valid among several signatures", payload: payload,
			header: "t=" + strconv.FormatInt(ts, 10) + ",v2=" + sign("old-secret", ts, payload) + ",v2=" + good},
		{name: "unknown keys ignored", payload: payload, header: "t=" + strconv.FormatInt(ts, 10) + ",v1=abc,v2=" + good},
		{name: "empty payload", payload: "", header: "t=" + strconv.FormatInt(ts, 10) + ",v2=" + sign(webhookSecret, ts, "")},
		{name: "4 minutes old", payload: payload,
			header: "t=" + strconv.FormatInt(ts-240, 10) + ",v2=" + sign(webhookSecret, ts-240, payload)},
		{name: "4 minutes ahead", payload: payload,
			header: "t=" + strconv.FormatInt(ts+240, 10) + ",v2=" + sign(webhookSecret, ts+240, payload)},
		{name: "old but within a longer tolerance", payload: payload, tolerance: time.Hour,
			header: "t=" + strconv.FormatInt(ts-3000, 10) + ",v2=" + sign(webhookSecret, ts-3000, payload)},

		{name: "tampered body", payload: payload + " ", header: "t=" + strconv.FormatInt(ts, 10) + ",v2=" + good,
			expect: "no matching signature"},
		{name: "wrong secret", payload: payload, secret: "other",
			header: "t=" + strconv.FormatInt(ts, 10) + ",v2=" + good, expect: "no matching signature"},
		{name: "timestamp swapped", payload: payload, header: "t=" + strconv.FormatInt(ts-1, 10) + ",v2=" + good,
			expect: "no matching signature"},
		{name: "expired", payload: payload,
			header: "t=" + strconv.FormatInt(ts-301, 10) + ",v2=" + sign(webhookSecret, ts-301, payload),
			expect: "outside the 5m0s tolerance"},
		{name: "too far ahead", payload: payload,
			header: "t=" + strconv.FormatInt(ts+301, 10) + ",v2=" + sign(webhookSecret, ts+301, payload),
			expect: "outside"},
		{name: "expired under a shorter tolerance", payload: payload, tolerance: time.Second,
			header: "t=" + strconv.FormatInt(ts-2, 10) + ",v2=" + sign(webhookSecret, ts-2, payload), expect: "outside"},
		{name: "signature of another encoding", payload: payload,
			header: "t=" + strconv.FormatInt(ts, 10) + ",v2=" + base64.RawURLEncoding.EncodeToString([]byte("x")),
			expect: "no matching signature"},
		{name: "missing header", payload: payload, header: "", expect: "missing X-Signature-V2"},
		{name: "no timestamp", payload: payload, header: "v2=" + good, expect: "needs t and v2"},
		{name: "no signature", payload: payload, header: "t=" + strconv.FormatInt(ts, 10), expect: "needs t and v2"},
		{name: "empty signature", payload: payload, header: "t=" + strconv.FormatInt(ts, 10) + ",v2=", expect: "no matching"},
		{name: "two timestamps", payload: payload,
			header: "t=" + strconv.FormatInt(ts, 10) + ",t=1,v2=" + good, expect: "malformed timestamp"},
		{name: "signed timestamp", payload: payload, header: "t=+" + strconv.FormatInt(ts, 10) + ",v2=" + good,
			expect: "malformed timestamp"},
		{name: "timestamp too large", payload: payload, header: "t=99999999999999999999,v2=" + good,
			expect: "malformed timestamp"},
		{name: "part without =", payload: payload, header: "t=" + strconv.FormatInt(ts, 10) + ",v2", expect: "malformed"},
		{name: "v1 signature only", payload: payload, header: "t=" + strconv.FormatInt(ts, 10) + ",v1=" + good,
			expect: "needs t and v2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			secret := tt.secret
			if secret == "" {
				secret = webhookSecret
			}

			err := VerifyWebhook([]byte(tt.payload), tt.header, secret, tt.tolerance, now)

			if tt.expect == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, ErrInvalidWebhookSignature)
			assert.Contains(t, err.Error(), tt.expect)
			assert.NotContains(t, err.Error(), webhookSecret)
		})
	}
}

func TestVerifyWebhookRefusesAnEmptySecret(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	header := "t=1700000000,v2=" + sign("", now.Unix(), "{}")

	err := VerifyWebhook([]byte("{}"), header, "", 0, now)

	require.ErrorIs(t, err, ErrMissingWebhookSecret)
}

func TestVerifyWebhookExtremeTimes(t *testing.T) {
	header := "t=9223372036854775807,v2=" + sign(webhookSecret, 1<<63-1, "{}")
	for _, now := range []time.Time{{}, time.Unix(0, 0), time.Unix(1<<62, 0), time.Unix(-1<<62, 0)} {
		err := VerifyWebhook([]byte("{}"), header, webhookSecret, 0, now)
		require.ErrorIs(t, err, ErrInvalidWebhookSignature)
	}
}
