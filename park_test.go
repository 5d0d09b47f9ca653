package stepup_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup/stepuptest"
)

func TestChunkedBodyReplayedWithItsLength(t *testing.T) {
	env := stepuptest.NewEnv(t, guardedApp, stepuptest.Options{})
	b := env.NewBrowser()
	b.Login("alice")
	chunked := "5\r\namoun\r\n6\r\nt=5000\r\n7\r\n&to=bob\r\n0\r\n\r\n"
	resp := sendRaw(t, env, b, http.MethodPost, "/transfer", http.Header{
		"Content-Type": {stepuptest.Form}, "Transfer-Encoding": {"chunked"}, "Te": {"trailers"},
		"X-Unlisted": {"x"}, "Keep-Alive": {"timeout=5"}, "Upgrade": {"h2c"}}, chunked)
	require.True(t, challenged(env, resp), "status %d %q", resp.StatusCode, resp.Body)
	tracked := env.Emulator.Tracked()
	require.Len(t, tracked, 1)
	assert.Equal(t, 5000.0, tracked[0].Custom["amount"], "the attribute read the dechunked body")

	require.Equal(t, http.StatusOK, b.Get(b.Complete(resp.Header.Get("Location"))).StatusCode)
	runs := env.Ledger.Runs("transfer")
	require.Len(t, runs, 1)
	assert.Equal(t, "amount=5000&to=bob", string(runs[0].Body))
	assert.Equal(t, int64(len("amount=5000&to=bob")), runs[0].ContentLength)
	for _, k := range []string{"Transfer-Encoding", "Te", "Keep-Alive", "Upgrade", "X-Unlisted"} {
		assert.Empty(t, runs[0].Header.Get(k), k)
	}
}
