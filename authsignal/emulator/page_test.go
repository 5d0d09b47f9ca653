package emulator_test

import (
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup/authsignal/emulator"
)

// browser is a cookie-keeping client that does not follow redirects.
type browser struct {
	t testing.TB
	c *http.Client
}

func newBrowser(t testing.TB) *browser {
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	return &browser{t: t, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}}
}

func (b *browser) do(req *http.Request) (*http.Response, string) {
	b.t.Helper()
	resp, err := b.c.Do(req)
	require.NoError(b.t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(b.t, err)
	return resp, string(body)
}

func (b *browser) get(target string) (*http.Response, string) {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodGet, target, nil)
	require.NoError(b.t, err)
	return b.do(req)
}

func (b *browser) post(target string, form url.Values) (*http.Response, string) {
	b.t.Helper()
	return b.postWith(target, form, nil)
}

// postWith posts form with extra headers, such as the fetch metadata a
// browser adds.
func (b *browser) postWith(target string, form url.Values, header http.Header) (*http.Response, string) {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodPost, target, strings.NewReader(form.Encode()))
	require.NoError(b.t, err)
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]*)"`)

func csrfOf(t testing.TB, page string) string {
	t.Helper()
	m := csrfField.FindStringSubmatch(page)
	require.NotNil(t, m, "no csrf field in %s", page)
	return html.UnescapeString(m[1])
}

func TestPageCompletesAChallenge(t *testing.T) {
	srv := start(t, emulator.Config{Rules: mustRules(t, trackRules), Users: []emulator.User{alice}})
	got := track(t, srv, "alice", "changeEmail", map[string]any{"redirectUrl": "https://app.example/cb?park=abc&token=stale#frag"})
	b := newBrowser(t)

	resp, page := b.get(got.URL)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, page, `<button class="primary" type="submit" name="method" value="EMAIL_OTP">`)
	assert.Contains(t, page, `id="cancel"`)
	token := got.Token
	csrf := csrfOf(t, page)

	resp, _ = b.post(srv.URL+"/challenge/send", url.Values{"token": {token}, "csrf": {csrf}, "method": {"EMAIL_OTP"}})
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	resp, page = b.get(srv.URL + resp.Header.Get("Location"))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	code, ok := srv.LastCode("alice")
	require.True(t, ok)
	assert.Regexp(t, `^[0-9]{6}$`, code)
	assert.Contains(t, page, `id="code"`)
	assert.Contains(t, page, `id="verify"`)

	resp, _ = b.post(srv.URL+"/challenge/verify", url.Values{"token": {token}, "csrf": {csrf}, "code": {code}})
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	loc, err := url.Parse(resp.Header.Get("Location"))
	require.NoError(t, err)
	assert.Equal(t, "app.example", loc.Host)
	assert.Equal(t, "/cb", loc.Path)
	assert.Equal(t, "frag", loc.Fragment)
	assert.True(t, strings.HasPrefix(loc.RawQuery, "park=abc&token="), loc.RawQuery)
	assert.Equal(t, []string{loc.Query().Get("token")}, loc.Query()["token"], "the stale token is replaced")
	assert.Equal(t, true, validate(t, srv, map[string]any{"token": loc.Query().Get("token")})["isValid"])

	_, page = b.get(got.URL)
	assert.Contains(t, page, "You have already verified this action.")
	assert.NotContains(t, page, `id="cancel"`)
}

