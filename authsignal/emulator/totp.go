package emulator

import (
	"bytes"
	"crypto/subtle"
	"encoding/base32"
	"encoding/base64"
	"html/template"
	"image/png"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
)

// TOTP as authenticator apps run it by default: 30-second steps, 6 digits,
// SHA-1. A code is accepted for its own step and one step either side of
// the emulator's clock (Config.Now), and only once: a code of a step at or
// before the last one accepted for the user is refused.
const (
	totpPeriod = 30
	totpSkew   = 1
)

var totpOpts = totp.ValidateOpts{Period: totpPeriod, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}

// validTOTPSecret reports whether s is a base32 secret of at least 80 bits
// (RFC 4226's minimum is 128; 80 is what many apps still accept).
func validTOTPSecret(s string) bool {
	b, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(strings.TrimRight(strings.ToUpper(s), "="))
	return err == nil && len(b) >= 10
}

// totpSecretOf returns the secret of an otpauth://totp URI with the
// parameters the emulator runs (30-second steps, 6 digits, SHA1), or "".
func totpSecretOf(uri string) string {
	key, err := otp.NewKeyFromURL(uri)
	if err != nil || key.Type() != "totp" || key.Period() != totpPeriod || key.Digits() != otp.DigitsSix ||
		key.Algorithm() != otp.AlgorithmSHA1 || !validTOTPSecret(key.Secret()) {
		return ""
	}
	return key.Secret()
}

// totpStep returns the time step of code within the window around now, or
// false. Every step of the window is compared, in constant time.
func totpStep(secret, code string, now time.Time) (int64, bool) {
	if len(code) != 6 {
		return 0, false
	}
	var step int64
	found := false
	for d := -totpSkew; d <= totpSkew; d++ {
		t := now.Add(time.Duration(d*totpPeriod) * time.Second)
		want, err := totp.GenerateCodeCustom(secret, t, totpOpts)
		if err == nil && subtle.ConstantTimeCompare([]byte(code), []byte(want)) == 1 {
			step, found = t.Unix()/totpPeriod, true
		}
	}
	return step, found
}

// checkTOTPLocked checks code against u's authenticator app and, when it is
// right and not a replay, remembers its step.
func checkTOTPLocked(u *userRecord, code string, now time.Time) bool {
	step, ok := totpStep(u.totpSecret, code, now)
	if !ok || step <= u.totpStep {
		return false
	}
	u.totpStep = step
	return true
}

// newTOTPKey makes a secret for userID's authenticator app.
func newTOTPKey(account string) (*otp.Key, error) {
	return totp.Generate(totp.GenerateOpts{Issuer: "Authsignal emulator", AccountName: account,
		Period: totpPeriod, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
}

// totpQR is the key's QR code as a data: URL of a PNG.
func totpQR(key *otp.Key) template.URL {
	img, err := key.Image(200, 200)
	if err != nil {
		return ""
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		return ""
	}
	return template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(b.Bytes()))
}
