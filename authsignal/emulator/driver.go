package emulator

import (
	"context"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/pquerna/otp/totp"
)

// CompleteChallenge drives the hosted page at challengeURL over HTTP as a
// browser would (its own cookie jar): it chooses email OTP (or the user's
// only method), reads the code from the outbox and submits it. It returns
// where the page redirects: the track's redirectUrl with token=… appended,
// or the emulator's done page when there was none or when challengeURL has
// the browser SDK's mode=popup (or window). The challenge URL must
// point at a listening emulator (New, or NewHandler behind a server).
func (e *Emulator) CompleteChallenge(ctx context.Context, challengeURL string) (*url.URL, error) {
	b, err := e.startDriver(ctx, challengeURL)
	if err != nil {
		return nil, err
	}
	code, err := b.sendCode(ctx, "")
	if err != nil {
		return nil, err
	}
	return b.finish(ctx, code)
}

// CompleteChallengeWith is CompleteChallenge with the method the user
// picks on the page: afterwards validate and get action report
// verificationMethod = method. It fails when the page does not offer
// method (not enrolled, or not accepted by the action), or when the page
// already shows a code sent by another method. The methods it can drive
// are MethodEmailOTP, MethodSMS and MethodAuthenticatorApp (the code the
// user's app shows at the emulator's clock; a step not used yet). Passkeys
// need a browser: see the package documentation.
func (e *Emulator) CompleteChallengeWith(ctx context.Context, challengeURL, method string) (*url.URL, error) {
	if method != MethodEmailOTP && method != MethodSMS && method != MethodAuthenticatorApp {
		return nil, fmt.Errorf("emulator: CompleteChallengeWith cannot drive method %q", method)
	}
	b, err := e.startDriver(ctx, challengeURL)
	if err != nil {
		return nil, err
	}
	if method == MethodAuthenticatorApp {
		if b.shownCode() != method {
			if err := b.requestCode(ctx, method); err != nil {
				return nil, err
			}
		}
		code, err := b.e.nextTOTP(b.key.user)
		if err != nil {
			return nil, err
		}
		return b.submit(ctx, "/challenge/verify", url.Values{"code": {code}})
	}
	code, err := b.sendCode(ctx, method)
	if err != nil {
		return nil, err
	}
	return b.finish(ctx, code)
}

// nextTOTP is the code of userID's authenticator app for the first step of
// the window around the emulator's clock not yet used.
func (e *Emulator) nextTOTP(userID string) (string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	u := e.users[userID]
	if u == nil || u.totpSecret == "" {
		return "", errors.New("emulator: the user has no authenticator app")
	}
	now := e.now()
	for d := -totpSkew; d <= totpSkew; d++ {
		t := now.Add(time.Duration(d*totpPeriod) * time.Second)
		if t.Unix()/totpPeriod > u.totpStep {
			return totp.GenerateCodeCustom(u.totpSecret, t, totpOpts)
		}
	}
	return "", errors.New("emulator: every code of the authenticator app's window is used: advance the clock")
}

// finish submits the code; when that verified the address of an enrolment
// whose action accepts more than email OTP, it picks email OTP.
func (d *driver) finish(ctx context.Context, code string) (*url.URL, error) {
	loc, err := d.submit(ctx, "/challenge/verify", url.Values{"code": {code}})
	if err != nil || loc.Path != "/challenge" || loc.Host != d.base.Host {
		return loc, err
	}
	if err := d.get(ctx, loc.String()); err != nil {
		return nil, err
	}
	if !strings.Contains(d.page, `action="/challenge/enrol"`) || !strings.Contains(d.page, `value="`+MethodEmailOTP+`"`) {
		return nil, errors.New("emulator: the enrolment offers no email OTP: the driver cannot set up the other methods")
	}
	return d.submit(ctx, "/challenge/enrol", url.Values{"method": {MethodEmailOTP}})
}

// CancelChallenge presses the page's Cancel button and returns the
// redirect; the action's state is unchanged.
func (e *Emulator) CancelChallenge(ctx context.Context, challengeURL string) (*url.URL, error) {
	b, err := e.startDriver(ctx, challengeURL)
	if err != nil {
		return nil, err
	}
	return b.submit(ctx, "/challenge/cancel", nil)
}

// FailChallenge requests a code and submits three wrong ones, which settles
// the action as CHALLENGE_FAILED, and returns the redirect.
func (e *Emulator) FailChallenge(ctx context.Context, challengeURL string) (*url.URL, error) {
	b, err := e.startDriver(ctx, challengeURL)
	if err != nil {
		return nil, err
	}
	code, err := b.sendCode(ctx, "")
	if err != nil {
		return nil, err
	}
	n, _ := strconv.Atoi(code)
	wrong := fmt.Sprintf("%06d", (n+1)%1000000)
	for i := 1; i < maxCodeAttempts; i++ {
		if _, err := b.post(ctx, "/challenge/verify", url.Values{"code": {wrong}}, http.StatusUnprocessableEntity); err != nil {
			return nil, err
		}
	}
	return b.submit(ctx, "/challenge/verify", url.Values{"code": {wrong}})
}

// driver is one browser session on the hosted page.
type driver struct {
	e      *Emulator
	client *http.Client
	base   *url.URL
	token  string
	mode   string // the challenge URL's mode (popup, window), carried by the forms as the page's are
	key    actionKey
	page   string // the last page's HTML
}

