package emulator_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup/authsignal/emulator"
)

const appOrigin = "http://127.0.0.1:5173"

var (
	nonceRE   = regexp.MustCompile(`<script nonce="([^"]+)">`)
	originsRE = regexp.MustCompile(`var origins = (\[[^\]]*\]);`)
	postRE    = regexp.MustCompile(`post\(("(?:[^"\\]|\\.)*")\);`)
)

// script reads what the page's popup script does: the origins it posts to
// and the JSON string messages it posts, in order.
type script struct {
	nonce    string
	origins  []string
	messages []map[string]any
}

func scriptOf(t *testing.T, page string) (script, bool) {
	t.Helper()
	m := nonceRE.FindStringSubmatch(page)
	if m == nil {
		return script{}, false
	}
	s := script{nonce: m[1]}
	o := originsRE.FindStringSubmatch(page)
	require.NotNil(t, o, "origins in %s", page)
	require.NoError(t, json.Unmarshal([]byte(o[1]), &s.origins))
	for _, p := range postRE.FindAllStringSubmatch(page, -1) {
		var text string
		require.NoError(t, json.Unmarshal([]byte(p[1]), &text), "a JS string literal: %s", p[1])
		var msg map[string]any
		require.NoError(t, json.Unmarshal([]byte(text), &msg), "a JSON string: %s", text)
		s.messages = append(s.messages, msg)
	}
	return s, true
}

func popupURL(challengeURL string) string { return challengeURL + "&mode=popup" } // as the SDK does

func TestPopupModeHandsTheTokenToTheSDK(t *testing.T) {
	srv := start(t, emulator.Config{Rules: mustRules(t, trackRules), Users: []emulator.User{alice}, AppOrigins: []string{appOrigin}})
	got := track(t, srv, "alice", "changeEmail", map[string]any{"redirectUrl": "https://app.example/stepup/callback?park=p1"})
	b := newBrowser(t)

	resp, page := b.get(popupURL(got.URL))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	s, ok := scriptOf(t, page)
	require.True(t, ok, "popup mode runs a script")
	csp := resp.Header.Get("Content-Security-Policy")
	assert.Contains(t, csp, "script-src 'nonce-"+s.nonce+"';", "the script runs by its nonce only")
	assert.Contains(t, csp, "frame-ancestors "+appOrigin+";", "the application may frame the page")
	assert.Empty(t, resp.Header.Get("X-Frame-Options"), "X-Frame-Options cannot name an origin")
	assert.Equal(t, []string{appOrigin, "https://app.example"}, s.origins, "the configured origins and the redirectUrl's")
	assert.Equal(t, []map[string]any{{"event": "AUTHSIGNAL_READY"}}, s.messages)
	assert.Contains(t, page, `<body class="popup">`)
	assert.Contains(t, page, `<input type="hidden" name="mode" value="popup">`)

	form := url.Values{"token": {got.Token}, "csrf": {csrfOf(t, page)}, "method": {"EMAIL_OTP"}, "mode": {"popup"}}
	resp, _ = b.post(srv.URL+"/challenge/send", form)
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	assert.Equal(t, "/challenge?token="+url.QueryEscape(got.Token)+"&mode=popup", resp.Header.Get("Location"), "the mode stays")
	_, page = b.get(srv.URL + resp.Header.Get("Location"))
	require.Contains(t, page, `id="code"`)
	code, _ := srv.LastCode("alice")

	resp, _ = b.post(srv.URL+"/challenge/verify", withCode(form, code))
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	loc, err := url.Parse(resp.Header.Get("Location"))
	require.NoError(t, err)
	assert.Equal(t, "/challenge/done", loc.Path, "no redirect to the redirectUrl in popup mode")
	assert.Equal(t, "popup", loc.Query().Get("mode"))

	resp, page = b.get(srv.URL + loc.String())
	require.Equal(t, http.StatusOK, resp.StatusCode)
	s, ok = scriptOf(t, page)
	require.True(t, ok)
	require.Len(t, s.messages, 2)
	assert.Equal(t, "AUTHSIGNAL_READY", s.messages[0]["event"])
	assert.Equal(t, "AUTHSIGNAL_CLOSE_POPUP", s.messages[1]["event"])
	token, _ := s.messages[1]["token"].(string)
	assert.Equal(t, loc.Query().Get("token"), token)
	assert.NotEqual(t, got.Token, token, "a fresh token, not the one in the challenge URL")
	assert.NotContains(t, page, `id="token"`, "the token is handed over, not shown")
	v := validate(t, srv, map[string]any{"token": token, "userId": "alice", "action": "changeEmail"})
	assert.Equal(t, true, v["isValid"])
	assert.Equal(t, "CHALLENGE_SUCCEEDED", v["state"])
}

