package emulator

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"strings"
	"time"
)

// tokenError is why a token was refused; validate reports it verbatim as
// isValid:false with this error.
type tokenError string

func (e tokenError) Error() string { return string(e) }

const (
	errTokenInvalid tokenError = "Token is invalid."
	errTokenExpired tokenError = "Token has expired."
)

const (
	tenantID       = "emulator-tenant"
	publishableKey = "emulator-publishable-key"
	defaultScope   = "read:authenticators add:authenticators update:authenticators remove:authenticators"
	maxTokenLen    = 8 << 10
)

// claims are the JWT claims Authsignal puts in its tokens.
type claims struct {
	Sub   string     `json:"sub"`
	Iat   int64      `json:"iat"`
	Exp   int64      `json:"exp"`
	Iss   string     `json:"iss"`
	Scope string     `json:"scope"`
	Jti   string     `json:"jti,omitempty"` // random: no two tokens alike, even within one second
	Other tokenOther `json:"other"`
}

type tokenOther struct {
	TenantID       string `json:"tenantId"`
	PublishableKey string `json:"publishableKey"`
	UserID         string `json:"userId"`
	ActionCode     string `json:"actionCode"`
	IdempotencyKey string `json:"idempotencyKey"`
}

func (c claims) key() actionKey {
	return actionKey{user: c.Sub, action: c.Other.ActionCode, key: c.Other.IdempotencyKey}
}

var jwtHeader = b64([]byte(`{"alg":"HS256","typ":"JWT"}`))

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// issueToken mints a token for the action, valid for ten minutes from now.
// Its random jti makes it unique: the track token and the token the page
// hands back after the challenge are never the same string.
func (e *Emulator) issueToken(rec *actionRecord, issuer string) string {
	now := e.now()
	scope := rec.req.Scope
	if scope == "" {
		scope = defaultScope
	}
	return signToken(e.secret, claims{
		Sub:   rec.key.user,
		Iat:   now.Unix(),
		Exp:   now.Add(tokenLifetime).Unix(),
		Iss:   issuer,
		Scope: scope,
		Jti:   newUUID(),
		Other: tokenOther{
			TenantID:       tenantID,
			PublishableKey: publishableKey,
			UserID:         rec.key.user,
			ActionCode:     rec.key.action,
			IdempotencyKey: rec.key.key,
		},
	})
}

// signToken returns an HS256 JWT carrying c.
func signToken(secret []byte, c claims) string {
	payload, _ := json.Marshal(c) // strings and integers: cannot fail
	signed := jwtHeader + "." + b64(payload)
	return signed + "." + b64(mac(secret, signed))
}

func mac(secret []byte, s string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(s))
	return m.Sum(nil)
}

// verifyToken checks an HS256 JWT's form, signature and expiry at now and
// returns its claims. It never trusts the header beyond requiring HS256.
func verifyToken(secret []byte, tok string, now time.Time) (claims, error) {
	var c claims
	if len(tok) > maxTokenLen {
		return c, errTokenInvalid
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return c, errTokenInvalid
	}
	sig, err := base64.RawURLEncoding.Strict().DecodeString(parts[2])
	if err != nil || !hmac.Equal(sig, mac(secret, parts[0]+"."+parts[1])) {
		return c, errTokenInvalid
	}
	var hdr struct {
		Alg string `json:"alg"`
	}
	if decodeSegment(parts[0], &hdr) != nil || hdr.Alg != "HS256" {
		return c, errTokenInvalid
	}
	if decodeSegment(parts[1], &c) != nil || c.Sub == "" || c.Other.UserID != c.Sub ||
		c.Other.ActionCode == "" || c.Other.IdempotencyKey == "" || c.Exp == 0 {
		return claims{}, errTokenInvalid
	}
	if now.Unix() >= c.Exp {
		return claims{}, errTokenExpired
	}
	return c, nil
}

func decodeSegment(seg string, v any) error {
	b, err := base64.RawURLEncoding.Strict().DecodeString(seg)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}
