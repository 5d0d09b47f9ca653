package emulator

import (
	"fmt"
	"net/http"
	"regexp"
	"time"
)

// authenticator is one enrolled verification method of a user. The emulator
// keeps at most one per method; its email or phone number is the user's,
// which is where the hosted page sends codes.
type authenticator struct {
	id         string
	method     string
	createdAt  time.Time
	verifiedAt time.Time
}

type authenticatorResponse struct {
	UserAuthenticatorID string `json:"userAuthenticatorId"`
	UserID              string `json:"userId"`
	VerificationMethod  string `json:"verificationMethod"`
	Email               string `json:"email,omitempty"`
	PhoneNumber         string `json:"phoneNumber,omitempty"`
	CreatedAt           string `json:"createdAt"`
	VerifiedAt          string `json:"verifiedAt,omitempty"`
}

// enrolFields are the keys of an enrol verified authenticator body the
// emulator knows: the API reference's (oobChannel is its deprecated name for
// verificationMethod) and the SDKs'.
var enrolFields = []string{"verificationMethod", "email", "phoneNumber", "otpUri", "isDefault", "oobChannel"}

type enrolRequest struct {
	VerificationMethod string `json:"verificationMethod"`
	OOBChannel         string `json:"oobChannel"`
	Email              string `json:"email"`
	PhoneNumber        string `json:"phoneNumber"`
	OTPURI             string `json:"otpUri"`
	IsDefault          bool   `json:"isDefault"`
}

// documentedMethods are the methods the API lets a server enrol; the hosted
// page runs EMAIL_OTP, SMS, AUTHENTICATOR_APP and PASSKEY, and passkeys are
// registered there only.
var documentedMethods = []string{"EMAIL_MAGIC_LINK", MethodEmailOTP, MethodSMS, "AUTHENTICATOR_APP", "PASSKEY", "WHATSAPP"}

var e164RE = regexp.MustCompile(`^\+[1-9][0-9]{1,14}$`)

// serveAuthenticators handles GET and POST /v1/users/{userId}/authenticators.
func (e *Emulator) serveAuthenticators(w http.ResponseWriter, r *http.Request, userID string) {
	if r.Method == http.MethodGet {
		e.mu.Lock()
		defer e.mu.Unlock()
		u := e.users[userID]
		out := []authenticatorResponse{}
		for _, a := range e.authsLocked(u) {
			out = append(out, authenticatorJSON(u, a))
		}
		writeJSON(w, http.StatusOK, out)
		return
	}
	var req enrolRequest
	if !decodeBody(w, r, enrolFields, &req) {
		return
	}
	if req.VerificationMethod == "" {
		req.VerificationMethod = req.OOBChannel
	}
	if msg := checkEnrol(&req); msg != "" {
		badRequest(w, msg)
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	methods := append([]string{}, e.methodsOf(e.users[userID])...)
	switch {
	case req.IsDefault:
		methods = moveFirst(methods, req.VerificationMethod)
	case !contains(methods, req.VerificationMethod):
		methods = append(methods, req.VerificationMethod)
	}
	e.enrollLocked(User{ID: userID, Email: req.Email, PhoneNumber: req.PhoneNumber, Methods: methods,
		TOTPSecret: totpSecretOf(req.OTPURI)})
	u := e.users[userID]
	if req.Email != "" {
		u.profile.emailVerified = true // enrolling says it is verified
	}
	if req.PhoneNumber != "" {
		u.profile.phoneVerified = true
	}
	var resp struct {
		Authenticator authenticatorResponse `json:"authenticator"`
	}
	for _, a := range e.authsLocked(u) {
		if a.method == req.VerificationMethod {
			resp.Authenticator = authenticatorJSON(u, a)
		}
	}
	e.logf("emulator: enrol user=%q method=%s", userID, req.VerificationMethod)
	writeJSON(w, http.StatusOK, resp)
}

// checkEnrol returns why req cannot be enrolled, or "".
func checkEnrol(req *enrolRequest) string {
	m := req.VerificationMethod
	switch {
	case m == "":
		return "verificationMethod is required."
	case !contains(documentedMethods, m):
		return fmt.Sprintf("verificationMethod %.32q is not a method that can be enrolled.", m)
	case m == MethodPasskey:
		return "The emulator cannot challenge PASSKEY enrolled through the API: it registers passkeys on the hosted page only (a WebAuthn ceremony in the user's browser)."
	case !supportedMethod(m):
		return fmt.Sprintf("The emulator cannot challenge %s; it enrols %s, %s and %s only.", m, MethodEmailOTP, MethodSMS, MethodAuthenticatorApp)
	case m == MethodAuthenticatorApp && totpSecretOf(req.OTPURI) == "":
		return "AUTHENTICATOR_APP needs an otpUri: otpauth://totp/…?secret=<base32> (30-second steps, 6 digits, SHA1)."
	case m == MethodEmailOTP && !validEmail(req.Email):
		return "EMAIL_OTP needs an email address."
	case m == MethodSMS && !e164RE.MatchString(req.PhoneNumber):
		return "SMS needs a phoneNumber in E.164 format."
	}
	return ""
}

// deleteAuthenticator handles DELETE
// /v1/users/{userId}/authenticators/{userAuthenticatorId}. Removing the last
// authenticator leaves the user not enrolled.
func (e *Emulator) deleteAuthenticator(w http.ResponseWriter, _ *http.Request, userID, authID string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	u := e.users[userID]
	for _, a := range e.authsLocked(u) {
		if a.id == authID {
			rest := u.methods[:0:0]
			for _, m := range u.methods {
				if m != a.method {
					rest = append(rest, m)
				}
			}
			u.methods = rest
			e.authsLocked(u)
			e.logf("emulator: delete authenticator user=%q method=%s", userID, a.method)
			writeJSON(w, http.StatusOK, map[string]bool{"success": true})
			return
		}
	}
	notFound(w, "No such authenticator.")
}

// authsLocked brings u's authenticators in step with its methods (which
// Config.Users, EnrollUser and the hosted page set directly) and returns
// them in method order. Records of methods still enrolled keep their ids.
func (e *Emulator) authsLocked(u *userRecord) []*authenticator {
	if u == nil {
		return nil
	}
	now := e.now()
	var out []*authenticator
	for _, m := range e.methodsOf(u) {
		var found *authenticator
		for _, a := range u.profile.auths {
			if a.method == m {
				found = a
				break
			}
		}
		if found == nil {
			found = &authenticator{id: newUUID(), method: m, createdAt: now, verifiedAt: now}
		}
		out = append(out, found)
	}
	u.profile.auths = out
	return out
}

func authenticatorJSON(u *userRecord, a *authenticator) authenticatorResponse {
	out := authenticatorResponse{
		UserAuthenticatorID: a.id,
		UserID:              u.id,
		VerificationMethod:  a.method,
		CreatedAt:           a.createdAt.UTC().Format(timeLayout),
		VerifiedAt:          a.verifiedAt.UTC().Format(timeLayout),
	}
	switch a.method {
	case MethodEmailOTP:
		out.Email = u.email
	case MethodSMS:
		out.PhoneNumber = u.phone
	}
	return out
}
