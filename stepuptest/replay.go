package stepuptest

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup"
)

// TLSProxy starts a reverse proxy in front of env's application that
// stands for a load balancer terminating TLS: it forwards every request
// with X-Forwarded-For, X-Forwarded-Host and X-Forwarded-Proto: https.
// Aim a browser at it with OnProxy.
func (env *Env) TLSProxy() *httptest.Server {
	env.T.Helper()
	target := mustURL(env.Server.URL)
	proxy := httptest.NewServer(&httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(target)
		pr.SetXForwarded()
		pr.Out.Header.Set("X-Forwarded-Proto", "https")
	}})
	env.T.Cleanup(proxy.Close)
	return proxy
}

// OnProxy returns rawURL, or a path on the application, aimed at proxy.
func (env *Env) OnProxy(rawURL string, proxy *httptest.Server) string {
	if len(rawURL) > 0 && rawURL[0] == '/' {
		rawURL = env.Server.URL + rawURL
	}
	return onInstance(rawURL, proxy)
}

// onInstance returns rawURL aimed at srv: another instance of the
// application, or a proxy in front of it. The cookie jar keys cookies on
// the host name, not the port, so a browser carries the same cookies to
// each, as to one site behind a load balancer.
func onInstance(rawURL string, srv *httptest.Server) string {
	u := mustURL(rawURL)
	u.Host = mustURL(srv.URL).Host
	return u.String()
}

// RunBehindTLSProxy runs a browser flow through TLSProxy against an
// application that, like echo's middleware.HTTPSRedirect, redirects every
// request that did not arrive over https: a's Mount must put such a
// middleware in the application, inside the chain the callback replays
// through. The replay of the verified request must carry the live
// callback's forwarding headers, reach its route and run exactly once.
func RunBehindTLSProxy(t *testing.T, a Adapter) {
	env := NewEnv(t, a, Options{})
	proxy := env.TLSProxy()
	b := env.NewBrowser()

	direct := b.Do(http.MethodPost, "/login", Form, "user=alice", nil)
	require.True(t, direct.StatusCode >= 300 && direct.StatusCode < 400,
		"the application must redirect plain http (got %d): the test needs that middleware", direct.StatusCode)

	login := b.Do(http.MethodPost, env.OnProxy("/login", proxy), Form, "user=alice", nil)
	require.Equal(t, http.StatusOK, login.StatusCode, login.Body)
	challenge := b.Challenge(b.Do(http.MethodPost, env.OnProxy("/transfer", proxy), Form, "amount=5000&to=bob", nil))
	cb := env.OnProxy(b.Complete(challenge), proxy)

	resp := b.Get(cb)
	require.Equal(t, http.StatusOK, resp.StatusCode, "Location %q, body %q", resp.Header.Get("Location"), resp.Body)
	runs := env.Ledger.Runs("transfer")
	require.Len(t, runs, 1)
	assert.Equal(t, "amount=5000&to=bob", string(runs[0].Body))
	assert.Equal(t, "https", runs[0].Header.Get("X-Forwarded-Proto"), "from the live callback request")
	assert.Equal(t, "127.0.0.1", runs[0].Header.Get("X-Forwarded-For"))

	again := b.Get(cb)
	assert.Equal(t, http.StatusOK, again.StatusCode)
	assert.Equal(t, resp.Body, again.Body, "a refresh shows the kept outcome")
	assert.Len(t, env.Ledger.Runs("transfer"), 1, "exactly once")
}

// runReplaySpend checks what happens when the replay reaches its route and
// spends token and park: the session the callback answers with records it.
func runReplaySpend(t *testing.T, a Adapter) {
	t.Run("Remember on a replayed request: the callback's answer carries the grant", func(t *testing.T) {
		env := NewEnv(t, a, Options{Config: func(c *stepup.Config) {
			for i := range c.Policies {
				if c.Policies[i].Route == "/transfer" {
					c.Policies[i].Remember = 5 * time.Minute
				}
			}
		}})
		b := env.NewBrowser()
		b.Login("alice")
		cb := b.Complete(b.Challenge(b.Do(http.MethodPost, "/transfer", Form, "amount=5000", nil)))
		require.Equal(t, http.StatusOK, b.Get(cb).StatusCode)
		tracked := len(env.Emulator.Tracked())

		resp := b.Do(http.MethodPost, "/transfer", Form, "amount=7000", nil)
		require.Equal(t, http.StatusOK, resp.StatusCode, resp.Body)
		runs := env.Ledger.Runs("transfer")
		require.Len(t, runs, 2)
		assert.Equal(t, "remembered", runs[1].How)
		assert.Equal(t, tracked, len(env.Emulator.Tracked()), "no track while remembered")
	})
}
