package redisstore_test

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup"
	"github.com/stepupkit/stepup/stepuptest"
	redisstore "github.com/stepupkit/stepup/stores/redis"
)

// TestDurableContract: a durable store on a primary with one replica keeps
// the Store contract, and two guards on it run a parked request once.
func TestDurableContract(t *testing.T) {
	primary := serverT(t)
	replicaT(t, primary.addr())
	c := primary.client()
	t.Cleanup(func() { c.Close() })
	durable := redisstore.Durable(1, 2*time.Second)
	stepuptest.RunStore(t, func(now func() time.Time) stepup.Store {
		return redisstore.New(c, freshPrefix(), redisstore.Clock(now), durable)
	})
	stepuptest.RunShared(t, muxApp, func(now func() time.Time) stepup.Store {
		return redisstore.New(c, freshPrefix(), redisstore.Clock(now), durable)
	})
}

// TestDurableWithoutAcknowledgement: with no replica to acknowledge, every
// write that must happen once is an error naming ErrNotReplicated, after
// the WAIT's timeout; new challenges and the counter do not wait. The
// Consume that was not acknowledged still took the park on this primary:
// the park is ended, not run and not runnable.
func TestDurableWithoutAcknowledgement(t *testing.T) {
	srv := serverT(t)
	c := srv.client()
	t.Cleanup(func() { c.Close() })
	ctx := context.Background()
	now := time.Now()
	durable := redisstore.New(c, redisstore.Durable(1, 50*time.Millisecond))
	plain := redisstore.New(c)

	start := time.Now()
	require.NoError(t, durable.Put(ctx, park(now, "p1")), "a new challenge does not wait")
	_, err := durable.Reserve(ctx, stepup.Slot{ID: "s1", User: "alice", At: now, Expires: now.Add(time.Minute)}, 3, 3)
	require.NoError(t, err, "the counter does not wait")
	assert.Less(t, time.Since(start), 50*time.Millisecond)

	for _, tc := range []struct {
		name string
		when func() error
	}{
		{"consume", func() error { _, err := durable.Consume(ctx, "p1"); return err }},
		{"a spent token", func() error {
			return durable.Put(ctx, &stepup.Record{ID: "u1", Kind: stepup.KindUsed, Park: "p1", Created: now, Expires: now.Add(time.Minute)})
		}},
		{"a grant", func() error {
			return durable.Put(ctx, &stepup.Record{ID: "g1", Kind: stepup.KindGrant, UserID: "alice", Park: "p1", Created: now, Expires: now.Add(time.Minute)})
		}},
		{"delete", func() error { return durable.Delete(ctx, "nothing") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			err := tc.when()
			assert.ErrorIs(t, err, redisstore.ErrNotReplicated)
			assert.ErrorContains(t, err, "redisstore: ")
			assert.ErrorContains(t, err, "0 of 1 within 50ms")
			assert.GreaterOrEqual(t, time.Since(start), 50*time.Millisecond, "it waited for the replica")
		})
	}
	_, err = plain.Consume(ctx, "p1")
	assert.ErrorIs(t, err, stepup.ErrConsumed, "the unacknowledged Consume ended the park on this primary")
	_, err = plain.Get(ctx, "g1")
	assert.NoError(t, err, "the write happened; only its acknowledgement is missing")
}

// TestFailoverLosesConsume measures what Durable is for. A primary, its
// replica behind a link the test can partition, three Sentinels. A park
// is put and replicated; the link is partitioned; the park is consumed on
// the primary (the guard would run the request); the primary dies and the
// Sentinels promote the replica, which never saw the Consume; the callback
// comes again, once a new replica follows the new primary. Without
// Durable the park is consumed twice: the request runs twice. With Durable
// the first Consume is not acknowledged, so it is an error (the guard
// answers 503 and runs nothing), and the request runs once, after the
// failover.
func TestFailoverLosesConsume(t *testing.T) {
	for _, tc := range []struct {
		name       string
		opts       []redisstore.Option
		executions int
	}{
		{"without Durable the request runs twice", nil, 2},
		{"with Durable it runs once", []redisstore.Option{redisstore.Durable(1, 200*time.Millisecond)}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			primary := serverT(t)
			link := newLinkProxy(t, primary.addr())
			replica := replicaT(t, link.addr())
			sentinels := sentinelsT(t, primary.addr(), 3, 1)
			client := failoverClient(t, sentinels)
			store := redisstore.New(client, append(tc.opts, redisstore.Timeout(3*time.Second))...)
			ctx := context.Background()
			now := time.Now()

			require.NoError(t, store.Put(ctx, park(now, "p1")))
			rc := replica.client()
			t.Cleanup(func() { rc.Close() })
			require.Eventually(t, func() bool { return rc.Exists(ctx, "stepup:r:p1").Val() == 1 },
				5*time.Second, 10*time.Millisecond, "the park reached the replica")

			executions := 0
			link.frozen.Store(true)
			_, err := store.Consume(ctx, "p1")
			if err == nil {
				executions++
			} else {
				assert.ErrorIs(t, err, redisstore.ErrNotReplicated)
			}
			primary.kill()
			link.cut()
			require.Equal(t, replica.addr(), awaitSwitch(t, sentinels, primary.addr(), 0, client))
			replicaT(t, replica.addr()) // redundancy restored, as Durable needs
			awaitSwitch(t, sentinels, primary.addr(), 1, client)

			_, err = store.Consume(ctx, "p1") // the callback, again
			if err == nil {
				executions++
			} else {
				assert.ErrorIs(t, err, stepup.ErrConsumed)
			}
			assert.Equal(t, tc.executions, executions)
		})
	}
}

