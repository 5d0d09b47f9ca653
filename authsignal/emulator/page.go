package emulator

import (
	"crypto/rand"
	"crypto/subtle"
	"fmt"
	"math/big"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"unicode"

	"github.com/pquerna/otp"
)

const maxFormBytes = 64 << 10

// servePage serves the hosted challenge page. It never requires the API
// key and no fault applies to it.
func (e *Emulator) servePage(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	if len(e.cfg.AppOrigins) == 0 {
		h.Set("X-Frame-Options", "DENY") // CSP frame-ancestors says the same; this is for old browsers
	}
	var post bool
	switch r.URL.Path {
	case "/challenge", "/challenge/done", "/challenge/left":
	case "/challenge/send", "/challenge/verify", "/challenge/cancel", "/challenge/enrol",
		"/challenge/passkey/begin", "/challenge/passkey/finish":
		post = true
	default:
		e.renderMessage(w, http.StatusNotFound, "Not found", "There is no such page.")
		return
	}
	want := http.MethodGet
	if post {
		want = http.MethodPost
	}
	if r.Method != want {
		h.Set("Allow", want)
		e.renderMessage(w, http.StatusMethodNotAllowed, "Method not allowed", "Use "+want+".")
		return
	}
	var token, mode string
	if post {
		r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
		if err := r.ParseForm(); err != nil {
			e.renderMessage(w, http.StatusBadRequest, "Bad request", "The form could not be read.")
			return
		}
		if !e.checkCSRF(r) {
			e.renderMessage(w, http.StatusForbidden, "Forbidden", "The form's security token is missing or wrong, or it was sent from another site. Reload the page and try again.")
			return
		}
		token, mode = r.PostForm.Get("token"), launchMode(r.PostForm.Get("mode"))
	} else {
		q := r.URL.Query()
		token, mode = q.Get("token"), launchMode(q.Get("mode"))
	}
	c, err := verifyToken(e.secret, token, e.now())
	if err != nil {
		e.renderMessage(w, http.StatusBadRequest, "Link expired", "This challenge link is invalid or has expired. Go back and try again.")
		return
	}
	csrf := e.csrfToken(token)
	base := e.baseURL(r)

	e.mu.Lock()
	rec, ok := e.actions[c.key()]
	if !ok {
		e.mu.Unlock()
		e.renderMessage(w, http.StatusNotFound, "Not found", "This challenge no longer exists.")
		return
	}
	status, location, d := http.StatusOK, "", pageData{}
	var jsonBody any // the passkey endpoints answer JSON
	switch r.URL.Path {
	case "/challenge":
		e.autoSendLocked(rec)
		d = e.pageLocked(rec, token, csrf, "")
	case "/challenge/done":
		d = pageData{Title: "Done", Step: "done", UserID: rec.key.user, Action: rec.key.action, State: rec.state, DoneToken: token}
		if mode != "" {
			d.Close = closeMessage(token)
		}
	case "/challenge/left":
		d = pageData{Title: "Verification cancelled", Step: "left", UserID: rec.key.user, Action: rec.key.action, State: rec.state}
		if mode != "" {
			d.Close = closeMessage("")
		}
	case "/challenge/send":
		status, location, d = e.sendCodeLocked(rec, r, token, csrf)
	case "/challenge/verify":
		status, location, d = e.verifyLocked(rec, r, token, csrf, base)
	case "/challenge/enrol":
		status, location, d = e.enrolPickLocked(rec, r, token, csrf, base)
	case "/challenge/passkey/begin":
		status, jsonBody = e.passkeyBeginLocked(rec, base)
	case "/challenge/passkey/finish":
		status, jsonBody = e.passkeyFinishLocked(rec, r, base)
	case "/challenge/cancel":
		status = http.StatusSeeOther
		if active, _ := e.pageMode(rec); active && mode != "" {
			// Left in popup or window mode: the SDK resolves {token: undefined},
			// as when the user closes the popup.
			location = "/challenge/left?token=" + url.QueryEscape(token) + "&mode=" + mode
		} else {
			location = e.finishLocationLocked(rec, base, mode)
		}
		e.logf("emulator: challenge left user=%q action=%q state=%s", rec.key.user, rec.key.action, rec.state)
	}
	redirect := rec.req.RedirectURL
	e.mu.Unlock()

	if jsonBody != nil {
		writeJSON(w, status, jsonBody)
		return
	}
	if location != "" {
		h.Set("Location", location)
		w.WriteHeader(status)
		return
	}
	d.Mode = mode
	if mode != "" {
		d.Origins = e.messageTargets(redirect)
	}
	e.render(w, status, d, redirect)
}

