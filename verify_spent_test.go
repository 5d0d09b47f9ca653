package stepup_test

// A token already spent is refused before Authsignal is asked, whether the
// guard read its spent mark alone (the API retry) or together with the
// park (the callback, one read with a MultiGetter).

import (
	"context"
	"encoding/json"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup"
	"github.com/stepupkit/stepup/authsignal"
	"github.com/stepupkit/stepup/stepuptest"
)

// countingValidate counts the provider's Validate calls.
type countingValidate struct {
	stepup.Provider
	n *atomic.Int32
}

func (p countingValidate) Validate(ctx context.Context, req authsignal.ValidateRequest) (*authsignal.ValidateResponse, error) {
	p.n.Add(1)
	return p.Provider.Validate(ctx, req)
}

func spentEnv(t *testing.T) (*stepuptest.Env, *atomic.Int32) {
	t.Helper()
	n := &atomic.Int32{}
	env := stepuptest.NewEnv(t, guardedApp, stepuptest.Options{
		Provider: func(p stepup.Provider) stepup.Provider { return countingValidate{p, n} },
		Store:    func(now func() time.Time) stepup.Store { return newFlakyStore(now) },
	})
	return env, n
}

func TestSpentTokenRefusedBeforeTheProviderOnRetry(t *testing.T) {
	env, validations := spentEnv(t)
	b := env.NewBrowser()
	b.Login("alice")
	resp := b.API(http.MethodPost, "/api/transfer", `{"amount":5000}`, nil)
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	var doc struct{ URL string }
	require.NoError(t, json.Unmarshal([]byte(resp.Body), &doc))
	token := stepuptest.Param(b.Complete(doc.URL), "token")
	retry := func() *stepuptest.Response {
		return b.API(http.MethodPost, "/api/transfer", `{"amount":5000}`, http.Header{stepup.TokenHeader: {token}})
	}
	require.Equal(t, http.StatusOK, retry().StatusCode)
	require.Equal(t, int32(1), validations.Load())
	assert.Equal(t, http.StatusConflict, retry().StatusCode)
	assert.Equal(t, int32(1), validations.Load(), "the spent mark refuses it; Authsignal is not asked again")
	assert.Len(t, env.Ledger.Runs(""), 1)
}

func TestSpentTokenRefusedBeforeTheProviderOnCallback(t *testing.T) {
	env, validations := spentEnv(t)
	b := env.NewBrowser()
	b.Login("alice")
	first := b.Complete(b.Challenge(b.Do(http.MethodPost, "/transfer", stepuptest.Form, "amount=5000", nil)))
	require.Equal(t, http.StatusOK, b.Get(first).StatusCode)
	second := b.Complete(b.Challenge(b.Do(http.MethodPost, "/transfer", stepuptest.Form, "amount=6000", nil)))
	require.Equal(t, int32(1), validations.Load())

	// The second park, with the first challenge's spent token.
	resp := b.Get(stepuptest.WithParam(second, "token", stepuptest.Param(first, "token")))
	assert.Equal(t, http.StatusConflict, resp.StatusCode, resp.Body)
	assert.Equal(t, int32(1), validations.Load(), "refused on the spent mark read with the park")
	require.Equal(t, http.StatusOK, b.Get(second).StatusCode, "and the second park, not ended, completes")
	assert.Len(t, env.Ledger.Runs("transfer"), 2)
}
