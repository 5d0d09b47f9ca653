package stepup_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup"
	"github.com/stepupkit/stepup/stepuptest"
)

func TestParkLimiterContract(t *testing.T) {
	stepuptest.RunCounter(t, stepup.NewParkLimiter)
}

// sharedStore is a MemoryStore that is also a Counter, as a shared store
// such as stores/redis is: every guard on it counts in one place.
type sharedStore struct {
	*stepup.MemoryStore
	stepup.Counter
}

func TestSharedStoreAndCounter(t *testing.T) {
	stepuptest.RunShared(t, reviewApp, func(now func() time.Time) stepup.Store {
		return sharedStore{stepup.NewMemoryStore(stepup.MemoryClock(now)), stepup.NewParkLimiter()}
	})
}

// brokenCounter is a Counter that cannot answer.
type brokenCounter struct{}

var errCounterDown = errors.New("counter: connection refused")

func (brokenCounter) Reserve(context.Context, stepup.Slot, int, int) (time.Duration, error) {
	return 0, errCounterDown
}
func (brokenCounter) Attach(context.Context, stepup.Slot, string) error { return errCounterDown }
func (brokenCounter) Release(context.Context, stepup.Slot) error        { return errCounterDown }

// TestCounterDownFailsClosed: a counter that cannot answer opens no
// challenge: Authsignal is asked (an ALLOW would run: see
// TestStoreOutageStopsOnlyWhatNeedsTheStore), its challenge is a 503 and
// nothing is parked.
func TestCounterDownFailsClosed(t *testing.T) {
	env := stepuptest.NewEnv(t, guardedApp, stepuptest.Options{Store: func(now func() time.Time) stepup.Store {
		return sharedStore{stepup.NewMemoryStore(stepup.MemoryClock(now)), brokenCounter{}}
	}})
	b := env.NewBrowser()
	b.Login("alice")
	resp := b.Do(http.MethodPost, "/transfer", stepuptest.Form, "amount=5000", nil)
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	assert.Equal(t, "5", resp.Header.Get("Retry-After"))
	assert.Len(t, env.Emulator.Tracked(), 1, "judged by Authsignal all the same")
	assert.Empty(t, env.Events.Of(stepup.EventChallenge), "no challenge opens without a slot")
	assert.Empty(t, env.Ledger.Runs(""))
	err := env.Events.LastRefusal()
	assert.ErrorIs(t, err, errCounterDown, "the cause is named")
	assert.ErrorContains(t, err, "challenge counter")
}

// fullCounter is a Counter whose caps are always reached, with no time
// left to wait.
type fullCounter struct{ brokenCounter }

func (fullCounter) Reserve(context.Context, stepup.Slot, int, int) (time.Duration, error) {
	return 0, fmt.Errorf("shared caps: %w", stepup.ErrTooManyChallenges)
}

func TestCounterRefusal(t *testing.T) {
	env := stepuptest.NewEnv(t, guardedApp, stepuptest.Options{Store: func(now func() time.Time) stepup.Store {
		return sharedStore{stepup.NewMemoryStore(stepup.MemoryClock(now)), fullCounter{}}
	}})
	b := env.NewBrowser()
	b.Login("alice")
	resp := b.Do(http.MethodPost, "/transfer", stepuptest.Form, "amount=5000", nil)
	assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
	assert.Equal(t, "1", resp.Header.Get("Retry-After"), "never 0: a client would retry at once")
	assert.Empty(t, env.Emulator.Tracked())
	assert.ErrorIs(t, env.Events.LastRefusal(), stepup.ErrTooManyChallenges)
	assert.ErrorContains(t, env.Events.LastRefusal(), "shared caps", "a wrapped refusal keeps its words")
}

// A browser's first challenge opens its guard session and is counted for
// that session in the same step: with one challenge per session, the same
// browser's second challenge is refused, though the user is far from their
// own cap.
func TestAFirstChallengeCountsForTheSessionItOpens(t *testing.T) {
	env := stepuptest.NewEnv(t, guardedApp, stepuptest.Options{Config: func(c *stepup.Config) {
		c.MaxChallengesPerSession = 1
		c.MaxChallengesPerUser = 10
	}})
	b := env.NewBrowser()
	b.Login("alice")
	first := b.Do(http.MethodPost, "/transfer", stepuptest.Form, "amount=5000", nil)
	require.True(t, challenged(env, first), "status %d", first.StatusCode)
	second := b.Do(http.MethodPost, "/transfer", stepuptest.Form, "amount=6000", nil)
	assert.Equal(t, http.StatusTooManyRequests, second.StatusCode, "the session's one challenge is taken")
	assert.Len(t, env.Emulator.Tracked(), 1, "the second request was never tracked")

	other := env.NewBrowser()
	other.Login("alice")
	assert.True(t, challenged(env, other.Do(http.MethodPost, "/transfer", stepuptest.Form, "amount=7000", nil)),
		"another browser of the user has its own session count")
}