var (
	csrfRE   = regexp.MustCompile(`name="csrf" value="([^"]*)"`)
	methodRE = regexp.MustCompile(`name="method" value="([A-Z_]+)"`)
	emailRE  = regexp.MustCompile(`id="email" name="email" type="email" value="([^"]*)"`)
)

func (e *Emulator) startDriver(ctx context.Context, challengeURL string) (*driver, error) {
	u, err := url.Parse(challengeURL)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("emulator: challenge URL %q is not absolute", challengeURL)
	}
	token := u.Query().Get("token")
	c, err := verifyToken(e.secret, token, e.now())
	if err != nil {
		return nil, fmt.Errorf("emulator: challenge URL: %w", err)
	}
	jar, _ := cookiejar.New(nil)
	d := &driver{
		e: e,
		client: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		}},
		base:  &url.URL{Scheme: u.Scheme, Host: u.Host},
		token: token,
		mode:  launchMode(u.Query().Get("mode")),
		key:   c.key(),
	}
	if err := d.get(ctx, challengeURL); err != nil {
		return nil, err
	}
	if !strings.Contains(d.page, `id="cancel"`) {
		return nil, errors.New("emulator: the challenge page has nothing to verify (is the action finished?)")
	}
	return d, nil
}

func (d *driver) get(ctx context.Context, target string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return err
	}
	resp, err := d.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("emulator: GET challenge page: status %d", resp.StatusCode)
	}
	d.page = string(body)
	return nil
}

// post submits a form of the current page and expects status want.
func (d *driver) post(ctx context.Context, path string, form url.Values, want int) (*http.Response, error) {
	m := csrfRE.FindStringSubmatch(d.page)
	if m == nil {
		return nil, errors.New("emulator: no CSRF field on the challenge page")
	}
	if form == nil {
		form = url.Values{}
	}
	form.Set("token", d.token)
	form.Set("csrf", html.UnescapeString(m[1]))
	if d.mode != "" {
		form.Set("mode", d.mode)
	}
	target := d.base.ResolveReference(&url.URL{Path: path})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target.String(), strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := d.client.Do(req)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != want {
		return nil, fmt.Errorf("emulator: POST %s: status %d, want %d", path, resp.StatusCode, want)
	}
	if want != http.StatusSeeOther {
		d.page = string(body)
	}
	return resp, nil
}

// sendCode asks for a code and returns it, read from the outbox. A page
// that already shows the code entry (DevMode sent the code when it was
// first shown) is not asked for another, unless it was sent by another
// method than want ("" takes any).
func (d *driver) sendCode(ctx context.Context, want string) (string, error) {
	if strings.Contains(d.page, `id="code"`) && want != "" {
		if sent := d.shownCode(); sent != want {
			return "", fmt.Errorf("emulator: the challenge page shows a %s code, not %s", sent, want)
		}
	}
	if !strings.Contains(d.page, `id="code"`) {
		if err := d.requestCode(ctx, want); err != nil {
			return "", err
		}
	}
	d.e.mu.Lock()
	defer d.e.mu.Unlock()
	for i := len(d.e.outbox) - 1; i >= 0; i-- {
		if m := d.e.outbox[i]; m.UserID == d.key.user && m.Action == d.key.action && m.IdempotencyKey == d.key.key {
			return m.Code, nil
		}
	}
	return "", errors.New("emulator: no code in the outbox")
}

// shownCode is the method of the code the page asks for, or "".
func (d *driver) shownCode() string {
	if !strings.Contains(d.page, `id="code"`) {
		return ""
	}
	d.e.mu.Lock()
	defer d.e.mu.Unlock()
	if rec := d.e.actions[d.key]; rec != nil && rec.code != nil {
		return rec.code.method
	}
	return ""
}

// requestCode chooses a method (want, else email OTP if offered) and
// presses it.
func (d *driver) requestCode(ctx context.Context, want string) error {
	form := url.Values{}
	methods := methodRE.FindAllStringSubmatch(d.page, -1)
	if len(methods) == 0 {
		return errors.New("emulator: the challenge page offers no method")
	}
	form.Set("method", methods[0][1])
	for _, m := range methods {
		if m[1] == MethodEmailOTP {
			form.Set("method", MethodEmailOTP)
		}
	}
	if want != "" {
		offered := false
		for _, m := range methods {
			offered = offered || m[1] == want
		}
		if !offered {
			return fmt.Errorf("emulator: the challenge page does not offer %s", want)
		}
		form.Set("method", want)
	}
	if m := emailRE.FindStringSubmatch(d.page); m != nil { // enrolment
		email := html.UnescapeString(m[1])
		if !validEmail(email) {
			email = "user@example.com"
		}
		form.Set("email", email)
	}
	resp, err := d.post(ctx, "/challenge/send", form, http.StatusSeeOther)
	if err != nil {
		return err
	}
	loc, err := resp.Location()
	if err != nil {
		return err
	}
	return d.get(ctx, loc.String())
}

// submit posts a form that finishes the challenge and returns the redirect.
func (d *driver) submit(ctx context.Context, path string, form url.Values) (*url.URL, error) {
	resp, err := d.post(ctx, path, form, http.StatusSeeOther)
	if err != nil {
		return nil, err
	}
	return resp.Location()
}
