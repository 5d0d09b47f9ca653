package stepup_test

// The callback's replay behind a TLS-terminating proxy (SECURITY.md
// threat 11).

import (
	"net/http"
	"testing"

	"github.com/stepupkit/stepup"
	"github.com/stepupkit/stepup/stepuptest"
)

// fronted mounts the conformance application on a ServeMux with front
// between the server and the guard, inside the chain the callback replays
// through, as an application's own middleware is.
func fronted(front func(http.Handler) http.Handler) stepuptest.Adapter {
	return stepuptest.Adapter{
		Name:  "servemux+front",
		Param: guardedApp.Param,
		Mount: func(t testing.TB, g *stepup.Guard, h stepuptest.Handlers) http.Handler {
			mux := http.NewServeMux()
			mux.Handle("POST /login", h.Login)
			mux.Handle("POST /logout", h.Logout)
			guardedRoutes(mux, h)
			root := front(g.Middleware(mux))
			mux.Handle("GET "+stepuptest.CallbackPath, g.Callback(root))
			return root
		},
	}
}

// httpsOnly redirects requests that did not arrive over https, trusting
// the proxy's X-Forwarded-Proto, as echo's middleware.HTTPSRedirect does.
func httpsOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil && r.Header.Get("X-Forwarded-Proto") != "https" {
			http.Redirect(w, r, "https://"+r.Host+r.URL.RequestURI(), http.StatusMovedPermanently)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func TestReplayBehindATLSProxy(t *testing.T) {
	stepuptest.RunBehindTLSProxy(t, fronted(httpsOnly))
}
