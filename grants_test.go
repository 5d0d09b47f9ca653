package stepup_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup"
	"github.com/stepupkit/stepup/stepuptest"
)

// A Store that cannot answer is an error from Grants and from Revoke, never
// an empty list or a revocation that silently did not happen; once the
// Store is back, Revoke ends the grant.
func TestGrantsAndRevokeReportAStoreThatCannotAnswer(t *testing.T) {
	ctx := context.Background()
	var store *flakyStore
	env := stepuptest.NewEnv(t, guardedApp, stepuptest.Options{Store: func(now func() time.Time) stepup.Store {
		store = newFlakyStore(now)
		return store
	}})
	b := env.NewBrowser()
	b.Login("alice")
	resumed := b.Get(b.Complete(b.Challenge(b.Get("/admin"))))
	require.Equal(t, http.StatusOK, b.Get(resumed.Header.Get("Location")).StatusCode, "the pass")

	store.down.Store(true)
	grants, err := env.Guard.Grants(ctx, "alice")
	assert.ErrorIs(t, err, errStoreDown)
	assert.Nil(t, grants)
	assert.ErrorIs(t, env.Guard.Revoke(ctx, "alice"), errStoreDown)

	store.down.Store(false)
	assert.Equal(t, http.StatusOK, b.Get("/admin").StatusCode, "not revoked: Revoke said so")
	store.failConsume.Store(true)
	assert.ErrorIs(t, env.Guard.Revoke(ctx, "alice"), errStoreDown, "a grant that could not be ended is an error")
	assert.Equal(t, http.StatusOK, b.Get("/admin").StatusCode)
	require.NoError(t, env.Guard.Revoke(ctx, "alice"))
	b.Challenge(b.Get("/admin"))
}
