package stepup

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A grant reserves room for the longest method it may keep.
func TestLongestMethodIsTheLongest(t *testing.T) {
	for _, m := range knownVerificationMethods {
		assert.LessOrEqual(t, len(m), maxMethodLen, m)
	}
	assert.Contains(t, knownVerificationMethods, longestMethod)
}

// The bits of a MethodSet are the methods' places in the list, which are
// kept in records: they must never move (append only).
func TestMethodSetBitsNeverMove(t *testing.T) {
	assert.Equal(t, []string{"PASSKEY", "SECURITY_KEY", "AUTHENTICATOR_APP", "EMAIL_OTP", "EMAIL_MAGIC_LINK", "SMS",
		"WHATSAPP", "PUSH", "DEVICE", "RECOVERY_CODE", "VERIFF", "IPROOV", "IDVERSE", "PALM_BIOMETRICS_RR"},
		knownVerificationMethods)
	assert.Equal(t, MethodSet(1), methodSetOf([]string{MethodPasskey}))
	assert.Equal(t, MethodSet(1<<5|1<<3), methodSetOf([]string{MethodSMS, MethodEmailOTP}))
	assert.Equal(t, []string{MethodEmailOTP, MethodSMS}, MethodSet(1<<5|1<<3).Names())
	assert.Nil(t, MethodSet(0).Names())
}

func TestMethodSetAccepts(t *testing.T) {
	tests := []struct {
		name   string
		given  MethodSet
		used   string
		expect bool
	}{
		{"empty set: any method", 0, MethodSMS, true},
		{"empty set: no method reported", 0, "", true},
		{"empty set: an unknown method", 0, "NEW", true},
		{"in the set", methodSetOf([]string{MethodPasskey, MethodSMS}), MethodSMS, true},
		{"first in the set", methodSetOf([]string{MethodPasskey, MethodSMS}), MethodPasskey, true},
		{"not in the set", methodSetOf([]string{MethodPasskey}), MethodSecurityKey, false},
		{"no method reported", methodSetOf([]string{MethodPasskey}), "", false},
		{"an unknown method", methodSetOf([]string{MethodPasskey}), "passkey", false},
		{"the last method", methodSetOf([]string{MethodPalmBiometricsRR}), MethodPalmBiometricsRR, true},
	}
	for _, tc := range tests {
		assert.Equal(t, tc.expect, tc.given.accepts(tc.used), tc.name)
	}
}

// A record read back from a store keeps only methods the guard knows.
func TestRecordCheckRefusesUnknownMethods(t *testing.T) {
	ok := func() *Record {
		return &Record{ID: "r", Kind: KindGrant, Expires: time.Now().Add(time.Minute)}
	}
	r := ok()
	r.VerificationMethod, r.Methods = MethodPalmBiometricsRR, MethodSet(1<<len(knownVerificationMethods)-1)
	require.NoError(t, r.check())

	r = ok()
	r.VerificationMethod = "SMS\x00"
	assert.ErrorContains(t, r.check(), "unknown verification method")
	r = ok()
	r.Methods = MethodSet(1 << len(knownVerificationMethods))
	assert.ErrorContains(t, r.check(), "bad accepted methods")
}

// keptMethod keeps a known name and nothing else.
func TestKeptMethod(t *testing.T) {
	assert.Equal(t, MethodSMS, keptMethod(MethodSMS))
	assert.Empty(t, keptMethod("sms"))
	assert.Empty(t, keptMethod(""))
	assert.Empty(t, keptMethod(string(make([]byte, 1<<16))))
}