func TestPopupModeEndings(t *testing.T) {
	srv := start(t, emulator.Config{Rules: mustRules(t, trackRules), Users: []emulator.User{alice}, AppOrigins: []string{appOrigin}})

	t.Run("cancel closes without a token", func(t *testing.T) {
		got := track(t, srv, "alice", "changeEmail", nil)
		b := newBrowser(t)
		_, page := b.get(popupURL(got.URL))
		resp, _ := b.post(srv.URL+"/challenge/cancel", url.Values{"token": {got.Token}, "csrf": {csrfOf(t, page)}, "mode": {"popup"}})
		require.Equal(t, http.StatusSeeOther, resp.StatusCode)
		loc := resp.Header.Get("Location")
		assert.True(t, strings.HasPrefix(loc, "/challenge/left?"), loc)
		_, page = b.get(srv.URL + loc)
		s, ok := scriptOf(t, page)
		require.True(t, ok)
		assert.Equal(t, []string{appOrigin}, s.origins, "no redirectUrl: the configured origins only")
		require.Len(t, s.messages, 2)
		assert.Equal(t, map[string]any{"event": "AUTHSIGNAL_CLOSE_POPUP"}, s.messages[1], "the SDK resolves {token: undefined}")
		assert.Contains(t, page, "nothing was approved")
		assert.Equal(t, "CHALLENGE_REQUIRED", validate(t, srv, map[string]any{"token": got.Token})["state"])
	})

	t.Run("a failed challenge hands over a token that validates to failure", func(t *testing.T) {
		got := track(t, srv, "alice", "changeEmail", nil)
		b := newBrowser(t)
		_, page := b.get(popupURL(got.URL))
		form := url.Values{"token": {got.Token}, "csrf": {csrfOf(t, page)}, "method": {"EMAIL_OTP"}, "mode": {"popup"}}
		b.post(srv.URL+"/challenge/send", form)
		var resp *http.Response
		for range 3 {
			resp, _ = b.post(srv.URL+"/challenge/verify", withCode(form, "x"))
		}
		require.Equal(t, http.StatusSeeOther, resp.StatusCode)
		_, page = b.get(srv.URL + resp.Header.Get("Location"))
		s, ok := scriptOf(t, page)
		require.True(t, ok)
		require.Len(t, s.messages, 2)
		assert.Equal(t, "AUTHSIGNAL_CLOSE_POPUP", s.messages[1]["event"])
		v := validate(t, srv, map[string]any{"token": s.messages[1]["token"]})
		assert.Equal(t, false, v["isValid"])
		assert.Equal(t, "CHALLENGE_FAILED", v["state"])
	})

	t.Run("nothing to verify: continue hands over a token", func(t *testing.T) {
		got := track(t, srv, "alice", "somethingElse", nil)
		require.Equal(t, "ALLOW", got.State)
		b := newBrowser(t)
		_, page := b.get(popupURL(got.URL))
		resp, _ := b.post(srv.URL+"/challenge/cancel", url.Values{"token": {got.Token}, "csrf": {csrfOf(t, page)}, "mode": {"popup"}})
		loc := resp.Header.Get("Location")
		assert.True(t, strings.HasPrefix(loc, "/challenge/done?"), loc)
		_, page = b.get(srv.URL + loc)
		s, _ := scriptOf(t, page)
		require.Len(t, s.messages, 2)
		assert.Equal(t, "ALLOW", validate(t, srv, map[string]any{"token": s.messages[1]["token"]})["state"])
	})

	t.Run("window mode behaves the same", func(t *testing.T) {
		got := track(t, srv, "alice", "changeEmail", nil)
		resp, page := newBrowser(t).get(got.URL + "&mode=window")
		_, ok := scriptOf(t, page)
		assert.True(t, ok)
		assert.Contains(t, resp.Header.Get("Content-Security-Policy"), "script-src 'nonce-")
	})
}

