package stepup_test

import (
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup"
	"github.com/stepupkit/stepup/stepuptest"
)

// What a waiting client is told: when to ask again (Retry-After, the page's
// refresh: ReviewPoll rounded up to whole seconds), how long the review
// has left (never "0m": at least a minute), and, over the cap, how long
// until the oldest pending review gives its place back.
func TestReviewTellsWhenToAskAgain(t *testing.T) {
	for _, tc := range []struct {
		poll time.Duration
		want string
	}{{2 * time.Second, "2"}, {1500 * time.Millisecond, "2"}, {time.Second, "1"}} {
		t.Run(tc.poll.String(), func(t *testing.T) {
			env := newReviewEnv(t, nil, func(c *stepup.Config) { c.ReviewPoll = tc.poll })
			b := env.NewBrowser()
			b.Login("alice")
			pending := b.API(http.MethodPost, "/review", "x=1", nil)
			require.Equal(t, http.StatusAccepted, pending.StatusCode, pending.Body)
			assert.Equal(t, tc.want, pending.Header.Get("Retry-After"))

			page := b.Get(b.Parked(b.Do(http.MethodPost, "/review", stepuptest.Form, "x=2", nil)))
			require.Equal(t, http.StatusOK, page.StatusCode, page.Body)
			assert.Contains(t, page.Body, `content="`+tc.want+`"`)
		})
	}

	t.Run("the time left, at least a minute", func(t *testing.T) {
		env := newReviewEnv(t, nil)
		b := env.NewBrowser()
		b.Login("alice")
		status := b.Parked(b.Do(http.MethodPost, "/review", stepuptest.Form, "x=1", nil))
		assert.Contains(t, b.Get(status).Body, "It expires in about 24h0m.")
		env.Clock.Advance(stepuptest.ReviewFor - 20*time.Second)
		assert.Contains(t, b.Get(status).Body, "It expires in about 1m.")
	})

	t.Run("over the cap: until the oldest review's place is free", func(t *testing.T) {
		env := newReviewEnv(t, nil, func(c *stepup.Config) { c.MaxChallengesPerUser, c.MaxChallengesPerSession = 1, 1 })
		b := env.NewBrowser()
		b.Login("alice")
		b.Parked(b.Do(http.MethodPost, "/review", stepuptest.Form, "x=1", nil))
		env.Clock.Advance(time.Hour)
		over := b.Do(http.MethodPost, "/review", stepuptest.Form, "x=2", nil)
		require.Equal(t, http.StatusTooManyRequests, over.StatusCode, over.Body)
		assert.Equal(t, strconv.Itoa(int((stepuptest.ReviewFor-time.Hour)/time.Second)), over.Header.Get("Retry-After"))
	})
}
