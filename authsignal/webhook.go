package authsignal

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// WebhookSignatureHeader is the header that carries an Authsignal webhook's
// signature.
const WebhookSignatureHeader = "X-Signature-V2"

// DefaultWebhookTolerance is how far a webhook's timestamp may be from now
// when VerifyWebhook is given no tolerance.
const DefaultWebhookTolerance = 5 * time.Minute

// VerifyWebhook checks an Authsignal webhook. payload is the raw request
// body, exactly as received; signatureHeader is the value of the
// X-Signature-V2 header, "t=<unix seconds>,v2=<signature>[,v2=<signature>…]";
// secret is the webhook signing secret; now is usually time.Now().
//
// A signature is the base64 (standard alphabet, no padding) HMAC-SHA256 of
// "<t>.<payload>" keyed with secret. VerifyWebhook returns nil when one of
// the v2 signatures matches (compared in constant time) and t is within
// tolerance of now, in either direction; tolerance <= 0 means
// DefaultWebhookTolerance. Otherwise it returns an error wrapping
// ErrInvalidWebhookSignature, or ErrMissingWebhookSecret for an empty secret.
func VerifyWebhook(payload []byte, signatureHeader, secret string, tolerance time.Duration, now time.Time) error {
	if secret == "" {
		return ErrMissingWebhookSecret
	}
	if tolerance <= 0 {
		tolerance = DefaultWebhookTolerance
	}
	ts, sigs, err := parseSignatureHeader(signatureHeader)
	if err != nil {
		return fmt.Errorf("%w: %s", ErrInvalidWebhookSignature, err)
	}
	unix, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: malformed timestamp", ErrInvalidWebhookSignature)
	}
	if unix < now.Add(-tolerance).Unix() || unix > now.Add(tolerance).Unix() {
		return fmt.Errorf("%w: timestamp outside the %v tolerance", ErrInvalidWebhookSignature, tolerance)
	}
	want := webhookMAC(secret, ts, payload)
	for _, s := range sigs {
		got, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(s, "="))
		if err == nil && hmac.Equal(got, want) {
			return nil
		}
	}
	return fmt.Errorf("%w: no matching signature", ErrInvalidWebhookSignature)
}

// parseSignatureHeader splits "t=<digits>,v2=<sig>,…" into the timestamp, as
// sent, and the v2 signatures. Other keys are ignored; exactly one t and at
// least one v2 are required.
func parseSignatureHeader(h string) (ts string, sigs []string, err error) {
	if strings.TrimSpace(h) == "" {
		return "", nil, fmt.Errorf("missing %s header", WebhookSignatureHeader)
	}
	seenT := false
	for part := range strings.SplitSeq(h, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return "", nil, fmt.Errorf("malformed %s header", WebhookSignatureHeader)
		}
		switch k {
		case "t":
			if seenT || !isDigits(v) {
				return "", nil, fmt.Errorf("malformed timestamp in %s header", WebhookSignatureHeader)
			}
			ts, seenT = v, true
		case "v2":
			sigs = append(sigs, v)
		}
	}
	if !seenT || len(sigs) == 0 {
		return "", nil, fmt.Errorf("%s header needs t and v2", WebhookSignatureHeader)
	}
	return ts, sigs, nil
}

// webhookMAC is HMAC-SHA256(secret, "<ts>.<payload>").
func webhookMAC(secret, ts string, payload []byte) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(payload)
	return m.Sum(nil)
}

func isDigits(s string) bool {
	if s == "" || len(s) > 19 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