func TestPopupModeWithoutAllowedOrigins(t *testing.T) {
	srv := start(t, emulator.Config{Rules: mustRules(t, trackRules), Users: []emulator.User{alice}})

	t.Run("the page cannot be framed", func(t *testing.T) {
		got := track(t, srv, "alice", "changeEmail", map[string]any{"redirectUrl": "https://app.example/cb"})
		resp, page := newBrowser(t).get(popupURL(got.URL))
		assert.Contains(t, resp.Header.Get("Content-Security-Policy"), "frame-ancestors 'none'")
		assert.Equal(t, "DENY", resp.Header.Get("X-Frame-Options"))
		s, ok := scriptOf(t, page)
		require.True(t, ok, "window mode still works, for the redirectUrl's origin")
		assert.Equal(t, []string{"https://app.example"}, s.origins)
	})

	t.Run("nobody to post to: no script, the token is shown", func(t *testing.T) {
		got := track(t, srv, "alice", "changeEmail", nil)
		b := newBrowser(t)
		resp, page := b.get(popupURL(got.URL))
		assert.NotContains(t, resp.Header.Get("Content-Security-Policy"), "script-src")
		assert.NotContains(t, page, "<script")
		loc, err := srv.CompleteChallenge(ctx(t), popupURL(got.URL))
		require.NoError(t, err)
		assert.Equal(t, "/challenge/done", loc.Path)
		_, page = b.get(loc.String())
		assert.NotContains(t, page, "<script")
		assert.Contains(t, page, `<code id="token">`+loc.Query().Get("token")+`</code>`)
	})
}

func TestRedirectModeRunsNoScript(t *testing.T) {
	srv := start(t, emulator.Config{Rules: mustRules(t, trackRules), Users: []emulator.User{alice}, AppOrigins: []string{appOrigin}})
	for _, mode := range []string{"", "&mode=redirect", "&mode=POPUP", "&mode=%3Cscript%3E"} {
		got := track(t, srv, "alice", "changeEmail", map[string]any{"redirectUrl": "https://app.example/cb"})
		resp, page := newBrowser(t).get(got.URL + mode)
		assert.NotContains(t, page, "<script", mode)
		assert.NotContains(t, page, `name="mode"`, mode)
		assert.NotContains(t, resp.Header.Get("Content-Security-Policy"), "script-src", mode)
		loc, err := srv.CompleteChallenge(ctx(t), got.URL+mode)
		require.NoError(t, err)
		assert.Equal(t, "app.example", loc.Host, "redirect mode goes back to the redirectUrl")
	}
}

func TestPageWorksWithoutCookies(t *testing.T) {
	srv := start(t, emulator.Config{Rules: mustRules(t, trackRules), Users: []emulator.User{alice}, AppOrigins: []string{appOrigin}})
	got := track(t, srv, "alice", "changeEmail", nil)
	// A cross-site iframe gets no cookies: a client without a jar, sending
	// the fetch metadata a browser sends for the page's own forms.
	noJar := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	b := &browser{t: t, c: noJar}
	resp, page := b.get(popupURL(got.URL))
	assert.Empty(t, resp.Header.Values("Set-Cookie"), "the page sets no cookie")
	sameOrigin := http.Header{"Sec-Fetch-Site": {"same-origin"}, "Origin": {"null"}}
	form := url.Values{"token": {got.Token}, "csrf": {csrfOf(t, page)}, "method": {"EMAIL_OTP"}, "mode": {"popup"}}
	resp, _ = b.postWith(srv.URL+"/challenge/send", form, sameOrigin)
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	code, _ := srv.LastCode("alice")
	resp, _ = b.postWith(srv.URL+"/challenge/verify", withCode(form, code), sameOrigin)
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	assert.Equal(t, "CHALLENGE_SUCCEEDED", srv.Tracked()[0].State)
}