// pageLocked describes the page for rec: a method choice, a code entry, an
// enrolment step, or a status when there is nothing to verify.
func (e *Emulator) pageLocked(rec *actionRecord, token, csrf, errMsg string) pageData {
	d := pageData{Title: "Verify it's you", UserID: rec.key.user, Action: rec.key.action, Token: token,
		CSRF: csrf, Error: errMsg, State: rec.state, What: humanize(rec.key.action), Details: details(rec.req.Custom)}
	active, enrol := e.pageMode(rec)
	if !active {
		d.Step, d.Title = "status", "Nothing to verify"
		d.Message = statusMessages[rec.state]
		if d.Message == "" {
			d.Message = "This action's state is " + rec.state + "."
		}
		return d
	}
	d.Active, d.Enrol = true, enrol
	d.Attempts = maxCodeAttempts - rec.attempts
	u := e.users[rec.key.user]
	if enrol {
		for _, m := range enrollableLocked(rec) {
			if m != rec.enrolMethod {
				d.Methods = append(d.Methods, methodChoice{Code: m, Label: enrolLabels[m]})
			}
		}
		d.Title = "Set up verification"
		if u != nil {
			d.Email = u.email
		}
		d.EmailFixed = e.enrolledEmailLocked(u)
		switch {
		case rec.enrolEmail != "" && rec.enrolMethod == MethodPasskey:
			d.Step, d.Email, d.Passkey, d.Register = "passkey", rec.enrolEmail, true, true
			return d
		case rec.enrolEmail != "" && rec.enrolMethod == MethodAuthenticatorApp && rec.enrolTOTP != "":
			d.Step, d.Email = "totp-setup", rec.enrolEmail
			if key, err := otp.NewKeyFromURL(rec.enrolTOTP); err == nil {
				d.TOTPSecret, d.TOTPQR = key.Secret(), totpQR(key)
			}
			return d
		case rec.enrolEmail != "":
			d.Step, d.Email = "enrol", rec.enrolEmail
			return d
		}
		d.Methods = nil
	}
	if code := rec.code; code != nil && e.now().Before(code.expires) {
		d.Step, d.Method, d.To = "code", code.method, code.to
		d.Channel = channelOf(code.method)
		if enrol {
			d.Email = code.to
		}
		if e.cfg.DevMode {
			d.DevCode = code.code // shown, and filled in: one click to verify
		}
		return d
	}
	d.Step = "choose"
	methods := []string{MethodEmailOTP}
	if !enrol {
		methods = e.offeredLocked(rec)
		if len(methods) == 0 {
			d.Step, d.Title, d.Active = "status", "Cannot verify", false
			d.Message = "None of your verification methods is accepted for this action (it accepts " +
				strings.Join(rec.allowed, ", ") + "), and none can be set up here. Cancel and ask for help."
			return d
		}
	}
	for _, m := range methods {
		if m == MethodPasskey {
			d.Passkey = true // its own button, run by the page's script
			continue
		}
		d.Methods = append(d.Methods, methodChoice{Code: m, Label: methodLabels[m]})
	}
	return d
}

var statusMessages = map[string]string{
	StateAllow:              "No verification is needed for this action.",
	StateBlock:              "This action was blocked.",
	StateReviewRequired:     "This action is waiting for a review.",
	StateChallengeSucceeded: "You have already verified this action.",
	StateChallengeFailed:    "Verification failed for this action.",
	StateReviewSucceeded:    "This action was approved.",
	StateReviewFailed:       "This action was rejected.",
}

// pageMode reports whether the page has something to do for rec, and
// whether that is enrolling an email OTP first: a challenge for a user with
// no authenticator (allowed by an enrol rule), or an unenrolled user sent to
// the URL of an ALLOW action to enrol, as Authsignal's helpers do.
//
// A user whose enrolled methods the action does not accept, but who has an
// email OTP, enrols one it accepts after a code to that (fixed) address.
func (e *Emulator) pageMode(rec *actionRecord) (active, enrol bool) {
	u := e.users[rec.key.user]
	enrolled := e.enrolled(u)
	switch {
	case rec.state == StateChallengeRequired:
		if enrolled && len(e.offeredLocked(rec)) == 0 {
			return true, e.enrolledEmailLocked(u) && len(enrollableLocked(rec)) > 0
		}
		return true, !enrolled
	case rec.state == StateAllow && !enrolled:
		return true, true
	}
	return false, false
}

