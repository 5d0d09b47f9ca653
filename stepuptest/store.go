package stepuptest

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stepupkit/stepup/stepuptest/internal/assert"
	"github.com/stepupkit/stepup/stepuptest/internal/require"

	"github.com/stepupkit/stepup"
)

// RunStore runs the Store contract (see stepup.Store) against the stores
// that newStore returns; each must use now as its clock.
func RunStore(t *testing.T, newStore func(now func() time.Time) stepup.Store) {
	ctx := context.Background()
	rec := func(clock *Clock, id string) *stepup.Record {
		return &stepup.Record{
			ID: id, Kind: stepup.KindPark, UserID: "alice", Action: "transfer", Method: http.MethodPost,
			Path: "/transfer", Query: "a=1", Header: http.Header{"Content-Type": {"application/x-www-form-urlencoded"}},
			Body: []byte("amount=5000"), BodyHash: []byte("fedcba9876543210fedcba9876543210"),
			Shown:   [][]byte{[]byte("0123456789abcdef0123456789abcdef")},
			Created: clock.Now(), Expires: clock.Now().Add(time.Minute),
		}
	}

	t.Run("put then get returns an equal copy", func(t *testing.T) {
		clock := NewClock()
		s := newStore(clock.Now)
		in := rec(clock, "a")
		require.NoError(t, s.Put(ctx, in))
		in.Body[0] = 'X' // the store must not keep the caller's memory
		in.Header.Set("Content-Type", "changed")
		in.Shown[0][0] = 'X'
		in.BodyHash[0] = 'X'
		got, err := s.Get(ctx, "a")
		require.NoError(t, err)
		assert.Equal(t, "amount=5000", string(got.Body))
		assert.Equal(t, "application/x-www-form-urlencoded", got.Header.Get("Content-Type"))
		assert.Equal(t, "/transfer", got.Path)
		assert.Equal(t, [][]byte{[]byte("0123456789abcdef0123456789abcdef")}, got.Shown)
		assert.Equal(t, "fedcba9876543210fedcba9876543210", string(got.BodyHash))
		assert.True(t, got.Expires.Equal(clock.Now().Add(time.Minute)))
		assert.False(t, got.Consumed)
		got.Body[0] = 'Y'
		got.Shown[0][0] = 'Y'
		again, err := s.Get(ctx, "a")
		require.NoError(t, err)
		assert.Equal(t, "amount=5000", string(again.Body))
		assert.Equal(t, byte('0'), again.Shown[0][0])
	})
	t.Run("missing is ErrNotFound", func(t *testing.T) {
		s := newStore(NewClock().Now)
		_, err := s.Get(ctx, "nope")
		assert.ErrorIs(t, err, stepup.ErrNotFound)
		_, err = s.Consume(ctx, "nope")
		assert.ErrorIs(t, err, stepup.ErrNotFound)
		assert.NoError(t, s.Delete(ctx, "nope"))
	})
	t.Run("put never overwrites", func(t *testing.T) {
		clock := NewClock()
		s := newStore(clock.Now)
		require.NoError(t, s.Put(ctx, rec(clock, "a")))
		other := rec(clock, "a")
		other.UserID = "mallory"
		assert.ErrorIs(t, s.Put(ctx, other), stepup.ErrExists)
		got, err := s.Get(ctx, "a")
		require.NoError(t, err)
		assert.Equal(t, "alice", got.UserID)
	})
	t.Run("consume once", func(t *testing.T) {
		clock := NewClock()
		s := newStore(clock.Now)
		require.NoError(t, s.Put(ctx, rec(clock, "a")))
		got, err := s.Consume(ctx, "a")
		require.NoError(t, err)
		assert.True(t, got.Consumed)
		assert.Equal(t, "amount=5000", string(got.Body))
		_, err = s.Consume(ctx, "a")
		assert.ErrorIs(t, err, stepup.ErrConsumed)
		after, err := s.Get(ctx, "a")
		require.NoError(t, err)
		assert.True(t, after.Consumed, "a consumed record stays readable until it expires")
	})
	t.Run("expiry is exact", func(t *testing.T) {
		clock := NewClock()
		s := newStore(clock.Now)
		require.NoError(t, s.Put(ctx, rec(clock, "a")))
		clock.Advance(time.Minute - time.Millisecond)
		_, err := s.Get(ctx, "a")
		require.NoError(t, err)
		clock.Advance(time.Millisecond)
		_, err = s.Get(ctx, "a")
		assert.ErrorIs(t, err, stepup.ErrNotFound)
		_, err = s.Consume(ctx, "a")
		assert.ErrorIs(t, err, stepup.ErrNotFound)
		assert.NoError(t, s.Put(ctx, rec(clock, "a")), "an expired id can be used again")
	})
	t.Run("delete", func(t *testing.T) {
		clock := NewClock()
		s := newStore(clock.Now)
		require.NoError(t, s.Put(ctx, rec(clock, "a")))
		require.NoError(t, s.Delete(ctx, "a"))
		_, err := s.Get(ctx, "a")
		assert.ErrorIs(t, err, stepup.ErrNotFound)
	})
	t.Run("concurrent consume: exactly one winner", func(t *testing.T) {
		clock := NewClock()
		s := newStore(clock.Now)
		for round := range 20 {
			id := fmt.Sprintf("r%d", round)
			require.NoError(t, s.Put(ctx, rec(clock, id)))
			var wins, consumed atomic.Int32
			var wg sync.WaitGroup
			start := make(chan struct{})
			for range 16 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					_, err := s.Consume(ctx, id)
					switch {
					case err == nil:
						wins.Add(1)
					case assert.ErrorIs(t, err, stepup.ErrConsumed):
						consumed.Add(1)
					}
				}()
			}
			close(start)
			wg.Wait()
			require.Equal(t, int32(1), wins.Load(), "round %d", round)
			require.Equal(t, int32(15), consumed.Load())
		}
	})
	t.Run("concurrent put of one id: exactly one winner", func(t *testing.T) {
		clock := NewClock()
		s := newStore(clock.Now)
		var wins atomic.Int32
		var wg sync.WaitGroup
		start := make(chan struct{})
		for range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				if s.Put(ctx, rec(clock, "same")) == nil {
					wins.Add(1)
				}
			}()
		}
		close(start)
		wg.Wait()
		assert.Equal(t, int32(1), wins.Load())
	})
}
