package stepupecho_test

// The callback's replay through echo middleware in front of the guard:
// HTTPSRedirect behind a TLS-terminating proxy, and CSRF refusing the
// replay (SECURITY.md threats 4 and 11).

import (
	"errors"
	"net/http"
	"net/url"
	"testing"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup"
	stepupecho "github.com/stepupkit/stepup/adapters/stepupecho"
	"github.com/stepupkit/stepup/stepuptest"
)

func TestEchoReplayBehindATLSProxy(t *testing.T) {
	app := echoAdapter
	app.Mount = func(t testing.TB, g *stepup.Guard, h stepuptest.Handlers) http.Handler {
		e := echo.New()
		e.Pre(middleware.HTTPSRedirect())
		e.Pre(stepupecho.PreserveBody(g))
		e.Use(stepupecho.Middleware(g))
		mount(e, g, h)
		return e
	}
	stepuptest.RunBehindTLSProxy(t, app)
}

func TestEchoCSRFRefusingTheReplaySpendsNothing(t *testing.T) {
	env := stepuptest.NewEnv(t, csrfApp, stepuptest.Options{})
	b := env.NewBrowser()
	b.Login("alice")
	m := csrfField.FindStringSubmatch(b.Get("/form").Body)
	require.Len(t, m, 2)
	body := "_csrf=" + m[1] + "&amount=5000&to=bob"
	cb := b.Complete(b.Challenge(b.Do(http.MethodPost, "/transfer", stepuptest.Form, body, nil)))

	// The CSRF cookie changed by the time the browser is back (it expired
	// and was issued again): echo's CSRF middleware refuses the replay
	// before the guard. setCSRF sets the cookie for the whole site; echo
	// also sets it, without a path, on the callback's own answer.
	app, err := url.Parse(env.Server.URL)
	require.NoError(t, err)
	setCSRF := func(value string) {
		b.Jar.SetCookies(app, []*http.Cookie{{Name: "_csrf", Value: value, Path: "/"},
			{Name: "_csrf", Path: "/stepup", MaxAge: -1}})
	}
	var issued string
	for _, c := range b.Jar.Cookies(app) {
		if c.Name == "_csrf" {
			issued = c.Value
		}
	}
	require.NotEmpty(t, issued)
	setCSRF("reissued")
	resp := b.Get(cb)
	assert.Equal(t, http.StatusInternalServerError, resp.StatusCode, resp.Body)
	assert.Empty(t, env.Ledger.Runs("transfer"))
	notReached := false
	for _, ev := range env.Events.All() {
		notReached = notReached || (ev.Type == stepup.EventRefuse && errors.Is(ev.Err, stepup.ErrReplayNotReached))
	}
	assert.True(t, notReached, "the guard reports that the replay did not reach the route")

	// Nothing was spent: with the cookie back the same callback runs it.
	setCSRF(issued)
	resp = b.Get(cb)
	require.Equal(t, http.StatusOK, resp.StatusCode, resp.Body)
	runs := env.Ledger.Runs("transfer")
	require.Len(t, runs, 1)
	assert.Equal(t, body, string(runs[0].Body))
	assert.Equal(t, resp.Body, b.Get(cb).Body, "a refresh shows the kept outcome")
	assert.Len(t, env.Ledger.Runs("transfer"), 1)
}