// enrolledEmailLocked reports whether u verifies with codes to an email
// address it has: enrolment of another method then starts with a code to
// that address, which the page does not let the user change.
func (e *Emulator) enrolledEmailLocked(u *userRecord) bool {
	return u != nil && contains(e.methodsOf(u), MethodEmailOTP) && validEmail(u.email)
}

func channelOf(method string) string {
	switch method {
	case MethodSMS:
		return "sms"
	case MethodAuthenticatorApp:
		return "authenticator app"
	}
	return "email"
}

// sendCodeLocked handles "send code": it puts a fresh 6-digit code in the
// outbox and shows the code entry (via a redirect, so reloads are harmless).
func (e *Emulator) sendCodeLocked(rec *actionRecord, r *http.Request, token, csrf string) (int, string, pageData) {
	active, enrol := e.pageMode(rec)
	if !active {
		return http.StatusOK, "", e.pageLocked(rec, token, csrf, "")
	}
	method := r.PostForm.Get("method")
	u := e.userLocked(rec.key.user)
	var to string
	switch {
	case enrol && rec.enrolEmail != "":
		return http.StatusUnprocessableEntity, "", e.pageLocked(rec, token, csrf, "Your email address is verified: choose a method to set up.")
	case enrol:
		to = strings.TrimSpace(r.PostForm.Get("email"))
		if e.enrolledEmailLocked(u) {
			to = u.email // the address the user verifies with already; not to be changed here
		}
		if method != MethodEmailOTP || !validEmail(to) {
			d := e.pageLocked(rec, token, csrf, "Enter a valid email address.")
			d.Email = to
			return http.StatusUnprocessableEntity, "", d
		}
	case !contains(e.offeredLocked(rec), method) || method == MethodPasskey:
		return http.StatusUnprocessableEntity, "", e.pageLocked(rec, token, csrf, "Choose one of the methods below.")
	case method == MethodAuthenticatorApp:
		// Nothing is sent: the page asks for the app's code.
		rec.code = &oneTimeCode{method: method, expires: e.now().Add(codeLifetime)}
		return http.StatusSeeOther, pageLocation(token, r), pageData{}
	case method == MethodSMS:
		to = u.phone
	default:
		to = u.email
	}
	if rec.sends >= maxCodeSends {
		return http.StatusTooManyRequests, "", e.pageLocked(rec, token, csrf, "Too many codes were sent for this action.")
	}
	e.issueCodeLocked(rec, method, to)
	return http.StatusSeeOther, pageLocation(token, r), pageData{}
}

// pageLocation is the challenge page again, in the form's mode.
func pageLocation(token string, r *http.Request) string {
	loc := "/challenge?token=" + url.QueryEscape(token)
	if mode := launchMode(r.PostForm.Get("mode")); mode != "" {
		loc += "&mode=" + mode
	}
	return loc
}

// issueCodeLocked puts a fresh 6-digit code for rec in the outbox.
func (e *Emulator) issueCodeLocked(rec *actionRecord, method, to string) {
	now := e.now()
	rec.sends++
	rec.code = &oneTimeCode{code: newCode(), method: method, to: to, expires: now.Add(codeLifetime)}
	e.postLocked(Message{UserID: rec.key.user, Action: rec.key.action, IdempotencyKey: rec.key.key,
		Channel: channelOf(method), To: to, Code: rec.code.code, SentAt: now})
	if e.cfg.DevMode {
		e.logf("emulator: %s code for user=%q action=%q: %s", channelOf(method), rec.key.user, rec.key.action, rec.code.code)
	} else {
		e.logf("emulator: %s code sent for user=%q action=%q", channelOf(method), rec.key.user, rec.key.action)
	}
}

// autoSendLocked sends the code when the page is first shown, in DevMode,
// to a user with one method: nobody has to click "Email me a code" to be
// shown a code on the same page. Only the first view sends (a reload shows
// the code already sent); enrolment still asks for the address first, and
// a user with several methods still chooses.
func (e *Emulator) autoSendLocked(rec *actionRecord) {
	if !e.cfg.DevMode || rec.sends > 0 || rec.code != nil {
		return
	}
	if active, enrol := e.pageMode(rec); !active || enrol {
		return
	}
	u := e.userLocked(rec.key.user)
	methods := e.offeredLocked(rec)
	if len(methods) != 1 || (methods[0] != MethodEmailOTP && methods[0] != MethodSMS) {
		return
	}
	to := u.email
	if methods[0] == MethodSMS {
		to = u.phone
	}
	e.issueCodeLocked(rec, methods[0], to)
}