// In DevMode the page sends the code when it is first shown, to a user
// with one method, and fills it in: Verify is the one click left.
func TestDevModeSendsTheCodeWhenThePageOpens(t *testing.T) {
	srv := start(t, emulator.Config{Rules: mustRules(t, trackRules), Users: []emulator.User{alice,
		{ID: "carol", Email: "carol@example.com", PhoneNumber: "+15550100", Methods: []string{emulator.MethodEmailOTP, emulator.MethodSMS}}},
		DevMode: true})
	got := track(t, srv, "alice", "changeEmail", map[string]any{"redirectUrl": "https://app.example/cb"})
	b := newBrowser(t)

	resp, page := b.get(got.URL)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	code, ok := srv.LastCode("alice")
	require.True(t, ok, "sent when the page opened")
	assert.Contains(t, page, `<strong id="dev-code">`+code+`</strong>`, "shown")
	assert.Contains(t, page, `autofocus value="`+code+`"`, "filled in")
	assert.Contains(t, page, `<button class="primary" id="verify" type="submit">Verify</button>`)
	assert.Contains(t, page, `<button class="secondary" id="cancel"`)
	assert.Len(t, srv.Outbox(), 1)

	_, page = b.get(got.URL)
	assert.Contains(t, page, `id="dev-code">`+code+`<`, "a reload shows the same code")
	assert.Len(t, srv.Outbox(), 1, "and sends no other")

	resp, _ = b.post(srv.URL+"/challenge/verify", url.Values{"token": {got.Token}, "csrf": {csrfOf(t, page)}, "code": {code}})
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	assert.Equal(t, "app.example", mustParse(t, resp.Header.Get("Location")).Host)

	t.Run("a user with several methods still chooses", func(t *testing.T) {
		got := track(t, srv, "carol", "changeEmail", nil)
		_, page := b.get(got.URL)
		assert.Contains(t, page, `value="SMS"`)
		assert.NotContains(t, page, `id="code"`)
		_, ok := srv.LastCode("carol")
		assert.False(t, ok)
	})
	t.Run("CompleteChallenge uses the code already sent", func(t *testing.T) {
		got := track(t, srv, "alice", "changeEmail", map[string]any{"redirectUrl": "https://app.example/cb"})
		n := len(srv.Outbox())
		_, err := srv.CompleteChallenge(ctx(t), got.URL)
		require.NoError(t, err)
		assert.Len(t, srv.Outbox(), n+1)
	})
}

// The page says what the user approves: the action code for people, and
// the track's custom attributes, escaped.
func TestPageShowsWhatIsApproved(t *testing.T) {
	srv := start(t, emulator.Config{Users: []emulator.User{alice}, ChallengeByDefault: true})
	for _, tc := range []struct {
		name   string
		given  string
		custom map[string]any
		expect []string
	}{
		{"a transfer", "transfer", map[string]any{"amount": 5000, "to": "bob", "payeeIban": "DE42 1001"},
			[]string{`id="what">Transfer</p>`, `<dt>Amount</dt><dd>5,000</dd><dt>Payee iban</dt><dd>DE42 1001</dd><dt>To</dt><dd>bob</dd>`}},
		{"camel case", "changeEmail", nil, []string{`id="what">Change email</p>`}},
		{"snake case, numbers and flags", "large_payment", map[string]any{"amount": -1234567.5, "urgent": true, "tags": []any{"a"}},
			[]string{`id="what">Large payment</p>`, `<dd>-1,234,567.5</dd>`, `<dt>Urgent</dt><dd>yes</dd>`, `<dd>[&#34;a&#34;]</dd>`}},
		{"markup is escaped", "signIn", map[string]any{"note": "<script>alert(1)</script>"},
			[]string{`id="what">Sign in</p>`, `<dd>&lt;script&gt;alert(1)&lt;/script&gt;</dd>`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := track(t, srv, "alice", tc.given, map[string]any{"custom": tc.custom})
			_, page := newBrowser(t).get(got.URL)
			for _, want := range tc.expect {
				assert.Contains(t, page, want)
			}
			assert.Contains(t, page, `<code id="action">`+tc.given+`</code>`, "the code itself, small, for developers")
			assert.NotContains(t, page, "<script>alert")
		})
	}
}

func mustParse(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	require.NoError(t, err)
	return u
}

func TestPageWithoutDevModeHidesTheCode(t *testing.T) {
	srv := start(t, emulator.Config{Rules: mustRules(t, trackRules), Users: []emulator.User{alice}})
	got := track(t, srv, "alice", "changeEmail", nil)
	b := newBrowser(t)
	_, page := b.get(got.URL)
	resp, _ := b.post(srv.URL+"/challenge/send", url.Values{"token": {got.Token}, "csrf": {csrfOf(t, page)}, "method": {"EMAIL_OTP"}})
	_, page = b.get(srv.URL + resp.Header.Get("Location"))
	code, _ := srv.LastCode("alice")
	assert.NotContains(t, page, "dev-code")
	assert.NotContains(t, page, code)
}

