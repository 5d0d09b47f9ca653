package stepupgin_test

import (
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup"
	"github.com/stepupkit/stepup/adapters/stepupgin"
	"github.com/stepupkit/stepup/stepuptest"
)

func TestMain(m *testing.M) {
	gin.SetMode(gin.TestMode)
	os.Exit(m.Run())
}

// routes registers the conformance application's routes on e.
func routes(e *gin.Engine, g *stepup.Guard, h stepuptest.Handlers) {
	w := gin.WrapH
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
	e.GET(stepuptest.CallbackPath, stepupgin.Callback(g, e))
}

// app builds the conformance application: front, then the guard's table,
// then the routes.
//
// Two engine settings differ from gin.New's defaults, as the suite needs
// them: HandleMethodNotAllowed (405, not 404, for a method a pattern does
// not serve) and UseRawPath (an escaped slash inside a parameter is
// routed, "/items/a%2Fb" to "/items/:id"). TestGinPathVariantsNeverBypass
// runs with the defaults too.
func app(t testing.TB, g *stepup.Guard, h stepuptest.Handlers, front ...gin.HandlerFunc) *gin.Engine {
	e := gin.New()
	e.HandleMethodNotAllowed = true
	e.UseRawPath = true
	e.Use(front...)
	e.Use(stepupgin.Middleware(g, e))
	routes(e, g, h)
	require.NoError(t, stepupgin.CheckRoutes(g, e))
	return e
}

var ginAdapter = stepuptest.Adapter{
	Name:  "gin",
	Param: func(name string) string { return ":" + name },
	Mount: func(t testing.TB, g *stepup.Guard, h stepuptest.Handlers) http.Handler {
		return app(t, g, h, stepupgin.PreserveBody(g))
	},
}

func TestConformanceGin(t *testing.T) {
	stepuptest.Run(t, ginAdapter)
}

func TestSignInGin(t *testing.T) {
	stepuptest.RunSignIn(t, ginAdapter)
}

// httpsRedirect sends every request that did not come over https (as the
// proxy says) to https, as a proxy-aware redirect middleware does.
func httpsRedirect(c *gin.Context) {
	if c.Request.TLS == nil && c.GetHeader("X-Forwarded-Proto") != "https" {
		c.Redirect(http.StatusMovedPermanently, "https://"+c.Request.Host+c.Request.URL.RequestURI())
		c.Abort()
	}
}

func TestGinReplayBehindATLSProxy(t *testing.T) {
	a := ginAdapter
	a.Mount = func(t testing.TB, g *stepup.Guard, h stepuptest.Handlers) http.Handler {
		return app(t, g, h, httpsRedirect, stepupgin.PreserveBody(g))
	}
	stepuptest.RunBehindTLSProxy(t, a)
}

// csrfForm stands for a CSRF check that reads a form field with gin
// before the guard: it refuses a POST without _csrf=ok.
func csrfForm(c *gin.Context) {
	if c.Request.Method == http.MethodPost && c.FullPath() != "/login" && c.PostForm("_csrf") != "ok" {
		c.AbortWithStatus(http.StatusForbidden)
	}
}