// verifyLocked checks a submitted code: one sent by email or SMS, or one
// from the user's authenticator app, or the first one of an app being set
// up. The right code settles the action as CHALLENGE_SUCCEEDED (enrolling
// the user first if needed); the third wrong one as CHALLENGE_FAILED. Both
// redirect back with a fresh token. In an enrolment whose action accepts
// more than email OTP, the right email code leads to the choice of the
// method to set up instead.
func (e *Emulator) verifyLocked(rec *actionRecord, r *http.Request, token, csrf, base string) (int, string, pageData) {
	active, enrol := e.pageMode(rec)
	if !active {
		return http.StatusOK, "", e.pageLocked(rec, token, csrf, "")
	}
	got := strings.TrimSpace(r.PostForm.Get("code"))
	mode := launchMode(r.PostForm.Get("mode"))
	u := e.userLocked(rec.key.user)
	var method string
	var ok bool
	switch code := rec.code; {
	case enrol && rec.enrolEmail != "" && rec.enrolMethod == MethodAuthenticatorApp && rec.enrolTOTP != "":
		key, err := otp.NewKeyFromURL(rec.enrolTOTP)
		var step int64
		if err == nil {
			step, ok = totpStep(key.Secret(), got, e.now())
		}
		if ok {
			u.totpSecret, u.totpStep = key.Secret(), step
		}
		method = MethodAuthenticatorApp
	case enrol && rec.enrolEmail != "":
		return http.StatusUnprocessableEntity, "", e.pageLocked(rec, token, csrf, "Choose a method to set up.")
	case code == nil:
		return http.StatusUnprocessableEntity, "", e.pageLocked(rec, token, csrf, "Send a code first.")
	case !e.now().Before(code.expires):
		rec.code = nil
		return http.StatusUnprocessableEntity, "", e.pageLocked(rec, token, csrf, "The code has expired. Send a new one.")
	case code.method == MethodAuthenticatorApp:
		method = code.method
		ok = !enrol && contains(e.offeredLocked(rec), method) && checkTOTPLocked(u, got, e.now())
	default:
		method = code.method
		ok = subtle.ConstantTimeCompare([]byte(got), []byte(code.code)) == 1
	}
	if !ok {
		return e.wrongLocked(rec, token, csrf, base, mode, "That code is not right.")
	}
	switch {
	case enrol && method == MethodEmailOTP && !slices.Equal(enrollableLocked(rec), []string{MethodEmailOTP}):
		rec.enrolEmail, rec.code = rec.code.to, nil
		e.logf("emulator: enrolment email verified user=%q action=%q", rec.key.user, rec.key.action)
		return http.StatusSeeOther, pageLocation(token, r), pageData{}
	case enrol && method == MethodEmailOTP:
		rec.enrolEmail = rec.code.to
		e.enrolPageLocked(rec, MethodEmailOTP)
	case enrol:
		e.enrolPageLocked(rec, method)
	}
	return e.succeedLocked(rec, base, mode, method)
}

// wrongLocked counts a failed attempt (a wrong code, a failed passkey): the
// third settles the action as CHALLENGE_FAILED.
func (e *Emulator) wrongLocked(rec *actionRecord, token, csrf, base, mode, msg string) (int, string, pageData) {
	rec.attempts++
	if rec.attempts >= maxCodeAttempts {
		e.setStateLocked(rec, StateChallengeFailed, "")
		e.logf("emulator: challenge failed user=%q action=%q", rec.key.user, rec.key.action)
		return http.StatusSeeOther, e.finishLocationLocked(rec, base, mode), pageData{}
	}
	left := maxCodeAttempts - rec.attempts
	return http.StatusUnprocessableEntity, "", e.pageLocked(rec, token, csrf,
		fmt.Sprintf("%s %d attempt%s left.", msg, left, map[bool]string{true: "", false: "s"}[left == 1]))
}

// succeedLocked settles rec as CHALLENGE_SUCCEEDED with method and returns
// where the browser goes.
func (e *Emulator) succeedLocked(rec *actionRecord, base, mode, method string) (int, string, pageData) {
	e.setStateLocked(rec, StateChallengeSucceeded, method)
	e.logf("emulator: challenge succeeded user=%q action=%q method=%s", rec.key.user, rec.key.action, method)
	return http.StatusSeeOther, e.finishLocationLocked(rec, base, mode), pageData{}
}