func TestCancelChallenge(t *testing.T) {
	srv := start(t, emulator.Config{Rules: mustRules(t, trackRules), Users: []emulator.User{alice}})
	got := track(t, srv, "alice", "changeEmail", map[string]any{"redirectUrl": "http://localhost:8080/stepup/callback?park=p1"})
	loc, err := srv.CancelChallenge(ctx(t), got.URL)
	require.NoError(t, err)
	assert.Equal(t, "localhost:8080", loc.Host)
	assert.Equal(t, "p1", loc.Query().Get("park"))
	v := validate(t, srv, map[string]any{"token": loc.Query().Get("token")})
	assert.Equal(t, false, v["isValid"])
	assert.Equal(t, "CHALLENGE_REQUIRED", v["state"], "cancel leaves the state as it is")
}

func TestFailChallenge(t *testing.T) {
	srv := start(t, emulator.Config{Rules: mustRules(t, trackRules), Users: []emulator.User{alice}})
	got := track(t, srv, "alice", "changeEmail", map[string]any{"redirectUrl": "https://app.example/cb"})
	loc, err := srv.FailChallenge(ctx(t), got.URL)
	require.NoError(t, err)
	v := validate(t, srv, map[string]any{"token": loc.Query().Get("token")})
	assert.Equal(t, false, v["isValid"])
	assert.Equal(t, "CHALLENGE_FAILED", v["state"])
	assert.Equal(t, "CHALLENGE_FAILED", srv.Tracked()[0].State)

	_, err = srv.CompleteChallenge(ctx(t), got.URL)
	assert.Error(t, err, "a failed challenge cannot be retried")
}

func TestPageWrongCodeShowsAttemptsLeft(t *testing.T) {
	srv := start(t, emulator.Config{Rules: mustRules(t, trackRules), Users: []emulator.User{alice}})
	got := track(t, srv, "alice", "changeEmail", nil)
	b := newBrowser(t)
	_, page := b.get(got.URL)
	form := url.Values{"token": {got.Token}, "csrf": {csrfOf(t, page)}}

	resp, page := b.post(srv.URL+"/challenge/verify", withCode(form, "123456"))
	assert.Equal(t, http.StatusUnprocessableEntity, resp.StatusCode)
	assert.Contains(t, page, "Send a code first.")

	form.Set("method", "EMAIL_OTP")
	b.post(srv.URL+"/challenge/send", form)
	resp, page = b.post(srv.URL+"/challenge/verify", withCode(form, "abc"))
	assert.Equal(t, http.StatusUnprocessableEntity, resp.StatusCode)
	assert.Contains(t, page, "2 attempts left.")
	assert.Equal(t, "CHALLENGE_REQUIRED", srv.Tracked()[0].State)

	b.post(srv.URL+"/challenge/send", form) // a new code does not reset the attempts
	_, page = b.post(srv.URL+"/challenge/verify", withCode(form, ""))
	assert.Contains(t, page, "1 attempt left.")
}

func withCode(form url.Values, code string) url.Values {
	f := url.Values{}
	for k, v := range form {
		f[k] = v
	}
	f.Set("code", code)
	return f
}

func TestPageCodeExpires(t *testing.T) {
	clk := newClock()
	srv := start(t, emulator.Config{Now: clk.Now, Rules: mustRules(t, trackRules), Users: []emulator.User{alice}})
	got := track(t, srv, "alice", "changeEmail", nil)
	b := newBrowser(t)
	_, page := b.get(got.URL)
	form := url.Values{"token": {got.Token}, "csrf": {csrfOf(t, page)}, "method": {"EMAIL_OTP"}}
	b.post(srv.URL+"/challenge/send", form)
	code, _ := srv.LastCode("alice")

	clk.Advance(5 * time.Minute)
	resp, page := b.post(srv.URL+"/challenge/verify", withCode(form, code))
	assert.Equal(t, http.StatusUnprocessableEntity, resp.StatusCode)
	assert.Contains(t, page, "The code has expired.")
	assert.Equal(t, "CHALLENGE_REQUIRED", srv.Tracked()[0].State)

	clk.Advance(5 * time.Minute)
	resp, page = b.get(got.URL)
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode, "the challenge link lives as long as its token")
	assert.Contains(t, page, "invalid or has expired")
}