// pausedConsume is a durable Store whose next successful Consume, once
// armed, waits for the test before it returns: the test fails over between
// the Consume and the replay that follows it.
type pausedConsume struct {
	*redisstore.Store
	hook *consumeHook
}

type consumeHook struct {
	armed    atomic.Bool
	consumed chan struct{}
	resume   chan struct{}
}

func (s pausedConsume) Consume(ctx context.Context, id string) (*stepup.Record, error) {
	return s.paused(s.Store.Consume(ctx, id))
}

// Spend is the Consume of a callback (stepup.Spender): the embedded
// Store's would go around the hook.
func (s pausedConsume) Spend(ctx context.Context, used *stepup.Record, park string) (*stepup.Record, error) {
	return s.paused(s.Store.Spend(ctx, used, park))
}

func (s pausedConsume) paused(rec *stepup.Record, err error) (*stepup.Record, error) {
	if err == nil && s.hook.armed.CompareAndSwap(true, false) {
		s.hook.consumed <- struct{}{}
		<-s.hook.resume
	}
	return rec, err
}

// TestSentinelFailoverDuringFlows drives browser flows through two guards
// on a durable store behind Sentinel (a primary, two replicas, three
// Sentinels), and forces a failover (SENTINEL FAILOVER) at every step of
// each: after the challenge, between the callback's Consume and its replay,
// and after the callback. Every parked request runs exactly once, and the
// refresh after the failover shows its kept answer.
func TestSentinelFailoverDuringFlows(t *testing.T) {
	primary := serverT(t)
	replicaT(t, primary.addr())
	replicaT(t, primary.addr())
	sentinels := sentinelsT(t, primary.addr(), 3, 2)
	client := failoverClient(t, sentinels)
	hook := &consumeHook{consumed: make(chan struct{}), resume: make(chan struct{})}
	o := stepuptest.Options{
		Store: func(now func() time.Time) stepup.Store {
			return pausedConsume{redisstore.New(client, redisstore.Clock(now), redisstore.Durable(1, time.Second),
				redisstore.Timeout(3*time.Second)), hook}
		},
		Config: func(c *stepup.Config) { c.ProviderTimeout = 15 * time.Second },
	}
	env := stepuptest.NewEnv(t, muxApp, o)
	other := env.Instance(muxApp, o)
	current, failovers := primary.addr(), 0
	failover := func() {
		t.Helper()
		start := time.Now()
		sc := redis.NewSentinelClient(&redis.Options{Addr: sentinels[failovers%len(sentinels)].addr()})
		defer sc.Close()
		failovers++ // a Sentinel starts one failover of a primary per two failover-timeouts: take turns
		require.Eventually(t, func() bool { return sc.Failover(context.Background(), "mymaster").Err() == nil },
			20*time.Second, 50*time.Millisecond, "SENTINEL FAILOVER")
		next := awaitSwitch(t, sentinels, current, 1, client)
		t.Logf("failover %d, %s to %s: %s", failovers, current, next, time.Since(start))
		current = next
	}
	const flows = 2
	for i := range flows {
		b := env.NewBrowser()
		b.Login("alice")
		challenge := b.Challenge(b.Do(http.MethodPost, "/transfer", stepuptest.Form, "amount=5000&to=bob", nil))
		failover()
		cb := b.Complete(challenge)

		hook.armed.Store(true)
		answered := make(chan *stepuptest.Response, 1)
		go func() { answered <- b.Get(stepuptest.OnInstance(cb, other)) }()
		select {
		case <-hook.consumed:
		case <-time.After(30 * time.Second):
			t.Fatal("the callback did not consume the park")
		}
		failover() // consumed on the old primary, replayed after the switch
		hook.resume <- struct{}{}
		resp := <-answered
		require.Equal(t, http.StatusOK, resp.StatusCode, resp.Body)
		assert.Equal(t, "done: transfer POST /transfer amount=5000&to=bob", resp.Body)

		failover()
		again := b.Get(stepuptest.OnInstance(cb, env.Server))
		assert.Equal(t, resp.Body, again.Body, "the refresh shows the kept answer")
		assert.Len(t, env.Ledger.Runs("transfer"), i+1, "each parked request ran once")
	}
	assert.Equal(t, 3*flows, failovers)
}
