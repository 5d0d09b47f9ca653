package stepuptest

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup"
)

// runGuardCookie checks the options of the guard's own session cookie,
// read from Set-Cookie: the suite's Sessions store is a gorilla
// NewCookieStore, whose defaults are SameSite=None, Secure and a 30-day
// Max-Age; the guard sets its own whatever the store's.
func runGuardCookie(t *testing.T, a Adapter) {
	t.Run("Path=/, HttpOnly, SameSite=Lax, no Secure over http, Max-Age of the longest record held", func(t *testing.T) {
		env := NewEnv(t, a, Options{})
		b := env.NewBrowser()
		b.Login("alice")
		resp := b.Do(http.MethodPost, "/transfer", Form, "amount=5000", nil)
		b.Challenge(resp)
		c := guardCookie(t, resp)
		assert.Equal(t, "/", c.Path)
		assert.True(t, c.HttpOnly)
		assert.Equal(t, http.SameSiteLaxMode, c.SameSite)
		assert.False(t, c.Secure, "the callback is http")
		assert.Equal(t, int((10 * time.Minute).Seconds()), c.MaxAge, "the park lives ParkTTL")

		env.Clock.Advance(4 * time.Minute)
		resp = b.Get("/admin") // Remember 5m
		cb := b.Complete(b.Challenge(resp))
		assert.Equal(t, int((10 * time.Minute).Seconds()), guardCookie(t, resp).MaxAge, "the new park lives ParkTTL")
		env.Clock.Advance(8 * time.Minute) // the first park has expired; the second has 2 minutes left
		done := b.Get(cb)
		require.Equal(t, http.StatusSeeOther, done.StatusCode, done.Body)
		assert.Equal(t, int((30 * 24 * time.Hour).Seconds()), guardCookie(t, done).MaxAge,
			"the mark that a challenge was passed in this browser is the longest held (30 days)")
	})
	t.Run("deleted when it holds nothing", func(t *testing.T) {
		env := NewEnv(t, a, Options{})
		b := env.NewBrowser()
		b.Login("alice")
		cb := b.Complete(b.Challenge(b.Do(http.MethodPost, "/transfer", Form, "amount=5000", nil)))
		env.Clock.Advance(10 * time.Minute)
		expired := b.Get(cb)
		assert.Equal(t, http.StatusForbidden, expired.StatusCode)
		assert.Negative(t, guardCookie(t, expired).MaxAge, "expired park: nothing left")

		b.Challenge(b.Do(http.MethodPost, "/transfer", Form, "amount=5000", nil))
		logout := b.Do(http.MethodPost, "/logout", "", "", nil)
		assert.Negative(t, guardCookie(t, logout).MaxAge, "Forget")
	})
	t.Run("Secure when the callback is https", func(t *testing.T) {
		env := NewEnv(t, a, Options{Config: func(c *stepup.Config) {
			c.CallbackURL = strings.Replace(c.CallbackURL, "http://", "https://", 1)
		}})
		b := env.NewBrowser()
		b.Login("alice")
		resp := b.Do(http.MethodPost, "/transfer", Form, "amount=5000", nil)
		b.Challenge(resp)
		c := guardCookie(t, resp)
		assert.True(t, c.Secure)
		assert.Equal(t, http.SameSiteLaxMode, c.SameSite)
	})
}

// guardCookie returns the guard's session cookie (Config.SessionName's
// default) set by resp.
func guardCookie(t *testing.T, resp *Response) *http.Cookie {
	t.Helper()
	for _, c := range resp.Cookies() {
		if c.Name == "stepup" {
			return c
		}
	}
	require.Fail(t, "no Set-Cookie for the guard's session", "%v", resp.Header.Values("Set-Cookie"))
	return nil
}
