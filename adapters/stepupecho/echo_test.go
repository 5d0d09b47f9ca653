package stepupecho_test

import (
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup"
	stepupecho "github.com/stepupkit/stepup/adapters/stepupecho"
	"github.com/stepupkit/stepup/stepuptest"
)

// mount registers the conformance application on e.
func mount(e *echo.Echo, g *stepup.Guard, h stepuptest.Handlers) {
	w := echo.WrapHandler
	e.POST("/login", w(h.Login))
	e.POST("/logout", w(h.Logout))
	e.POST("/signin", w(h.SignIn))
	e.POST("/transfer", w(h.Transfer))
	e.POST("/api/transfer", w(h.APITrans))
	e.PUT("/profile", w(h.Profile))
	e.DELETE("/items/:id", w(h.DeleteItem))
	e.GET("/report", w(h.Report))
	e.GET("/admin", w(h.Admin))
	e.POST("/block", w(h.Block))
	e.POST("/review", w(h.Review))
	e.Any("/open", w(h.Open))
	e.GET(stepuptest.CallbackPath, stepupecho.Callback(g, e))
}

var echoAdapter = stepuptest.Adapter{
	Name:  "echo",
	Param: func(name string) string { return ":" + name },
	Mount: func(t testing.TB, g *stepup.Guard, h stepuptest.Handlers) http.Handler {
		e := echo.New()
		e.Pre(stepupecho.PreserveBody(g))
		e.Use(stepupecho.Middleware(g))
		mount(e, g, h)
		require.NoError(t, stepupecho.CheckRoutes(g, e))
		return e
	},
}

func TestConformanceEcho(t *testing.T) {
	stepuptest.Run(t, echoAdapter)
}

var csrfField = regexp.MustCompile(`csrf=([A-Za-z0-9_-]+)`)

// csrfAdapter puts echo's CSRF middleware in front of the guard, reading
// the token from a form field, as a server-rendered application does; with
// preserve, PreserveBody keeps the exact bytes for the guard.
func csrfAdapter(preserve bool) stepuptest.Adapter {
	return stepuptest.Adapter{
		Name:  "echo+csrf",
		Param: echoAdapter.Param,
		Mount: func(t testing.TB, g *stepup.Guard, h stepuptest.Handlers) http.Handler {
			e := echo.New()
			if preserve {
				e.Pre(stepupecho.PreserveBody(g))
			}
			e.Use(middleware.CSRFWithConfig(middleware.CSRFConfig{
				TokenLookup: "form:_csrf",
				Skipper:     func(c echo.Context) bool { return c.Path() == "/login" },
			}))
			e.Use(stepupecho.Middleware(g))
			mount(e, g, h)
			e.GET("/form", func(c echo.Context) error { return c.String(http.StatusOK, "csrf="+c.Get("csrf").(string)) })
			return e
		},
	}
}

var csrfApp = csrfAdapter(true)

func TestEchoCSRFInFront(t *testing.T) {
	t.Run("the replay passes CSRF with the parked form token and live cookie", func(t *testing.T) {
		env := stepuptest.NewEnv(t, csrfApp, stepuptest.Options{})
		b := env.NewBrowser()
		b.Login("alice")
		m := csrfField.FindStringSubmatch(b.Get("/form").Body)
		require.Len(t, m, 2)
		body := "_csrf=" + m[1] + "&amount=5000&to=bob"
		resp := b.Get(b.Complete(b.Challenge(b.Do(http.MethodPost, "/transfer", stepuptest.Form, body, nil))))
		require.Equal(t, http.StatusOK, resp.StatusCode, resp.Body)
		runs := env.Ledger.Runs("transfer")
		require.Len(t, runs, 1)
		assert.Equal(t, body, string(runs[0].Body), "exact bytes, though CSRF read the form first")
	})
	t.Run("a cross-site POST is refused before it is parked or tracked", func(t *testing.T) {
		env := stepuptest.NewEnv(t, csrfApp, stepuptest.Options{})
		b := env.NewBrowser()
		b.Login("alice")
		b.Get("/form")
		resp := b.Do(http.MethodPost, "/transfer", stepuptest.Form, "amount=5000&to=mallory", http.Header{
			"Sec-Fetch-Site": {"cross-site"}, "Origin": {"https://evil.example"}})
		assert.Equal(t, http.StatusForbidden, resp.StatusCode)
		resp = b.Do(http.MethodPost, "/transfer", stepuptest.Form, "amount=5000&to=mallory&_csrf=forged", nil)
		assert.Equal(t, http.StatusForbidden, resp.StatusCode)
		assert.Empty(t, env.Emulator.Tracked())
		assert.Empty(t, env.Ledger.Runs("transfer"))
	})
	t.Run("without PreserveBody the guard refuses instead of parking an empty body", func(t *testing.T) {
		noPreserve := csrfAdapter(false)
		env := stepuptest.NewEnv(t, noPreserve, stepuptest.Options{})
		b := env.NewBrowser()
		b.Login("alice")
		m := csrfField.FindStringSubmatch(b.Get("/form").Body)
		require.Len(t, m, 2)
		resp := b.Do(http.MethodPost, "/transfer", stepuptest.Form, "_csrf="+m[1]+"&amount=5000", nil)
		assert.Equal(t, http.StatusInternalServerError, resp.StatusCode)
		assert.Empty(t, env.Emulator.Tracked())
	})
}