func TestGinBodyReadInFront(t *testing.T) {
	t.Run("with PreserveBody the exact bytes are parked and replayed", func(t *testing.T) {
		a := ginAdapter
		a.Mount = func(t testing.TB, g *stepup.Guard, h stepuptest.Handlers) http.Handler {
			return app(t, g, h, stepupgin.PreserveBody(g), csrfForm)
		}
		env := stepuptest.NewEnv(t, a, stepuptest.Options{})
		b := env.NewBrowser()
		b.Login("alice")
		body := "_csrf=ok&amount=5000&to=bob"
		resp := b.Get(b.Complete(b.Challenge(b.Do(http.MethodPost, "/transfer", stepuptest.Form, body, nil))))
		require.Equal(t, http.StatusOK, resp.StatusCode, resp.Body)
		runs := env.Ledger.Runs("transfer")
		require.Len(t, runs, 1)
		assert.Equal(t, body, string(runs[0].Body))
		assert.EqualValues(t, 5000, env.Emulator.Tracked()[0].Custom["amount"], "the amount was judged")
	})
	t.Run("without it the guard refuses rather than park an empty body", func(t *testing.T) {
		a := ginAdapter
		a.Mount = func(t testing.TB, g *stepup.Guard, h stepuptest.Handlers) http.Handler {
			return app(t, g, h, csrfForm)
		}
		env := stepuptest.NewEnv(t, a, stepuptest.Options{})
		b := env.NewBrowser()
		b.Login("alice")
		resp := b.Do(http.MethodPost, "/transfer", stepuptest.Form, "_csrf=ok&amount=5000", nil)
		assert.Equal(t, http.StatusInternalServerError, resp.StatusCode)
		assert.ErrorIs(t, env.Events.LastRefusal(), stepup.ErrBodyConsumed)
		assert.Empty(t, env.Emulator.Tracked())
		assert.Empty(t, env.Ledger.Runs("transfer"))
	})
}

func TestGinRequireAndPathParameters(t *testing.T) {
	a := ginAdapter
	a.Mount = func(t testing.TB, g *stepup.Guard, h stepuptest.Handlers) http.Handler {
		e := app(t, g, h, stepupgin.PreserveBody(g))
		e.POST("/wire", stepupgin.Require(g, "wire"), gin.WrapH(h.Open))
		e.DELETE("/accounts/:account/entries/*entry", stepupgin.Require(g, "closeAccount", stepup.WithAttributes(
			stepup.Attribute{Name: "account", From: stepup.FromPath, Key: "account"},
			stepup.Attribute{Name: "entry", From: stepup.FromPath, Key: "entry"},
		)), gin.WrapH(h.DeleteItem))
		return e
	}
	env := stepuptest.NewEnv(t, a, stepuptest.Options{})
	b := env.NewBrowser()
	b.Login("alice")
	assert.Equal(t, http.StatusForbidden, b.Do(http.MethodPost, "/wire", stepuptest.Form, "a=1", nil).StatusCode,
		"Require applies the wire action (REVIEW_REQUIRED in the suite's rules)")
	assert.Empty(t, env.Ledger.Runs("open"))

	b.Challenge(b.Do(http.MethodDelete, "/accounts/acc%201/entries/2026/42", "", "", nil))
	tracked := env.Emulator.Tracked()
	require.NotEmpty(t, tracked)
	custom := tracked[len(tracked)-1].Custom
	assert.Equal(t, "acc 1", custom["account"], "the parameter as c.Param reads it")
	assert.Equal(t, "/2026/42", custom["entry"], "a catch-all parameter, with gin's leading slash")

	b.Challenge(b.Do(http.MethodDelete, "/items/7", "", "", nil))
	tracked = env.Emulator.Tracked()
	assert.Equal(t, "7", tracked[len(tracked)-1].Custom["item"], "the table's FromPath attribute")

	assert.Panics(t, func() { stepupgin.Require(env.Guard, "bad action!") })
}

func TestGinRefusesBodiesOnlyGinReads(t *testing.T) {
	a := ginAdapter
	a.Mount = func(t testing.TB, g *stepup.Guard, h stepuptest.Handlers) http.Handler {
		e := app(t, g, h, stepupgin.PreserveBody(g))
		e.PUT("/limits", stepupgin.Require(g, "transfer", stepup.WithAttributes(
			stepup.Attribute{Name: "amount", From: stepup.FromJSON, Key: "amount", Type: stepup.TypeNumber})), gin.WrapH(h.Open))
		return e
	}
	env := stepuptest.NewEnv(t, a, stepuptest.Options{})
	b := env.NewBrowser()
	b.Login("alice")
	for _, ct := range []string{"application/x-yaml", "application/yaml", "application/toml", "application/x-msgpack",
		"application/msgpack", "application/bson", "application/x-protobuf", "application/x-yaml; charset=utf-8"} {
		for _, target := range []struct{ method, path string }{{http.MethodPost, "/transfer"}, {http.MethodPut, "/limits"}} {
			resp := b.API(target.method, target.path, "amount: 5000", http.Header{"Content-Type": {ct}})
			assert.Equal(t, http.StatusUnsupportedMediaType, resp.StatusCode, "%s %s %s", target.method, target.path, ct)
			assert.Contains(t, resp.Body, `"error":"unsupported_body"`)
		}
	}
	assert.Empty(t, env.Emulator.Tracked())
	assert.Empty(t, env.Ledger.Runs(""))
	// A policy that reads nothing from the request parks any body.
	b.Challenge(b.Do(http.MethodPut, "/profile", "application/x-yaml", "email: x@example.com", nil))
}

