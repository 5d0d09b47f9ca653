package emulator

// The verification methods the hosted page runs besides codes by email and
// SMS: a TOTP authenticator app and a passkey (WebAuthn).
const (
	MethodAuthenticatorApp = "AUTHENTICATOR_APP"
	MethodPasskey          = "PASSKEY"
)

// pageMethods are the methods the hosted page can run, in the order it
// offers them.
var pageMethods = []string{MethodEmailOTP, MethodSMS, MethodAuthenticatorApp, MethodPasskey}

// enrolMethods are the methods the hosted page can set up for a user (SMS
// would need a verified phone number, which the page does not collect).
var enrolMethods = []string{MethodEmailOTP, MethodAuthenticatorApp, MethodPasskey}

func pageMethod(m string) bool { return contains(pageMethods, m) }

// usableLocked reports whether u holds what method m needs: an address for
// codes, a TOTP secret, a passkey.
func usableLocked(u *userRecord, m string) bool {
	switch m {
	case MethodEmailOTP:
		return true // enrolment without an address keeps the user's own (possibly empty) one, as before
	case MethodSMS:
		return true
	case MethodAuthenticatorApp:
		return u.totpSecret != ""
	case MethodPasskey:
		return len(u.passkeys) > 0
	}
	return false
}

// offeredLocked returns the methods the page offers rec's user: the user's
// methods that the action accepts (all of them when the action names none).
func (e *Emulator) offeredLocked(rec *actionRecord) []string {
	ms := e.methodsOf(e.users[rec.key.user])
	if rec.allowed == nil {
		return ms
	}
	out := []string{}
	for _, m := range ms {
		if contains(rec.allowed, m) {
			out = append(out, m)
		}
	}
	return out
}

// enrollableLocked returns the methods the page may set up for rec's user:
// the action's methods that the page can enrol, or email OTP alone when the
// action names none.
func enrollableLocked(rec *actionRecord) []string {
	if rec.allowed == nil {
		return []string{MethodEmailOTP}
	}
	out := []string{}
	for _, m := range enrolMethods {
		if contains(rec.allowed, m) {
			out = append(out, m)
		}
	}
	return out
}

// allowedLocked is track's allowedVerificationMethods for rec: with no
// methods on the action, email and SMS (what the emulator's tenant allows)
// and whatever else the user has enrolled; with methods, the offered ones
// for an enrolled user and the ones the page can set up for one who is not.
func (e *Emulator) allowedLocked(rec *actionRecord) []string {
	u := e.users[rec.key.user]
	if rec.allowed == nil {
		out := []string{MethodEmailOTP, MethodSMS}
		for _, m := range e.methodsOf(u) {
			if !contains(out, m) {
				out = append(out, m)
			}
		}
		return out
	}
	if e.enrolled(u) {
		return e.offeredLocked(rec)
	}
	return enrollableLocked(rec)
}