func TestAppOrigins(t *testing.T) {
	tests := []struct {
		name   string
		given  []string
		expect []string
		err    bool
	}{
		{name: "none", given: nil, expect: nil},
		{name: "origins, a trailing slash dropped, duplicates once", given: []string{"http://127.0.0.1:8080/", "https://app.example", "https://app.example"},
			expect: []string{"http://127.0.0.1:8080", "https://app.example"}},
		{name: "a wildcard", given: []string{"*"}, err: true},
		{name: "a wildcard host", given: []string{"https://*.example"}, err: true},
		{name: "a path", given: []string{"https://app.example/app"}, err: true},
		{name: "a query", given: []string{"https://app.example?x=1"}, err: true},
		{name: "no scheme", given: []string{"app.example"}, err: true},
		{name: "another scheme", given: []string{"javascript://app.example"}, err: true},
		{name: "user info", given: []string{"https://u@app.example"}, err: true},
		{name: "the CSP keyword none", given: []string{"'none'"}, err: true},
		{name: "two origins in one", given: []string{"https://a.example https://b.example"}, err: true},
		{name: "empty", given: []string{""}, err: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, err := emulator.NewHandler(emulator.Config{AppOrigins: tt.given})
			if tt.err {
				require.Error(t, err)
				assert.Contains(t, err.Error(), "AppOrigins[0]")
				return
			}
			require.NoError(t, err)
			require.NotNil(t, srv)
			s, err := emulator.New(emulator.Config{AppOrigins: tt.given, Rules: mustRules(t, trackRules), Users: []emulator.User{alice}})
			require.NoError(t, err)
			t.Cleanup(s.Close)
			got := track(t, s, "alice", "changeEmail", nil)
			resp, page := newBrowser(t).get(popupURL(got.URL))
			if tt.expect == nil {
				assert.Contains(t, resp.Header.Get("Content-Security-Policy"), "frame-ancestors 'none'")
				return
			}
			assert.Contains(t, resp.Header.Get("Content-Security-Policy"), "frame-ancestors "+strings.Join(tt.expect, " ")+";")
			sc, _ := scriptOf(t, page)
			assert.Equal(t, tt.expect, sc.origins)
		})
	}
}

// FuzzPage sends arbitrary queries and forms to the hosted page: it never
// fails with a 500, and it runs a script only under a nonce its CSP names.
func FuzzPage(f *testing.F) {
	srv := start(f, emulator.Config{Rules: mustRules(f, trackRules), Users: []emulator.User{alice}, AppOrigins: []string{appOrigin}})
	h := srv.Emulator
	got := track(f, srv, "alice", "changeEmail", map[string]any{"redirectUrl": "https://app.example/cb"})
	token := url.QueryEscape(got.Token)
	f.Add("/challenge", "token="+token+"&mode=popup", "")
	f.Add("/challenge/done", "token="+token+"&mode=window", "")
	f.Add("/challenge/left", "token="+token+"&mode=popup&mode=redirect", "")
	f.Add("/challenge/cancel", "", "token="+token+"&mode=popup&csrf=x")
	f.Add("/challenge", "token="+token+"&mode=%22%3E%3Cscript%3E", "")
	f.Fuzz(func(t *testing.T, path, query, form string) {
		method := http.MethodGet
		var body *strings.Reader
		if form != "" {
			method, body = http.MethodPost, strings.NewReader(form)
		} else {
			body = strings.NewReader("")
		}
		req, err := http.NewRequest(method, "http://emulator.test/", body)
		require.NoError(t, err)
		req.URL.Path, req.URL.RawQuery = "/challenge"+strings.TrimPrefix(path, "/challenge"), query
		if form != "" {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		assert.Less(t, rec.Code, 500)
		csp := rec.Header().Get("Content-Security-Policy")
		page := rec.Body.String()
		scripts := regexp.MustCompile(`<script[^>]*>`).FindAllString(page, -1)
		if !strings.Contains(csp, "script-src") {
			assert.Empty(t, scripts, "no script without a nonce in the CSP")
			return
		}
		m := nonceRE.FindStringSubmatch(page)
		require.NotNil(t, m)
		assert.Equal(t, []string{`<script nonce="` + m[1] + `">`}, scripts)
		assert.Contains(t, csp, "script-src 'nonce-"+m[1]+"';")
	})
}

func TestDriverKeepsThePopupMode(t *testing.T) {
	srv := start(t, emulator.Config{Rules: mustRules(t, trackRules), Users: []emulator.User{alice}, AppOrigins: []string{appOrigin}})
	got := track(t, srv, "alice", "changeEmail", map[string]any{"redirectUrl": "https://app.example/cb"})
	loc, err := srv.CompleteChallenge(ctx(t), popupURL(got.URL))
	require.NoError(t, err)
	assert.Equal(t, "/challenge/done", loc.Path, "popup mode: no redirect to the redirectUrl")
	assert.Equal(t, "popup", loc.Query().Get("mode"))
	assert.Equal(t, true, validate(t, srv, map[string]any{"token": loc.Query().Get("token")})["isValid"])

	other := track(t, srv, "alice", "changeEmail", map[string]any{"redirectUrl": "https://app.example/cb"})
	loc, err = srv.CancelChallenge(ctx(t), popupURL(other.URL))
	require.NoError(t, err)
	assert.Equal(t, "/challenge/left", loc.Path, "cancel in popup mode hands over no token")
}