func TestEchoErrorsSpeakEcho(t *testing.T) {
	var got error
	app := echoAdapter
	app.Mount = func(t testing.TB, g *stepup.Guard, h stepuptest.Handlers) http.Handler {
		e := echo.New()
		e.Use(stepupecho.MiddlewareWithConfig(g, stepupecho.Config{
			ErrorHandler: func(c echo.Context, err error) error {
				got = err
				return err
			},
		}))
		mount(e, g, h)
		return e
	}
	env := stepuptest.NewEnv(t, app, stepuptest.Options{})
	b := env.NewBrowser()
	b.Login("alice")
	resp := b.Do(http.MethodPost, "/block", stepuptest.Form, "x=1", nil)
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)
	var he *echo.HTTPError
	require.True(t, errors.As(got, &he))
	assert.Equal(t, http.StatusForbidden, he.Code)
	assert.True(t, errors.Is(he.Internal, stepup.ErrBlocked))
	assert.Contains(t, resp.Body, "blocked")
}

func TestEchoSkipperAndRequire(t *testing.T) {
	app := echoAdapter
	app.Mount = func(t testing.TB, g *stepup.Guard, h stepuptest.Handlers) http.Handler {
		e := echo.New()
		e.Use(stepupecho.MiddlewareWithConfig(g, stepupecho.Config{
			Skipper: func(c echo.Context) bool { return c.Path() == "/report" },
		}))
		mount(e, g, h)
		e.POST("/wire", echo.WrapHandler(h.Open), stepupecho.Require(g, "wire"))
		return e
	}
	env := stepuptest.NewEnv(t, app, stepuptest.Options{})
	b := env.NewBrowser()
	b.Login("alice")
	assert.Equal(t, http.StatusOK, b.Get("/report").StatusCode, "skipped")
	assert.Equal(t, http.StatusForbidden, b.Do(http.MethodPost, "/wire", stepuptest.Form, "a=1", nil).StatusCode,
		"Require applies the wire action (REVIEW_REQUIRED in the suite's rules)")
	assert.Panics(t, func() { stepupecho.Require(env.Guard, "bad action!") })
}

func TestEchoMethodOverrideDoesNotBypass(t *testing.T) {
	app := echoAdapter
	app.Mount = func(t testing.TB, g *stepup.Guard, h stepuptest.Handlers) http.Handler {
		e := echo.New()
		e.Pre(middleware.MethodOverride())
		e.Pre(stepupecho.PreserveBody(g))
		e.Use(stepupecho.Middleware(g))
		mount(e, g, h)
		e.POST("/items/:id", echo.WrapHandler(h.Open))
		return e
	}
	env := stepuptest.NewEnv(t, app, stepuptest.Options{})
	b := env.NewBrowser()
	b.Login("alice")
	// The router dispatches DELETE: the DELETE policy decides, and the
	// parked method is the dispatched one.
	challenge := b.Challenge(b.Do(http.MethodPost, "/items/7", stepuptest.Form, "", http.Header{"X-Http-Method-Override": {"DELETE"}}))
	resp := b.Get(b.Complete(challenge))
	require.Equal(t, http.StatusOK, resp.StatusCode, resp.Body)
	runs := env.Ledger.Runs("deleteItem")
	require.Len(t, runs, 1)
	assert.Equal(t, http.MethodDelete, runs[0].Method)
	assert.Empty(t, runs[0].Header.Get("X-Http-Method-Override"))
	tracked := env.Emulator.Tracked()
	require.NotEmpty(t, tracked)
	assert.Equal(t, "7", tracked[0].Custom["item"], "path parameter attribute from echo's c.Param")
}

func TestCheckRoutes(t *testing.T) {
	app := echoAdapter
	app.Mount = func(t testing.TB, g *stepup.Guard, h stepuptest.Handlers) http.Handler {
		e := echo.New()
		e.POST("/transfer", echo.WrapHandler(h.Transfer))
		err := stepupecho.CheckRoutes(g, e)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "PUT /profile")
		assert.NotContains(t, err.Error(), "POST /transfer:")
		return e
	}
	stepuptest.NewEnv(t, app, stepuptest.Options{})
}

func TestEchoPathVariantsNeverBypass(t *testing.T) {
	env := stepuptest.NewEnv(t, echoAdapter, stepuptest.Options{})
	b := env.NewBrowser()
	b.Login("alice")
	for _, p := range []string{"/transfer/", "//transfer", "/./transfer", "/x/../transfer", "/%74ransfer", "/TRANSFER", "/transfer;x"} {
		req, err := http.NewRequest(http.MethodPost, env.Server.URL, strings.NewReader("amount=5000"))
		require.NoError(t, err)
		req.URL = &url.URL{Scheme: "http", Host: strings.TrimPrefix(env.Server.URL, "http://"), Opaque: p}
		req.Header.Set("Content-Type", stepuptest.Form)
		req.Header.Set("Accept", "text/html")
		resp := b.Send(req)
		if resp.StatusCode == http.StatusSeeOther {
			assert.True(t, strings.HasPrefix(resp.Header.Get("Location"), env.Emulator.URL), p)
		}
	}
	assert.Empty(t, env.Ledger.Runs("transfer"), "no variant reached the handler unchallenged")
}
