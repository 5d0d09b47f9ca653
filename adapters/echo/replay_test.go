package stepupecho_test

// The callback's replay through echo middleware in front of the guard:
// HTTPSRedirect behind a TLS-terminating proxy (SECURITY.md threat 11).

import (
	"net/http"
	"testing"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/stepupkit/stepup"
	stepupecho "github.com/stepupkit/stepup/adapters/echo"
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
