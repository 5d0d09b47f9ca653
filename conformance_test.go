package stepup_test

import (
	"net/http"
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup"
	"github.com/stepupkit/stepup/stepuptest"
)

// serveMux mounts the conformance application on a Go 1.22 ServeMux behind
// guard.Middleware (guardedApp's routes plus the decision routes), and
// checks the table against the mux.
var serveMux = stepuptest.Adapter{
	Name:  "servemux",
	Param: guardedApp.Param,
	Mount: func(t testing.TB, g *stepup.Guard, h stepuptest.Handlers) http.Handler {
		return muxAdapter(func(mux *http.ServeMux, g *stepup.Guard, h stepuptest.Handlers) {
			guardedRoutes(mux, h)
			mux.Handle("POST /block", h.Block)
			mux.Handle("POST /review", h.Review)
			require.NoError(t, g.CheckServeMux(mux))
		}).Mount(t, g, h)
	},
}

func TestConformanceServeMux(t *testing.T) {
	stepuptest.Run(t, serveMux)
}

// The suite again with a guard that seals its own cookie with CookieKeys
// and has no gorilla Store at all.
func TestConformanceServeMuxCookieKeys(t *testing.T) {
	if os.Getenv("STEPUP_MUTATION") != "" {
		// .ci/mutation runs the suite once per mutant: the whole conformance
		// suite a second time (a fifth of the package's test time) would
		// cost more than it pins; cookie_test.go pins cookie.go's lines.
		t.Skip("the conformance suite runs once per mutant (ServeMux); STEPUP_MUTATION is set")
	}
	a := serveMux
	a.Config = func(c *stepup.Config) {
		c.Sessions = nil
		c.CookieKeys = [][]byte{[]byte("a 32-byte secret for the suite!!")}
	}
	stepuptest.Run(t, a)
}