// enrolPageLocked enrols method for rec's user with the address verified
// on the page, keeping the methods the user had.
func (e *Emulator) enrolPageLocked(rec *actionRecord, method string) {
	u := e.userLocked(rec.key.user)
	methods := append([]string{}, u.methods...)
	if method == MethodEmailOTP {
		methods = append([]string{MethodEmailOTP}, methods...)
	} else {
		methods = append(methods, method)
	}
	e.enrollLocked(User{ID: u.id, Email: rec.enrolEmail, Methods: methods})
	if rec.enrolEmail != "" {
		u.profile.emailVerified = true
	}
	e.logf("emulator: enrol on the page user=%q method=%s", u.id, method)
}

// enrolPickLocked handles the choice of the method to set up, once the
// user's email address is verified: email OTP finishes at once; an
// authenticator app shows its QR code and asks for a first code; a passkey
// shows the button that registers one.
func (e *Emulator) enrolPickLocked(rec *actionRecord, r *http.Request, token, csrf, base string) (int, string, pageData) {
	active, enrol := e.pageMode(rec)
	if !active || !enrol || rec.enrolEmail == "" {
		return http.StatusUnprocessableEntity, "", e.pageLocked(rec, token, csrf, "Verify your email address first.")
	}
	method := r.PostForm.Get("method")
	if !contains(enrollableLocked(rec), method) {
		return http.StatusUnprocessableEntity, "", e.pageLocked(rec, token, csrf, "Choose one of the methods below.")
	}
	rec.enrolMethod, rec.enrolTOTP, rec.passkey = method, "", nil
	switch method {
	case MethodEmailOTP:
		e.enrolPageLocked(rec, MethodEmailOTP)
		return e.succeedLocked(rec, base, launchMode(r.PostForm.Get("mode")), MethodEmailOTP)
	case MethodAuthenticatorApp:
		key, err := newTOTPKey(rec.enrolEmail)
		if err != nil {
			return http.StatusInternalServerError, "", e.pageLocked(rec, token, csrf, "The authenticator app secret could not be made.")
		}
		rec.enrolTOTP = key.URL()
	}
	return http.StatusSeeOther, pageLocation(token, r), pageData{}
}

// passkeyBeginLocked starts a passkey ceremony: a registration while
// enrolling one, else an authentication when the page offers passkeys.
func (e *Emulator) passkeyBeginLocked(rec *actionRecord, base string) (int, any) {
	register, ok := e.passkeyStepLocked(rec)
	if !ok {
		return http.StatusUnprocessableEntity, map[string]string{"error": "This page offers no passkey now."}
	}
	opts, err := e.beginPasskeyLocked(rec, base, register)
	if err != nil {
		return http.StatusUnprocessableEntity, map[string]string{"error": err.Error()}
	}
	return http.StatusOK, opts
}

// passkeyStepLocked reports whether the page runs a passkey ceremony for
// rec now, and which.
func (e *Emulator) passkeyStepLocked(rec *actionRecord) (register, ok bool) {
	active, enrol := e.pageMode(rec)
	switch {
	case !active:
		return false, false
	case enrol:
		return true, rec.enrolEmail != "" && rec.enrolMethod == MethodPasskey
	}
	return false, contains(e.offeredLocked(rec), MethodPasskey)
}

// passkeyFinishLocked checks the browser's answer (the form's credential,
// PublicKeyCredential.toJSON()) and answers where to go next.
func (e *Emulator) passkeyFinishLocked(rec *actionRecord, r *http.Request, base string) (int, any) {
	register, ok := e.passkeyStepLocked(rec)
	if !ok || rec.passkey == nil || rec.passkey.register != register {
		rec.passkey = nil
		return http.StatusUnprocessableEntity, map[string]string{"error": "No passkey ceremony is under way: start again."}
	}
	mode := launchMode(r.PostForm.Get("mode"))
	if err := e.finishPasskeyLocked(rec, base, register, []byte(r.PostForm.Get("credential"))); err != nil {
		e.logf("emulator: passkey refused user=%q action=%q: %v", rec.key.user, rec.key.action, err)
		status, loc, d := e.wrongLocked(rec, "", "", base, mode, "The passkey was not accepted.")
		if loc != "" {
			return http.StatusOK, map[string]string{"location": loc}
		}
		return status, map[string]string{"error": d.Error}
	}
	if register {
		e.enrolPageLocked(rec, MethodPasskey)
	}
	_, loc, _ := e.succeedLocked(rec, base, mode, MethodPasskey)
	return http.StatusOK, map[string]string{"location": loc}
}

