package redisstore_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup"
	"github.com/stepupkit/stepup/stepuptest"
	redisstore "github.com/stepupkit/stepup/stores/redis"
)

// Redis holds the guard's records sealed (stepup.Config.RecordKeys): no
// parked body in clear, and a record altered in Redis, or copied there
// under another park's key, is refused: nothing runs.
func TestRecordsAreSealedInRedis(t *testing.T) {
	ctx := context.Background()
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			client := b.client(t)
			env := stepuptest.NewEnv(t, muxApp, stepuptest.Options{Store: func(now func() time.Time) stepup.Store {
				return redisstore.New(client, redisstore.Prefix("sealed:"+b.name+":"), redisstore.Clock(now))
			}})
			key := func(cb string) string { return "sealed:" + b.name + ":r:" + stepuptest.Param(cb, "park") }
			alice := env.NewBrowser()
			alice.Login("alice")
			first := alice.Complete(alice.Challenge(alice.Do(http.MethodPost, "/transfer", stepuptest.Form, "amount=5000&iban=DE89370400440532013000", nil)))
			second := alice.Complete(alice.Challenge(alice.Do(http.MethodPost, "/transfer", stepuptest.Form, "amount=7000", nil)))

			stored, err := client.HGet(ctx, key(first), "r").Result()
			require.NoError(t, err)
			assert.NotContains(t, stored, "DE89370400440532013000")
			assert.NotContains(t, stored, "alice")
			rec, err := stepup.UnmarshalRecord([]byte(stored))
			require.NoError(t, err)
			require.NotEmpty(t, rec.Sealed)

			// The second park's key now holds the first park's record,
			// its id rewritten to match; the first park's record a flipped byte.
			moved := *rec
			moved.ID = stepuptest.Param(second, "park")
			data, err := stepup.MarshalRecord(&moved)
			require.NoError(t, err)
			require.NoError(t, client.HSet(ctx, key(second), "r", data).Err())
			rec.Sealed[len(rec.Sealed)-1] ^= 1
			data, err = stepup.MarshalRecord(rec)
			require.NoError(t, err)
			require.NoError(t, client.HSet(ctx, key(first), "r", data).Err())

			for _, cb := range []string{first, second} {
				resp := alice.Get(cb)
				assert.NotEqual(t, http.StatusOK, resp.StatusCode, resp.Body)
			}
			assert.Empty(t, env.Ledger.Runs("transfer"), "nothing ran")

			third := alice.Complete(alice.Challenge(alice.Do(http.MethodPost, "/transfer", stepuptest.Form, "amount=9000", nil)))
			require.Equal(t, http.StatusOK, alice.Get(third).StatusCode, "an untouched record opens")
			assert.Len(t, env.Ledger.Runs("transfer"), 1)
		})
	}
}
