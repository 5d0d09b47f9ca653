// Package quicktest drives one step-up through a quick start of the README:
// the program's handler against an Authsignal emulator in development mode,
// a browser's cookie jar, the challenge page completed without a browser,
// and the callback's replay, once.
package quicktest

import (
	"bytes"
	"context"
	"html"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup/authsignal/emulator"
)

// NewApp is the shape of every quick start's newApp: the handler of the
// program listening on addr, configured from getenv.
type NewApp func(addr string, getenv func(string) string) (http.Handler, error)

// Result is what a run saw.
type Result struct {
	Answer string // the body of the callback's answer: the replayed handler's
	Token  string // the token the challenge page handed back
	Log    string // what the program wrote to the standard logger meanwhile
}

// logMu serialises the tests that take over the standard logger.
var logMu sync.Mutex

// Run starts an emulator in development mode (cmd/authsignal-emulator's
// default), builds the app with env plus the emulator's AUTHSIGNAL_API_URL,
// submits the form of the app's home page as a browser would, completes the
// challenge it is sent to, lands on the callback and checks that the
// callback's URL cannot run the request a second time.
func Run(t *testing.T, newApp NewApp, env map[string]string) Result {
	t.Helper()
	logMu.Lock()
	defer logMu.Unlock()
	var logs syncBuffer
	out, flags := log.Writer(), log.Flags()
	log.SetOutput(&logs)
	defer func() { log.SetOutput(out); log.SetFlags(flags) }()

	emu, err := emulator.New(emulator.Config{AutoEnroll: true, ChallengeByDefault: true})
	require.NoError(t, err)
	defer emu.Close()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	getenv := func(k string) string {
		if k == "AUTHSIGNAL_API_URL" {
			return emu.APIURL()
		}
		return env[k]
	}
	h, err := newApp(addr, getenv)
	if err != nil {
		ln.Close()
	}
	require.NoError(t, err)
	srv := &httptest.Server{Listener: ln, Config: &http.Server{Handler: h}}
	srv.Start()
	defer srv.Close()

	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	browser := &http.Client{Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	status, page, _ := navigate(t, browser, http.MethodGet, srv.URL+"/", nil)
	require.Equal(t, http.StatusOK, status, page)
	action, fields := form(t, page)

	status, body, loc := navigate(t, browser, http.MethodPost, srv.URL+action, fields)
	require.Equal(t, http.StatusSeeOther, status, "the protected route is challenged: %s", body)
	require.True(t, strings.HasPrefix(loc, emu.URL+"/challenge?"), "sent to the emulator's page: %s", loc)

	_, page, _ = navigate(t, browser, http.MethodGet, srv.URL+"/", nil)
	assert.Contains(t, page, "Transfers made: 0<", "the challenged transfer waits, parked")

	back, err := emu.CompleteChallenge(ctx, loc)
	require.NoError(t, err)
	require.Equal(t, srv.URL+"/stepup/callback", back.Scheme+"://"+back.Host+back.Path, "the page sends the browser back to the callback")
	token := back.Query().Get("token")
	require.NotEmpty(t, token)

	status, answer, _ := navigate(t, browser, http.MethodGet, back.String(), nil)
	require.Equal(t, http.StatusOK, status, answer)

	navigate(t, browser, http.MethodGet, back.String(), nil) // a refresh of the callback
	status, page, _ = navigate(t, browser, http.MethodGet, srv.URL+"/", nil)
	require.Equal(t, http.StatusOK, status, page)
	assert.Contains(t, page, "Transfers made: 1<", "the transfer ran once: not before the challenge, once after, not on a refresh")

	tracked := emu.Tracked()
	require.Len(t, tracked, 1, "one action tracked")
	assert.Equal(t, emulator.StateChallengeSucceeded, tracked[0].State)
	assert.NotContains(t, logs.String(), token, "the request log never holds the token")
	return Result{Answer: answer, Token: token, Log: logs.String()}
}

// navigate sends a browser navigation and returns the status, body and
// Location.
func navigate(t *testing.T, c *http.Client, method, target string, form url.Values) (int, string, string) {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, target, body)
	require.NoError(t, err)
	req.Header.Set("Accept", "text/html")
	req.Header.Set("Sec-Fetch-Mode", "navigate")
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := c.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b), resp.Header.Get("Location")
}

var (
	formRE  = regexp.MustCompile(`<form method="post" action="([^"]+)"`)
	inputRE = regexp.MustCompile(`<input (?:type="hidden" )?name="([^"]+)" value="([^"]*)"`)
)

// form reads the home page's form: where it posts and its fields.
func form(t *testing.T, page string) (string, url.Values) {
	t.Helper()
	m := formRE.FindStringSubmatch(page)
	require.NotNil(t, m, "the home page has a form: %s", page)
	fields := url.Values{}
	for _, in := range inputRE.FindAllStringSubmatch(page, -1) {
		fields.Add(html.UnescapeString(in[1]), html.UnescapeString(in[2]))
	}
	require.NotEmpty(t, fields, "the form has fields: %s", page)
	return m[1], fields
}

// syncBuffer is an io.Writer safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