// finishLocationLocked is where the page sends the browser when it is done:
// in redirect mode the track's redirectUrl with token=<fresh token> appended
// (other query parameters kept as they were, any old token dropped), or the
// done page when there is none; in popup and window mode the done page,
// which hands the fresh token to the SDK.
func (e *Emulator) finishLocationLocked(rec *actionRecord, base, mode string) string {
	token := url.QueryEscape(e.issueToken(rec, base))
	if mode != "" {
		return "/challenge/done?token=" + token + "&mode=" + mode
	}
	if rec.req.RedirectURL == "" {
		return "/challenge/done?token=" + token
	}
	u, err := url.Parse(rec.req.RedirectURL) // validated by track
	if err != nil {
		return "/challenge/done?token=" + token
	}
	var kept []string
	for _, p := range strings.Split(u.RawQuery, "&") {
		k, _, _ := strings.Cut(p, "=")
		if k, err := url.QueryUnescape(k); p == "" || (err == nil && k == "token") {
			continue
		}
		kept = append(kept, p)
	}
	u.RawQuery = strings.Join(append(kept, "token="+token), "&")
	u.ForceQuery = false
	return u.String()
}

// render writes the page. Redirect mode runs no script; popup and window
// mode run one inline script, allowed by a fresh nonce, when there is an
// origin to post to.
func (e *Emulator) render(w http.ResponseWriter, status int, d pageData, redirectURL string) {
	formAction := "'self'"
	if u, err := url.Parse(redirectURL); err == nil && redirectURL != "" && validHost(u.Host) &&
		(u.Scheme == "http" || u.Scheme == "https") {
		formAction += " " + u.Scheme + "://" + u.Host // the page's forms redirect there
	}
	scripts := ""
	d.SDK = d.Mode != "" && len(d.Origins) > 0
	if d.SDK || d.Passkey {
		var b [18]byte
		rand.Read(b[:])
		d.Nonce = b64(b[:])
		scripts = "script-src 'nonce-" + d.Nonce + "'; "
	}
	if !d.SDK {
		d.Close = "" // nobody to tell: the done page shows the token instead
	}
	if d.Passkey {
		scripts += "connect-src 'self'; " // the passkey script's fetches
	}
	if d.TOTPQR != "" {
		scripts += "img-src data:; " // the QR code
	}
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; "+scripts+"style-src 'unsafe-inline'; form-action "+formAction+
		"; frame-ancestors "+e.frameAncestors()+"; base-uri 'none'")
	h.Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := pageTemplate.Execute(w, d); err != nil {
		e.logf("emulator: page: %v", err)
	}
}

func (e *Emulator) renderMessage(w http.ResponseWriter, status int, title, msg string) {
	e.render(w, status, pageData{Title: title, Step: "invalid", Message: msg}, "")
}

func (e *Emulator) csrfToken(token string) string { return b64(mac(e.secret, "csrf\x00"+token)) }

// checkCSRF refuses a form sent from another site, and one whose csrf field
// is not HMAC(secret, its challenge token). No cookie is involved: the page
// must work in a cross-site iframe, where browsers withhold cookies.
// Browsers say where a form comes from (Sec-Fetch-Site, else Origin);
// clients that say neither are not browsers and cannot be forged into
// sending anything.
func (e *Emulator) checkCSRF(r *http.Request) bool {
	if http.NewCrossOriginProtection().Check(r) != nil {
		return false
	}
	got := r.PostForm.Get("csrf")
	return subtle.ConstantTimeCompare([]byte(got), []byte(e.csrfToken(r.PostForm.Get("token")))) == 1
}

func newCode() string {
	n, err := rand.Int(rand.Reader, big.NewInt(1000000))
	if err != nil {
		panic(err) // crypto/rand does not fail
	}
	return fmt.Sprintf("%06d", n.Int64())
}

// validEmail is the emulator's one address check (the hosted page, the
// driver and enrolment): something@something, at most 254 bytes, nothing
// that is blank, unprintable or would break out of markup.
func validEmail(s string) bool {
	at := strings.LastIndexByte(s, '@')
	return len(s) <= 254 && at > 0 && at < len(s)-1 && !strings.ContainsAny(s, "<>\"") &&
		strings.IndexFunc(s, func(r rune) bool { return unicode.IsSpace(r) || !unicode.IsPrint(r) }) < 0
}
