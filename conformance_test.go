package stepup_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup"
	"github.com/stepupkit/stepup/stepuptest"
)

// serveMux mounts the conformance application on a Go 1.22 ServeMux behind
// guard.Middleware, the declarative table matched by the mux's own pattern.
var serveMux = stepuptest.Adapter{
	Name:  "servemux",
	Param: func(name string) string { return "{" + name + "}" },
	Mount: func(t testing.TB, g *stepup.Guard, h stepuptest.Handlers) http.Handler {
		mux := http.NewServeMux()
		mux.Handle("POST /login", h.Login)
		mux.Handle("POST /logout", h.Logout)
		mux.Handle("POST /transfer", h.Transfer)
		mux.Handle("POST /api/transfer", h.APITrans)
		mux.Handle("PUT /profile", h.Profile)
		mux.Handle("DELETE /items/{id}", h.DeleteItem)
		mux.Handle("GET /report", h.Report)
		mux.Handle("GET /admin", h.Admin)
		mux.Handle("POST /block", h.Block)
		mux.Handle("POST /review", h.Review)
		mux.Handle("/open", h.Open)
		root := g.Middleware(mux)
		mux.Handle("GET "+stepuptest.CallbackPath, g.Callback(root))
		require.NoError(t, g.CheckServeMux(mux))
		return root
	},
}

func TestConformanceServeMux(t *testing.T) {
	stepuptest.Run(t, serveMux)
}