func TestPageSMS(t *testing.T) {
	srv := start(t, emulator.Config{Rules: mustRules(t, trackRules), Users: []emulator.User{
		{ID: "sam", PhoneNumber: "+15550100", Methods: []string{"SMS"}},
	}})
	got := track(t, srv, "sam", "changeEmail", map[string]any{"redirectUrl": "https://app.example/cb"})
	loc, err := srv.CompleteChallenge(ctx(t), got.URL)
	require.NoError(t, err)
	assert.Equal(t, "SMS", validate(t, srv, map[string]any{"token": loc.Query().Get("token")})["verificationMethod"])
	out := srv.Outbox()
	require.Len(t, out, 1)
	assert.Equal(t, "sms", out[0].Channel)
	assert.Equal(t, "+15550100", out[0].To)
}

func TestPageEnrolsUnenrolledUsers(t *testing.T) {
	srv := start(t, emulator.Config{Rules: mustRules(t, trackRules)})
	got := track(t, srv, "newbie", "signup", map[string]any{"email": "newbie@example.com", "redirectUrl": "https://app.example/cb"})
	require.Equal(t, "CHALLENGE_REQUIRED", got.State)
	require.False(t, got.IsEnrolled)

	b := newBrowser(t)
	_, page := b.get(got.URL)
	assert.Contains(t, page, `id="email" name="email" type="email" value="newbie@example.com"`)
	resp, page := b.post(srv.URL+"/challenge/send", url.Values{"token": {got.Token}, "csrf": {csrfOf(t, page)}, "method": {"EMAIL_OTP"}, "email": {"nope"}})
	assert.Equal(t, http.StatusUnprocessableEntity, resp.StatusCode)
	assert.Contains(t, page, "Enter a valid email address.")

	loc, err := srv.CompleteChallenge(ctx(t), got.URL)
	require.NoError(t, err)
	assert.Equal(t, true, validate(t, srv, map[string]any{"token": loc.Query().Get("token")})["isValid"])
	_, user := call(t, srv, http.MethodGet, "/v1/users/newbie", nil)
	assert.Equal(t, true, user["isEnrolled"])
	assert.Equal(t, "newbie@example.com", user["email"])
	assert.Equal(t, "newbie@example.com", srv.Outbox()[0].To)

	again := track(t, srv, "newbie", "changeEmail", nil)
	assert.Equal(t, "CHALLENGE_REQUIRED", again.State, "now enrolled, the user is challenged")
	assert.True(t, again.IsEnrolled)
}

func TestPageEnrolmentFromAnAllowedAction(t *testing.T) {
	srv := start(t, emulator.Config{})
	got := track(t, srv, "bob", "login", nil)
	require.Equal(t, "ALLOW", got.State)
	require.False(t, got.IsEnrolled)
	loc, err := srv.CompleteChallenge(ctx(t), got.URL)
	require.NoError(t, err)
	assert.Equal(t, "/challenge/done", loc.Path)
	assert.Equal(t, "user@example.com", srv.Outbox()[0].To)
	assert.True(t, track(t, srv, "bob", "login", nil).IsEnrolled)
}

