package emulator

import (
	"crypto/rand"
	"crypto/subtle"
	"fmt"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"unicode"
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
	case "/challenge/send", "/challenge/verify", "/challenge/cancel":
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

// pageLocked describes the page for rec: a method choice, a code entry, or
// a status when there is nothing to verify.
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
	if enrol {
		d.Title = "Set up verification"
		if u := e.users[rec.key.user]; u != nil {
			d.Email = u.email
		}
	}
	if code := rec.code; code != nil && e.now().Before(code.expires) {
		d.Step, d.Method, d.To = "code", code.method, code.to
		d.Channel = channelOf(code.method)
		d.Attempts = maxCodeAttempts - rec.attempts
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
		methods = e.methodsOf(e.users[rec.key.user])
	}
	for _, m := range methods {
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
func (e *Emulator) pageMode(rec *actionRecord) (active, enrol bool) {
	enrolled := e.enrolled(e.users[rec.key.user])
	switch {
	case rec.state == StateChallengeRequired:
		return true, !enrolled
	case rec.state == StateAllow && !enrolled:
		return true, true
	}
	return false, false
}

func channelOf(method string) string {
	if method == MethodSMS {
		return "sms"
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
	case enrol:
		to = strings.TrimSpace(r.PostForm.Get("email"))
		if method != MethodEmailOTP || !validEmail(to) {
			d := e.pageLocked(rec, token, csrf, "Enter a valid email address.")
			d.Email = to
			return http.StatusUnprocessableEntity, "", d
		}
	case !contains(e.methodsOf(u), method):
		return http.StatusUnprocessableEntity, "", e.pageLocked(rec, token, csrf, "Choose one of the methods below.")
	case method == MethodSMS:
		to = u.phone
	default:
		to = u.email
	}
	if rec.sends >= maxCodeSends {
		return http.StatusTooManyRequests, "", e.pageLocked(rec, token, csrf, "Too many codes were sent for this action.")
	}
	e.issueCodeLocked(rec, method, to)
	loc := "/challenge?token=" + url.QueryEscape(token)
	if mode := launchMode(r.PostForm.Get("mode")); mode != "" {
		loc += "&mode=" + mode
	}
	return http.StatusSeeOther, loc, pageData{}
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
	methods := e.methodsOf(u)
	if len(methods) != 1 {
		return
	}
	to := u.email
	if methods[0] == MethodSMS {
		to = u.phone
	}
	e.issueCodeLocked(rec, methods[0], to)
}

// verifyLocked checks a submitted code. The right code settles the action
// as CHALLENGE_SUCCEEDED (enrolling the user first if needed); the third
// wrong one as CHALLENGE_FAILED. Both redirect back with a fresh token.
func (e *Emulator) verifyLocked(rec *actionRecord, r *http.Request, token, csrf, base string) (int, string, pageData) {
	active, enrol := e.pageMode(rec)
	if !active {
		return http.StatusOK, "", e.pageLocked(rec, token, csrf, "")
	}
	code := rec.code
	if code == nil {
		return http.StatusUnprocessableEntity, "", e.pageLocked(rec, token, csrf, "Send a code first.")
	}
	if !e.now().Before(code.expires) {
		rec.code = nil
		return http.StatusUnprocessableEntity, "", e.pageLocked(rec, token, csrf, "The code has expired. Send a new one.")
	}
	got := strings.TrimSpace(r.PostForm.Get("code"))
	if subtle.ConstantTimeCompare([]byte(got), []byte(code.code)) != 1 {
		rec.attempts++
		if rec.attempts >= maxCodeAttempts {
			e.setStateLocked(rec, StateChallengeFailed, "")
			e.logf("emulator: challenge failed user=%q action=%q", rec.key.user, rec.key.action)
			return http.StatusSeeOther, e.finishLocationLocked(rec, base, launchMode(r.PostForm.Get("mode"))), pageData{}
		}
		left := maxCodeAttempts - rec.attempts
		return http.StatusUnprocessableEntity, "", e.pageLocked(rec, token, csrf,
			fmt.Sprintf("That code is not right. %d attempt%s left.", left, map[bool]string{true: "", false: "s"}[left == 1]))
	}
	if enrol {
		u := e.userLocked(rec.key.user)
		e.enrollLocked(User{ID: u.id, Email: code.to, Methods: append([]string{MethodEmailOTP}, u.methods...)})
	}
	e.setStateLocked(rec, StateChallengeSucceeded, code.method)
	e.logf("emulator: challenge succeeded user=%q action=%q method=%s", rec.key.user, rec.key.action, code.method)
	return http.StatusSeeOther, e.finishLocationLocked(rec, base, launchMode(r.PostForm.Get("mode"))), pageData{}
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
	if d.Mode != "" && len(d.Origins) > 0 {
		var b [18]byte
		rand.Read(b[:])
		d.Nonce = b64(b[:])
		scripts = "script-src 'nonce-" + d.Nonce + "'; "
	} else {
		d.Close = "" // nobody to tell: the done page shows the token instead
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
