package stepuptest

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup"
)

// RunCounter runs the Counter contract (see stepup.Counter) against the
// counters that newCounter returns, each one empty, and the PassCounter
// contract when they implement it. A counter that is also
// a Store is run by RunStore too.
func RunCounter(t *testing.T, newCounter func() stepup.Counter) {
	ctx := context.Background()
	const window = 10 * time.Minute
	t0 := NewClock().Now()
	var seq atomic.Int64
	slot := func(user, session string, at time.Time) stepup.Slot {
		return stepup.Slot{ID: fmt.Sprintf("slot-%d", seq.Add(1)), User: user, Session: session, At: at, Expires: at.Add(window)}
	}
	// reserve reports whether s was counted; a refusal must say why.
	reserve := func(t *testing.T, c stepup.Counter, s stepup.Slot, perUser, perSession int) (bool, time.Duration) {
		t.Helper()
		wait, err := c.Reserve(ctx, s, perUser, perSession)
		if err != nil {
			require.ErrorIs(t, err, stepup.ErrTooManyChallenges)
			return false, wait
		}
		return true, 0
	}

	t.Run("per user: the cap holds whatever the session, and says how long to wait", func(t *testing.T) {
		c := newCounter()
		for i := range 3 {
			ok, _ := reserve(t, c, slot("alice", fmt.Sprint("s", i), t0.Add(time.Duration(i)*time.Second)), 3, 2)
			require.True(t, ok, "slot %d", i)
		}
		ok, wait := reserve(t, c, slot("alice", "", t0.Add(time.Minute)), 3, 2)
		assert.False(t, ok)
		assert.Equal(t, window-time.Minute, wait, "until the oldest slot expires")
		ok, _ = reserve(t, c, slot("bob", "", t0.Add(time.Minute)), 3, 2)
		assert.True(t, ok, "another user has a cap of its own")
	})
	t.Run("per session: below the user's cap, per user", func(t *testing.T) {
		c := newCounter()
		for i := range 2 {
			ok, _ := reserve(t, c, slot("alice", "s1", t0.Add(time.Duration(i)*time.Second)), 3, 2)
			require.True(t, ok)
		}
		ok, wait := reserve(t, c, slot("alice", "s1", t0.Add(2*time.Second)), 3, 2)
		assert.False(t, ok)
		assert.Equal(t, window-2*time.Second, wait)
		ok, _ = reserve(t, c, slot("bob", "s1", t0), 3, 2)
		assert.True(t, ok, "the same session id of another user is another session")
		ok, _ = reserve(t, c, slot("alice", "s2", t0), 3, 2)
		assert.True(t, ok, "the refusal counted nothing: alice has a third slot")
		ok, _ = reserve(t, c, slot("alice", "s3", t0), 3, 2)
		assert.False(t, ok, "alice's cap is reached")
	})
	t.Run("release gives the slot back", func(t *testing.T) {
		c := newCounter()
		a := slot("alice", "s1", t0)
		for _, s := range []stepup.Slot{a, slot("alice", "s1", t0)} {
			ok, _ := reserve(t, c, s, 2, 2)
			require.True(t, ok)
		}
		ok, _ := reserve(t, c, slot("alice", "s1", t0), 2, 2)
		require.False(t, ok)
		require.NoError(t, c.Release(ctx, a))
		ok, _ = reserve(t, c, slot("alice", "s1", t0), 2, 2)
		assert.True(t, ok, "user and session caps both gave it back")
		assert.NoError(t, c.Release(ctx, slot("alice", "s1", t0)), "releasing a slot not counted is no error")
		assert.NoError(t, c.Release(ctx, slot("nobody", "", t0)))
		ok, _ = reserve(t, c, slot("alice", "s1", t0), 2, 2)
		assert.False(t, ok, "releasing an unknown slot gave nothing back")
	})
	t.Run("a slot counts until it expires, not a moment longer", func(t *testing.T) {
		c := newCounter()
		ok, _ := reserve(t, c, slot("alice", "s1", t0), 1, 1)
		require.True(t, ok)
		ok, wait := reserve(t, c, slot("alice", "s2", t0.Add(window-time.Millisecond)), 1, 1)
		assert.False(t, ok)
		assert.Equal(t, time.Millisecond, wait)
		ok, _ = reserve(t, c, slot("alice", "s1", t0.Add(window)), 1, 1)
		assert.True(t, ok, "the first slot expired for user and session")
	})
	t.Run("attach counts a slot for the session made for it", func(t *testing.T) {
		c := newCounter()
		s := slot("alice", "", t0)
		ok, _ := reserve(t, c, s, 5, 2)
		require.True(t, ok)
		require.NoError(t, c.Attach(ctx, s, "new"))
		ok, _ = reserve(t, c, slot("alice", "new", t0.Add(time.Second)), 5, 2)
		require.True(t, ok)
		ok, wait := reserve(t, c, slot("alice", "new", t0.Add(2*time.Second)), 5, 2)
		assert.False(t, ok, "the attached slot counts for the session")
		assert.Equal(t, window-2*time.Second, wait, "from when it was reserved")
		ok, _ = reserve(t, c, slot("bob", "new", t0), 5, 2)
		assert.True(t, ok, "for alice's session only")
		ok, _ = reserve(t, c, slot("alice", "new", t0.Add(window)), 5, 2)
		assert.True(t, ok, "and expires with the slot")
	})
	t.Run("an attached slot that expires before the session's own stops counting first", func(t *testing.T) {
		c := newCounter()
		old := slot("alice", "", t0)
		ok, _ := reserve(t, c, old, 5, 2)
		require.True(t, ok)
		ok, _ = reserve(t, c, slot("alice", "s1", t0.Add(time.Minute)), 5, 2)
		require.True(t, ok)
		require.NoError(t, c.Attach(ctx, old, "s1"))
		ok, _ = reserve(t, c, slot("alice", "s1", t0.Add(window)), 5, 2)
		assert.True(t, ok, "the attached slot expired; the session's own still counts")
		ok, wait := reserve(t, c, slot("alice", "s1", t0.Add(window)), 5, 2)
		assert.False(t, ok)
		assert.Equal(t, time.Minute, wait, "until the session's own slot expires")
	})
	t.Run("buckets are apart: a user and a session have a count in each", func(t *testing.T) {
		c := newCounter()
		in := func(bucket string, s stepup.Slot) stepup.Slot { s.Bucket = bucket; return s }
		first := in("", slot("alice", "s1", t0))
		for _, s := range []stepup.Slot{first, in("", slot("alice", "s2", t0))} {
			ok, _ := reserve(t, c, s, 2, 1)
			require.True(t, ok)
		}
		ok, _ := reserve(t, c, in("", slot("alice", "s3", t0)), 2, 1)
		require.False(t, ok, "alice's cap is reached in the bucket \"\"")
		ok, _ = reserve(t, c, in("signin", slot("alice", "s1", t0)), 2, 1)
		assert.True(t, ok, "another bucket: neither alice's nor s1's count of \"\" is in the way")
		ok, wait := reserve(t, c, in("signin", slot("alice", "s1", t0.Add(time.Second))), 2, 1)
		assert.False(t, ok, "s1 has its cap in the bucket signin too")
		assert.Equal(t, window-time.Second, wait)
		ok, _ = reserve(t, c, in("signin", slot("alice", "s2", t0)), 2, 1)
		assert.True(t, ok)
		ok, _ = reserve(t, c, in("signin", slot("alice", "s3", t0)), 2, 1)
		assert.False(t, ok, "and alice hers")
		ok, _ = reserve(t, c, in("signin+established", slot("alice", "s1", t0)), 2, 1)
		assert.True(t, ok, "a third bucket")

		// Release and Attach act in the slot's bucket only.
		require.NoError(t, c.Release(ctx, in("signin", first)))
		ok, _ = reserve(t, c, in("", slot("alice", "s3", t0)), 2, 1)
		assert.False(t, ok, "released in another bucket: nothing given back")
		require.NoError(t, c.Release(ctx, first))
		s4 := in("", slot("alice", "", t0))
		ok, _ = reserve(t, c, s4, 2, 1)
		require.True(t, ok, "released in its bucket: given back")
		require.NoError(t, c.Attach(ctx, s4, "s9"))
		ok, _ = reserve(t, c, in("signin", slot("alice", "s9", t0)), 2, 2)
		assert.False(t, ok, "alice's signin cap, not s9's")
		ok, _ = reserve(t, c, in("other", slot("alice", "s9", t0)), 2, 1)
		assert.True(t, ok, "attached in its bucket only")
		ok, _ = reserve(t, c, in("", slot("bob", "s9", t0)), 2, 1)
		assert.True(t, ok, "for alice only")
	})
	t.Run("a bucket's name is not a prefix of the user or session", func(t *testing.T) {
		c := newCounter()
		ok, _ := reserve(t, c, stepup.Slot{ID: "x1", User: "b\x00alice", Bucket: "a", At: t0, Expires: t0.Add(window)}, 1, 1)
		require.True(t, ok)
		ok, _ = reserve(t, c, stepup.Slot{ID: "x2", User: "alice", Bucket: "a\x00b", At: t0, Expires: t0.Add(window)}, 1, 1)
		assert.True(t, ok, "bucket a, user b\\0alice is not bucket a\\0b, user alice")
		ok, _ = reserve(t, c, stepup.Slot{ID: "x3", User: "1:a\x00alice", At: t0, Expires: t0.Add(window)}, 1, 1)
		assert.True(t, ok)
	})
	t.Run("pass moves a passed slot in one step (PassCounter)", func(t *testing.T) {
		c, ok := newCounter().(stepup.PassCounter)
		if !ok {
			t.Skip("the counter does not implement stepup.PassCounter")
		}
		in := func(bucket string, s stepup.Slot) stepup.Slot { s.Bucket = bucket; return s }
		open := func(session string) stepup.Slot {
			t.Helper()
			s := slot("alice", session, t0)
			ok, _ := reserve(t, c, s, 2, 2)
			require.True(t, ok)
			return s
		}
		passed := func(s stepup.Slot, at time.Time) stepup.Slot {
			return stepup.Slot{ID: s.ID, User: s.User, Bucket: "+passed", At: at, Expires: at.Add(window)}
		}
		a, b := open("s1"), open("s1")
		ok, _ = reserve(t, c, slot("alice", "s2", t0), 2, 2)
		require.False(t, ok, "alice's cap is reached")
		require.NoError(t, c.Pass(ctx, passed(a, t0), 2, []stepup.Slot{a, in("+established", a)}))
		e := slot("alice", "s1", t0)
		ok, _ = reserve(t, c, e, 2, 2)
		assert.True(t, ok, "a's slot was given back to alice and to s1")
		ok, _ = reserve(t, c, slot("alice", "s3", t0), 2, 2)
		assert.False(t, ok, "one slot only")

		require.NoError(t, c.Pass(ctx, passed(b, t0.Add(time.Second)), 2, []stepup.Slot{b}))
		d := slot("alice", "s2", t0)
		ok, _ = reserve(t, c, d, 2, 2)
		require.True(t, ok, "b's slot was given back")
		err := c.Pass(ctx, passed(d, t0.Add(2*time.Second)), 2, []stepup.Slot{d})
		require.ErrorIs(t, err, stepup.ErrTooManyChallenges, "the ceiling of passed slots is reached")
		ok, _ = reserve(t, c, slot("alice", "s5", t0), 2, 2)
		assert.False(t, ok, "a refused pass released nothing: d and e still count")
		ok, _ = reserve(t, c, in("+passed", slot("alice", "", t0.Add(2*time.Second))), 2, 2)
		assert.False(t, ok, "and counted nothing: the passed bucket holds a and b")
		require.NoError(t, c.Pass(ctx, passed(d, t0.Add(window)), 2, []stepup.Slot{d}),
			"passed slots count until they expire, not a moment longer: a's is gone")
		ok, _ = reserve(t, c, slot("alice", "s5", t0.Add(window-time.Millisecond)), 2, 2)
		assert.True(t, ok, "d was given back")
		ok, _ = reserve(t, c, slot("bob", "s1", t0), 1, 1)
		assert.True(t, ok, "bob's counts were never touched")
	})
	t.Run("concurrent reserves never get past a cap", func(t *testing.T) {
		for _, tc := range []struct {
			name    string
			session func(i int) string
			expect  int
		}{
			{"one session", func(int) string { return "s1" }, 3},
			{"a session each", func(i int) string { return fmt.Sprint("s", i) }, 5},
			{"no session", func(int) string { return "" }, 5},
		} {
			t.Run(tc.name, func(t *testing.T) {
				c := newCounter()
				var wins atomic.Int32
				var wg sync.WaitGroup
				start := make(chan struct{})
				for i := range 24 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						<-start
						wait, err := c.Reserve(ctx, slot("alice", tc.session(i), t0), 5, 3)
						if err == nil {
							wins.Add(1)
							return
						}
						assert.ErrorIs(t, err, stepup.ErrTooManyChallenges)
						assert.Equal(t, window, wait)
					}()
				}
				close(start)
				wg.Wait()
				assert.Equal(t, int32(tc.expect), wins.Load())
			})
		}
	})
}
