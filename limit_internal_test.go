package stepup

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Sign-in and step-up, established sessions and other clients: four
// counts of one user, each with both caps, and a passed challenge leaves
// the one it was in, whichever that was.
func TestCapBucketsAreApart(t *testing.T) {
	now := time.Unix(1_795_000_000, 0)
	g := &Guard{cfg: Config{MaxChallengesPerUser: 1, MaxChallengesPerSession: 1, ParkTTL: 10 * time.Minute,
		Now: func() time.Time { return now }}, limiter: newParkLimiter()}
	r := httptest.NewRequest(http.MethodPost, "/transfer", nil)
	reserve := func(kind string, established bool, id string) int {
		t.Helper()
		w := httptest.NewRecorder()
		if _, e := g.reserveIn(w, r, capBucket(kind, established), id, "alice", "s1"); e != nil {
			return e.Status
		}
		return http.StatusOK
	}
	buckets := map[string]bool{}
	for _, kind := range []string{kindStepUp, kindSignIn} {
		for _, established := range []bool{false, true} {
			buckets[capBucket(kind, established)] = true
			id := fmt.Sprint(kind, "-", established)
			assert.Equal(t, http.StatusOK, reserve(kind, established, id), "%q %t", kind, established)
			assert.Equal(t, http.StatusTooManyRequests, reserve(kind, established, id+"-second"), "%q %t", kind, established)
		}
	}
	assert.Len(t, buckets, 4, "four distinct buckets")

	// A step-up challenge opened before its session was established,
	// passed after: released from the bucket it was counted in, whichever.
	g.releasePassed(context.Background(), kindStepUp, "-false", "alice", "s1")
	assert.Equal(t, http.StatusOK, reserve(kindStepUp, false, "again"))
	assert.Equal(t, http.StatusTooManyRequests, reserve(kindStepUp, true, "again"), "the established count is untouched")
	assert.Equal(t, http.StatusTooManyRequests, reserve(kindSignIn, false, "again"), "the sign-in count is untouched")
	g.releasePassed(context.Background(), kindStepUp, "-true", "alice", "s1")
	assert.Equal(t, http.StatusOK, reserve(kindStepUp, true, "again2"))

	st := &sessionState{}
	require.False(t, st.established(now))
	st.establish(now)
	assert.True(t, st.established(now.Add(establishedFor-time.Second)))
	assert.False(t, st.established(now.Add(establishedFor)))
	var none *sessionState
	assert.False(t, none.established(now), "no guard cookie: not established")
}

// Passed challenges give their slot back up to passedPerUser times
// MaxChallengesPerUser per ParkTTL; beyond that they count as unpassed
// ones do, until they expire.
func TestPassedChallengesHaveACeiling(t *testing.T) {
	now := time.Unix(1_795_000_000, 0)
	g := &Guard{cfg: Config{MaxChallengesPerUser: 2, MaxChallengesPerSession: 1, ParkTTL: 10 * time.Minute,
		Now: func() time.Time { return now }}, limiter: newParkLimiter()}
	r := httptest.NewRequest(http.MethodPost, "/transfer", nil)
	open := func(id string) int {
		t.Helper()
		if _, e := g.reserveIn(httptest.NewRecorder(), r, capBucket(kindStepUp, true), id, "alice", "s1"); e != nil {
			return e.Status
		}
		return http.StatusOK
	}
	for i := range passedPerUser * 2 {
		id := fmt.Sprint("p", i)
		require.Equal(t, http.StatusOK, open(id), "passed %d", i)
		g.releasePassed(context.Background(), kindStepUp, id, "alice", "s1")
	}
	require.Equal(t, http.StatusOK, open("over"))
	g.releasePassed(context.Background(), kindStepUp, "over", "alice", "s1")
	assert.Equal(t, http.StatusTooManyRequests, open("next"), "past the ceiling a passed challenge counts")
	for i := range 2 { // sign-in's ceiling is its own: its passes still give their slot back
		id := fmt.Sprint("signin", i)
		_, e := g.reserveIn(httptest.NewRecorder(), r, capBucket(kindSignIn, true), id, "alice", "s1")
		require.Nil(t, e, "sign-in %d", i)
		g.releasePassed(context.Background(), kindSignIn, id, "alice", "s1")
	}
	now = now.Add(10 * time.Minute)
	assert.Equal(t, http.StatusOK, open("later"), "until it expires")
	g.releasePassed(context.Background(), kindStepUp, "later", "alice", "s1")
	assert.Equal(t, http.StatusOK, open("later2"), "and the ceiling is a window of ParkTTL")
}
