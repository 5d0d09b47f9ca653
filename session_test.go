package stepup_test

import (
	"errors"
	"net/http"
	"testing"

	"github.com/gorilla/sessions"
	"github.com/stretchr/testify/assert"

	"github.com/stepupkit/stepup"
	"github.com/stepupkit/stepup/stepuptest"
)

// unsavable is a session store that reads like the one it wraps and
// cannot write.
type unsavable struct{ sessions.Store }

func (u unsavable) Get(r *http.Request, name string) (*sessions.Session, error) {
	return sessions.GetRegistry(r).Get(u, name)
}

func (u unsavable) New(r *http.Request, name string) (*sessions.Session, error) {
	inner, err := u.Store.New(r, name)
	s := sessions.NewSession(u, name) // Save goes through u
	if inner != nil {
		s.Values, s.Options, s.IsNew, s.ID = inner.Values, inner.Options, inner.IsNew, inner.ID
	}
	return s, err
}

func (unsavable) Save(*http.Request, http.ResponseWriter, *sessions.Session) error {
	return errors.New("disk full")
}

// A park whose id cannot be written to the session could never be
// redeemed: the guard refuses (500) and sends nobody to a challenge, rather
// than let the user verify for nothing.
func TestUnsavableSessionRefusesToPark(t *testing.T) {
	env := stepuptest.NewEnv(t, guardedApp, stepuptest.Options{Config: func(c *stepup.Config) {
		c.Sessions = unsavable{c.Sessions}
	}})
	b := env.NewBrowser()
	b.Login("alice")
	resp := b.Do(http.MethodPost, "/transfer", stepuptest.Form, "amount=5000", nil)
	assert.Equal(t, http.StatusInternalServerError, resp.StatusCode)
	assert.Empty(t, resp.Header.Get("Location"), "nobody is sent to a challenge that cannot come back")
	assert.Empty(t, env.Ledger.Runs("transfer"))
}