// As with Authsignal: an unenrolled user sent to the URL of an ALLOW action
// enrols on the pre-built UI, and the action then validates as a passed
// challenge, with the method just enrolled; leaving the page enrols nothing
// and validates nothing.
func TestPageEnrolmentFromAnAllowedActionValidatesAsAChallenge(t *testing.T) {
	srv := start(t, emulator.Config{Rules: mustRules(t, trackRules)})
	got := track(t, srv, "newbie", "changeEmail", map[string]any{"redirectUrl": "https://app.example/cb?park=p1", "idempotencyKey": "p1"})
	require.Equal(t, "ALLOW", got.State, "no factor to challenge with")
	require.False(t, got.IsEnrolled)
	before := validate(t, srv, map[string]any{"token": got.Token, "userId": "newbie", "action": "changeEmail"})
	assert.Equal(t, false, before["isValid"], "nothing verified yet")
	assert.Equal(t, "ALLOW", before["state"])

	loc, err := srv.CompleteChallenge(ctx(t), got.URL)
	require.NoError(t, err)
	assert.Equal(t, "https://app.example/cb", loc.Scheme+"://"+loc.Host+loc.Path, "back to the redirectUrl")
	assert.Equal(t, "p1", loc.Query().Get("park"))
	token := loc.Query().Get("token")
	require.NotEqual(t, got.Token, token, "a fresh token")
	v := validate(t, srv, map[string]any{"token": token, "userId": "newbie", "action": "changeEmail"})
	assert.Equal(t, true, v["isValid"])
	assert.Equal(t, "CHALLENGE_SUCCEEDED", v["state"])
	assert.Equal(t, "EMAIL_OTP", v["verificationMethod"])
	assert.Equal(t, "p1", v["idempotencyKey"])
	_, user := call(t, srv, http.MethodGet, "/v1/users/newbie", nil)
	assert.Equal(t, true, user["isEnrolled"])

	t.Run("left unfinished", func(t *testing.T) {
		got := track(t, srv, "later", "changeEmail", map[string]any{"redirectUrl": "https://app.example/cb"})
		require.Equal(t, "ALLOW", got.State)
		loc, err := srv.CancelChallenge(ctx(t), got.URL)
		require.NoError(t, err)
		v := validate(t, srv, map[string]any{"token": loc.Query().Get("token")})
		assert.Equal(t, false, v["isValid"])
		assert.Equal(t, "ALLOW", v["state"], "the state stays as it was")
		_, user := call(t, srv, http.MethodGet, "/v1/users/later", nil)
		assert.Equal(t, false, user["isEnrolled"])
	})
}

func TestPageDoneWithoutRedirect(t *testing.T) {
	srv := start(t, emulator.Config{Rules: mustRules(t, trackRules), Users: []emulator.User{alice}})
	got := track(t, srv, "alice", "changeEmail", nil)
	loc, err := srv.CompleteChallenge(ctx(t), got.URL)
	require.NoError(t, err)
	require.Equal(t, srv.URL+"/challenge/done", loc.Scheme+"://"+loc.Host+loc.Path)
	resp, page := newBrowser(t).get(loc.String())
	require.Equal(t, http.StatusOK, resp.StatusCode)
	token := loc.Query().Get("token")
	assert.Contains(t, page, `<code id="token">`+token+`</code>`)
	assert.Contains(t, page, `<code id="state">CHALLENGE_SUCCEEDED</code>`)
}

func TestPageNothingToVerify(t *testing.T) {
	srv := start(t, emulator.Config{Rules: mustRules(t, trackRules), Users: []emulator.User{alice}})
	for state, action := range map[string]string{"ALLOW": "somethingElse", "REVIEW_REQUIRED": "wire"} {
		t.Run(state, func(t *testing.T) {
			got := track(t, srv, "alice", action, map[string]any{"redirectUrl": "https://app.example/cb"})
			require.Equal(t, state, got.State)
			b := newBrowser(t)
			_, page := b.get(got.URL)
			assert.Contains(t, page, `id="continue"`)
			assert.NotContains(t, page, `name="method"`)
			form := url.Values{"token": {got.Token}, "csrf": {csrfOf(t, page)}, "method": {"EMAIL_OTP"}}
			resp, _ := b.post(srv.URL+"/challenge/send", form)
			assert.Equal(t, http.StatusOK, resp.StatusCode, "no code is sent")
			assert.Empty(t, srv.Outbox())
			resp, _ = b.post(srv.URL+"/challenge/cancel", form)
			assert.Equal(t, http.StatusSeeOther, resp.StatusCode)
		})
	}
}