func TestGinMethodChangedAfterRoutingFailsClosed(t *testing.T) {
	rewrite := func(c *gin.Context) {
		if m := c.GetHeader("X-Rewrite-Method"); m != "" {
			c.Request.Method = m
		}
	}
	a := ginAdapter
	a.Mount = func(t testing.TB, g *stepup.Guard, h stepuptest.Handlers) http.Handler {
		e := app(t, g, h, stepupgin.PreserveBody(g), rewrite)
		e.DELETE("/transfer", gin.WrapH(h.Open)) // an open route of its own at the protected pattern
		e.GET("/admin/:x", gin.WrapH(h.Open))
		return e
	}
	env := stepuptest.NewEnv(t, a, stepuptest.Options{})
	b := env.NewBrowser()
	b.Login("alice")
	// gin runs the POST /transfer handler; the guard would see another method.
	for _, m := range []string{http.MethodPut, http.MethodDelete, http.MethodGet, "PROPFIND"} {
		resp := b.Do(http.MethodPost, "/transfer", stepuptest.Form, "amount=5000&to=mallory", http.Header{"X-Rewrite-Method": {m}})
		assert.Equal(t, http.StatusInternalServerError, resp.StatusCode, m)
	}
	assert.Empty(t, env.Ledger.Runs("transfer"), "the transfer ran without a step-up")
	assert.Empty(t, env.Emulator.Tracked())
	var reasons []string
	for _, ev := range env.Events.Of(stepup.EventRefuse) {
		reasons = append(reasons, ev.Err.Error())
	}
	require.Len(t, reasons, 4)
	assert.Contains(t, reasons[0], "the method changed after routing")

	t.Run("requests the rewrite leaves alone are decided as before", func(t *testing.T) {
		b.Challenge(b.Do(http.MethodPost, "/transfer", stepuptest.Form, "amount=5000&to=bob", nil))
		assert.Equal(t, http.StatusOK, b.Do(http.MethodDelete, "/transfer", "", "", nil).StatusCode, "the open DELETE route")
		assert.Equal(t, http.StatusOK, b.Do(http.MethodPost, "/open", stepuptest.Form, "a=1",
			http.Header{"X-Rewrite-Method": {http.MethodDelete}}).StatusCode, "an open Any route")
		assert.Len(t, env.Events.Of(stepup.EventRefuse), 4)
	})
}

