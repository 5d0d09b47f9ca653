package stepup

import (
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/stepupkit/stepup/authsignal"
)

// A policy can demand how the user proves a step-up (Policy.Methods): the
// verification methods it accepts, in Authsignal's spelling. Authsignal's
// track request has no field that restricts the methods its pre-built UI
// offers (they are set per action in its portal), so the guard checks the
// method instead, where the proof is redeemed:
//
//   - at the callback and at the API retry, validate reports
//     verificationMethod; a method the challenge does not accept, or none,
//     is refused with a 403 (ErrWrongMethod, code "wrong_method") that
//     names the method used and the ones accepted. Nothing runs and
//     nothing is spent: the park stays pending, so that a proof with an
//     accepted method for the same challenge runs it once within its
//     lifetime (SECURITY.md, threat 27). The accepted methods are those of the policy when
//     the request was parked (kept in the sealed record), and, for the
//     request that then runs, those of the policy that protects it now:
//     both must accept the method.
//   - a Remember grant keeps the method it was earned with, and lets
//     through only a policy whose Methods accept it.
//   - when the track answer lists allowedVerificationMethods and none of
//     them is accepted, no challenge can succeed: a 403
//     (ErrMethodUnavailable, code "method_unavailable") before anything is
//     parked.

// The verification methods Authsignal reports, as its Server SDKs spell
// them (authsignal-node's VerificationMethod enum).
const (
	MethodPasskey          = "PASSKEY"
	MethodSecurityKey      = "SECURITY_KEY"
	MethodAuthenticatorApp = "AUTHENTICATOR_APP"
	MethodEmailOTP         = "EMAIL_OTP"
	MethodEmailMagicLink   = "EMAIL_MAGIC_LINK"
	MethodSMS              = "SMS"
	MethodWhatsApp         = "WHATSAPP"
	MethodPush             = "PUSH"
	MethodDevice           = "DEVICE"
	MethodRecoveryCode     = "RECOVERY_CODE"
	MethodVeriff           = "VERIFF"
	MethodIProov           = "IPROOV"
	MethodIDVerse          = "IDVERSE"
	MethodPalmBiometricsRR = "PALM_BIOMETRICS_RR"
)

// knownVerificationMethods are the names Policy.Methods accepts.
var knownVerificationMethods = []string{
	MethodPasskey, MethodSecurityKey, MethodAuthenticatorApp, MethodEmailOTP, MethodEmailMagicLink, MethodSMS,
	MethodWhatsApp, MethodPush, MethodDevice, MethodRecoveryCode, MethodVeriff, MethodIProov, MethodIDVerse,
	MethodPalmBiometricsRR,
}

// longestMethod is the longest of knownVerificationMethods, and
// maxMethodLen its length: what a grant reserves for the method it keeps.
const (
	longestMethod = MethodPalmBiometricsRR
	maxMethodLen  = len(longestMethod)
)

// MethodSet is a set of Authsignal's verification methods, as a Record
// keeps the methods a challenge accepts: bit i stands for the i-th of the
// Method constants in the order they are declared, which never changes
// (new methods are appended). The zero MethodSet is empty: any method.
type MethodSet uint32

// methodSetOf is the set of names, which checkMethods accepted.
func methodSetOf(names []string) MethodSet {
	var s MethodSet
	for _, m := range names {
		if i := slices.Index(knownVerificationMethods, m); i >= 0 {
			s |= 1 << i
		}
	}
	return s
}

// Names returns the methods in the set, in declaration order.
func (s MethodSet) Names() []string {
	var out []string
	for i, m := range knownVerificationMethods {
		if s&(1<<i) != 0 {
			out = append(out, m)
		}
	}
	return out
}

// accepts reports whether a challenge that accepts s (empty: any method)
// may be satisfied by a proof made with used. With s set, an unknown or
// missing method is refused: fail closed.
func (s MethodSet) accepts(used string) bool {
	if s == 0 {
		return true
	}
	i := slices.Index(knownVerificationMethods, used)
	return i >= 0 && s&(1<<i) != 0
}

// valid reports whether s holds only known methods.
func (s MethodSet) valid() bool { return s>>len(knownVerificationMethods) == 0 }

// knownMethod reports whether m is one of Authsignal's verification methods.
func knownMethod(m string) bool { return slices.Contains(knownVerificationMethods, m) }

// checkMethods refuses an unknown or repeated method name.
func checkMethods(ms []string) error {
	for i, m := range ms {
		if !knownMethod(m) {
			return fmt.Errorf("unknown verification method %q (use Authsignal's names: %s)",
				m, strings.Join(knownVerificationMethods, ", "))
		}
		if slices.Contains(ms[:i], m) {
			return fmt.Errorf("verification method %q listed twice", m)
		}
	}
	return nil
}

// keptMethod is what a record keeps of the method a provider reported:
// the name when it is one of Authsignal's, else "" (which no policy with
// Methods accepts). Nothing of unbounded length or unknown meaning is kept.
func keptMethod(used string) string {
	if knownMethod(used) {
		return used
	}
	return ""
}

// errWrongMethod refuses a proof made with a method the action does not
// accept: a 403 that names the method used (when it is a known one) and
// the accepted ones. Nothing runs.
func errWrongMethod(used string, accepted []string) *Error {
	shown := "an unrecognised method"
	if knownMethod(used) {
		shown = methodLabel(used)
	} else if used == "" {
		shown = "no reported method"
	}
	labels := make([]string, len(accepted))
	for i, m := range accepted {
		labels[i] = methodLabel(m)
	}
	return refusal(http.StatusForbidden, "wrong_method",
		fmt.Sprintf("You verified with %s, but this action accepts only %s. Nothing was done; verify again with that, or start again.",
			shown, orList(labels)),
		fmt.Errorf("%w: verified with %q, accepted %q", ErrWrongMethod, used, accepted))
}

// errMethodUnavailable refuses a challenge none of whose allowed methods
// the action accepts.
func errMethodUnavailable(allowed, accepted []string) *Error {
	labels := make([]string, len(accepted))
	for i, m := range accepted {
		labels[i] = methodLabel(m)
	}
	return refusal(http.StatusForbidden, "method_unavailable",
		fmt.Sprintf("This action needs verification with %s, which is not available for your account. Nothing was done.",
			orList(labels)),
		fmt.Errorf("%w: the provider allows %q, the action accepts %q", ErrMethodUnavailable, allowed, accepted))
}

// checkAllowed refuses a track answer that opens a challenge whose allowed
// methods (when the provider lists them) include none that rl accepts.
func (rl *rule) checkAllowed(resp *authsignal.TrackResponse) *Error {
	if len(rl.Methods) == 0 || len(resp.AllowedVerificationMethods) == 0 {
		return nil
	}
	for _, m := range resp.AllowedVerificationMethods {
		if slices.Contains(rl.Methods, m) {
			return nil
		}
	}
	return errMethodUnavailable(resp.AllowedVerificationMethods, rl.Methods)
}

// methodLabel is a method's name in plain words.
func methodLabel(m string) string {
	switch m {
	case MethodPasskey:
		return "a passkey"
	case MethodSecurityKey:
		return "a security key"
	case MethodAuthenticatorApp:
		return "an authenticator app"
	case MethodEmailOTP:
		return "an email code"
	case MethodEmailMagicLink:
		return "an email link"
	case MethodSMS:
		return "a text message code"
	case MethodWhatsApp:
		return "a WhatsApp code"
	case MethodPush:
		return "a push notification"
	case MethodRecoveryCode:
		return "a recovery code"
	}
	return m
}

func orList(labels []string) string { return strings.Join(labels, " or ") }