func TestPageRefusesForgedForms(t *testing.T) {
	srv := start(t, emulator.Config{Rules: mustRules(t, trackRules), Users: []emulator.User{alice}})
	got := track(t, srv, "alice", "changeEmail", nil)
	other := track(t, srv, "alice", "changeEmail", nil)
	b := newBrowser(t)
	_, page := b.get(got.URL)
	csrf := csrfOf(t, page)
	_, otherPage := b.get(other.URL)

	tests := []struct {
		name   string
		csrf   []string
		header http.Header
	}{
		{"missing field", nil, nil},
		{"empty field", []string{""}, nil},
		{"wrong field", []string{csrf[:len(csrf)-2] + "AA"}, nil},
		{"another challenge's field", []string{csrfOf(t, otherPage)}, nil},
		{"sent from another site", []string{csrf}, http.Header{"Sec-Fetch-Site": {"cross-site"}}},
		{"sent from a sibling site", []string{csrf}, http.Header{"Sec-Fetch-Site": {"same-site"}}},
		{"another origin, no fetch metadata", []string{csrf}, http.Header{"Origin": {"https://evil.example"}}},
	}
	for _, tt := range tests {
		for _, path := range []string{"/challenge/send", "/challenge/verify", "/challenge/cancel"} {
			t.Run(tt.name+" "+path, func(t *testing.T) {
				form := url.Values{"token": {got.Token}, "method": {"EMAIL_OTP"}, "code": {"000000"}}
				if tt.csrf != nil {
					form["csrf"] = tt.csrf
				}
				resp, _ := b.postWith(srv.URL+path, form, tt.header)
				assert.Equal(t, http.StatusForbidden, resp.StatusCode)
			})
		}
	}
	assert.Empty(t, srv.Outbox())
	assert.Equal(t, "CHALLENGE_REQUIRED", srv.Tracked()[0].State)

	resp, _ := b.postWith(srv.URL+"/challenge/send", url.Values{"token": {got.Token}, "csrf": {csrf}, "method": {"EMAIL_OTP"}},
		http.Header{"Sec-Fetch-Site": {"same-origin"}, "Origin": {"null"}})
	assert.Equal(t, http.StatusSeeOther, resp.StatusCode, "the genuine form works")
}

func TestPageEscapesEverything(t *testing.T) {
	const evil = `<script>alert(1)</script>`
	srv := start(t, emulator.Config{Rules: mustRules(t, `actions: {x: {default: CHALLENGE_REQUIRED, enrol: true}}`)})
	got := track(t, srv, evil, "x", map[string]any{
		"email":       `"><script>alert(2)</script>@example.com`,
		"redirectUrl": "https://app.example/cb?next=" + url.QueryEscape(evil),
	})
	b := newBrowser(t)
	for _, target := range []string{
		got.URL,
		srv.URL + "/challenge?token=" + url.QueryEscape(evil),
		srv.URL + "/challenge?token=" + url.QueryEscape(got.Token) + "&redirect=" + url.QueryEscape(evil),
		srv.URL + "/challenge/done?token=" + url.QueryEscape(got.Token),
		srv.URL + "/challenge/" + url.PathEscape(evil),
	} {
		resp, page := b.get(target)
		assert.NotContains(t, page, "<script", target)
		assert.Equal(t, "no-store", resp.Header.Get("Cache-Control"))
		assert.Equal(t, "no-referrer", resp.Header.Get("Referrer-Policy"))
		assert.Equal(t, "text/html; charset=utf-8", resp.Header.Get("Content-Type"))
		csp := resp.Header.Get("Content-Security-Policy")
		assert.Contains(t, csp, "default-src 'none'")
		assert.NotContains(t, csp, "script-src")
		assert.Contains(t, csp, "frame-ancestors 'none'")
	}
	_, page := b.get(got.URL)
	assert.Contains(t, page, "&lt;script&gt;alert(1)&lt;/script&gt;")
	resp, _ := b.get(got.URL)
	assert.Contains(t, resp.Header.Get("Content-Security-Policy"), "form-action 'self' https://app.example;")
}

func TestPageMethodsAndRoutes(t *testing.T) {
	srv := start(t, emulator.Config{})
	b := newBrowser(t)
	resp, _ := b.get(srv.URL + "/challenge/verify")
	assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
	resp, _ = b.post(srv.URL+"/challenge", url.Values{})
	assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
	resp, _ = b.get(srv.URL + "/challenge/nope")
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)
	resp, _ = b.get(srv.URL + "/challenge")
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode, "no token")
	assert.Equal(t, 0, srv.Requests(), "the page is not the API")
	resp, _ = b.get(srv.URL + "/favicon.ico")
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.Equal(t, 0, srv.Requests(), "only /v1 paths are counted")
}