func TestGinPathVariantsNeverBypass(t *testing.T) {
	a := ginAdapter
	a.Mount = func(t testing.TB, g *stepup.Guard, h stepuptest.Handlers) http.Handler {
		e := gin.New()
		e.RedirectFixedPath = true
		e.RemoveExtraSlash = true
		e.UseRawPath = true
		e.Use(stepupgin.PreserveBody(g), stepupgin.Middleware(g, e))
		routes(e, g, h)
		return e
	}
	defaults := ginAdapter
	defaults.Mount = func(t testing.TB, g *stepup.Guard, h stepuptest.Handlers) http.Handler {
		e := gin.New()
		e.Use(stepupgin.PreserveBody(g), stepupgin.Middleware(g, e))
		routes(e, g, h)
		return e
	}
	for _, adapter := range []stepuptest.Adapter{ginAdapter, defaults, a} {
		t.Run(adapter.Name, func(t *testing.T) {
			env := stepuptest.NewEnv(t, adapter, stepuptest.Options{})
			b := env.NewBrowser()
			b.Login("alice")
			for _, p := range []string{"/transfer/", "//transfer", "/./transfer", "/x/../transfer", "/%74ransfer",
				"/TRANSFER", "/transfer;x", "/transfer%2F", "/transfer/.", "/transfer%00"} {
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
		})
	}
}

func TestGinRefusesMapKeysNamingADottedAttribute(t *testing.T) {
	a := ginAdapter
	a.Mount = func(t testing.TB, g *stepup.Guard, h stepuptest.Handlers) http.Handler {
		e := app(t, g, h, stepupgin.PreserveBody(g))
		e.POST("/payees", stepupgin.Require(g, "transfer", stepup.WithAttributes(
			stepup.Attribute{Name: "iban", From: stepup.FromJSON, Key: "payee.iban"})), func(c *gin.Context) {
			c.String(http.StatusOK, "payee %s", c.PostFormMap("payee")["iban"])
		})
		return e
	}
	env := stepuptest.NewEnv(t, a, stepuptest.Options{})
	b := env.NewBrowser()
	b.Login("alice")
	for _, tc := range []struct{ target, body string }{
		{"/payees", "payee[iban]=DE00"},
		{"/payees", "PAYEE[IBAN]=DE00"},
		{"/payees?payee%5Biban%5D=DE00", "to=bob"},
	} {
		resp := b.Do(http.MethodPost, tc.target, stepuptest.Form, tc.body, nil)
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode, "%s %s", tc.target, tc.body)
	}
	assert.Empty(t, env.Emulator.Tracked())

	// Other keys in map syntax are no concern (the suite's rules allow a
	// transfer without an amount over 1000).
	resp := b.Do(http.MethodPost, "/payees", stepuptest.Form, "meta[x]=1&payee.iban=DE01", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, resp.Body)
	require.Len(t, env.Emulator.Tracked(), 1)
	assert.Equal(t, "DE01", env.Emulator.Tracked()[0].Custom["iban"])
}

func TestGinMethodChangedIntoAnotherProtectedMethodFailsClosed(t *testing.T) {
	// POST /transfer (amount judged) and PUT /transfer (nothing judged)
	// are both protected: POST's handler must not run judged by PUT's
	// policy.
	a := ginAdapter
	a.Mount = func(t testing.TB, g *stepup.Guard, h stepuptest.Handlers) http.Handler {
		e := gin.New()
		e.Use(stepupgin.PreserveBody(g), func(c *gin.Context) {
			if m := c.GetHeader("X-Rewrite-Method"); m != "" {
				c.Request.Method = m
			}
		}, stepupgin.Middleware(g, e))
		routes(e, g, h)
		e.PUT("/transfer", gin.WrapH(h.Profile))
		require.NoError(t, stepupgin.CheckRoutes(g, e))
		return e
	}
	env := stepuptest.NewEnv(t, a, stepuptest.Options{Config: func(c *stepup.Config) {
		c.Policies = append(c.Policies, stepup.Policy{Method: http.MethodPut, Route: "/transfer", Action: "profile"})
	}})
	b := env.NewBrowser()
	b.Login("alice")
	resp := b.Do(http.MethodPost, "/transfer", stepuptest.Form, "amount=5000&to=mallory", http.Header{"X-Rewrite-Method": {http.MethodPut}})
	assert.Equal(t, http.StatusInternalServerError, resp.StatusCode)
	assert.Empty(t, env.Emulator.Tracked())
	require.Len(t, env.Events.Of(stepup.EventRefuse), 1)
	assert.ErrorIs(t, env.Events.LastRefusal(), stepup.ErrMisconfigured)
	assert.Empty(t, env.Ledger.Runs(""))

	b.Challenge(b.Do(http.MethodPut, "/transfer", stepuptest.Form, "x=1", nil))
	b.Challenge(b.Do(http.MethodPost, "/transfer", stepuptest.Form, "amount=5000", nil))
}
