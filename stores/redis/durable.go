package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrNotReplicated is returned, wrapped, by a write of a durable Store
// (see Durable) that fewer replicas than asked acknowledged in time. The
// write happened on the primary and may or may not survive a failover;
// the guard treats it as any store failure: it answers 503 with
// Retry-After, runs nothing and records nothing as done.
var ErrNotReplicated = errors.New("redisstore: write not acknowledged by enough replicas")

// Durable makes every state change that must happen once wait, before it
// returns success, until replicas replicas acknowledge it (Redis WAIT),
// at most timeout: a Consume, the spend of a token (its KindUsed record),
// a kept answer, a pass or a Remember grant, and a Delete (a park ended
// for another session stays ended). A write that fewer replicas
// acknowledged in time returns an error wrapping ErrNotReplicated. New
// challenges and the challenge counter do not wait: losing one in a
// failover makes a user start again or lets one challenge more through
// the caps, never runs a request twice. replicas < 1 turns Durable off.
//
// The store's Timeout bounds each durable write plus its timeout. The
// client's ReadTimeout (default 3 seconds) must exceed timeout, or
// go-redis gives up on the WAIT first (also an error: nothing is lost,
// the write just is not called durable).
func Durable(replicas int, timeout time.Duration) Option {
	return func(s *Store) {
		s.replicas, s.wait = replicas, timeout
		if timeout <= 0 {
			s.wait = time.Second // WAIT 0 would block until the replicas answer
		}
	}
}

func (s *Store) durable() bool { return s.replicas > 0 }

// runScript runs script for a state change. Durable, it sends the script
// and WAIT in one pipeline on one connection of the primary that holds
// keys[0] (WAIT waits for the writes of its own connection), so the
// acknowledgement costs one more command, not one more round trip through
// go-redis's pool; Redis answers WAIT once the replicas confirm, so the
// write takes one replication round trip longer.
func (s *Store) runScript(ctx context.Context, durable bool, script *redis.Script, keys []string, args ...any) *redis.Cmd {
	if !durable || !s.durable() {
		return script.Run(ctx, s.rdb, keys, args...)
	}
	run := redis.NewCmd(ctx)
	err := s.durableWrite(ctx, keys[0], func(p redis.Pipeliner, eval bool) redis.Cmder {
		if eval {
			run = script.Eval(ctx, p, keys, args...)
		} else {
			run = script.EvalSha(ctx, p, keys, args...)
		}
		return run
	})
	if err != nil && run.Err() == nil {
		run.SetErr(err)
	}
	return run
}

// del deletes key, durable when the store is.
func (s *Store) del(ctx context.Context, key string) error {
	if !s.durable() {
		return s.rdb.Del(ctx, key).Err()
	}
	return s.durableWrite(ctx, key, func(p redis.Pipeliner, _ bool) redis.Cmder { return p.Del(ctx, key) })
}

// durableWrite runs write and WAIT on the primary that holds key. It
// sends the whole script when the primary does not have it yet (NOSCRIPT),
// and on Cluster follows a slot that moved (MOVED) or is moving (ASK,
// with ASKING first), as go-redis does for commands it routes itself; a
// few attempts at most.
func (s *Store) durableWrite(ctx context.Context, key string, write func(p redis.Pipeliner, eval bool) redis.Cmder) error {
	c, err := s.primary(ctx, key)
	if err != nil {
		return err
	}
	asking, eval := false, false
	for range 4 {
		err = s.waited(ctx, c, asking, func(p redis.Pipeliner) redis.Cmder { return write(p, eval) })
		if err == nil {
			return nil
		}
		if !eval && redis.HasErrorPrefix(err, "NOSCRIPT") {
			eval = true
			continue
		}
		f := strings.Fields(err.Error())
		if len(f) != 3 || (f[0] != "MOVED" && f[0] != "ASK") {
			return err
		}
		asking = f[0] == "ASK"
		if cc, ok := s.rdb.(*redis.ClusterClient); ok && !asking {
			cc.ReloadState(ctx) // the slot has moved for good: tell go-redis too
		}
		if c, err = s.node(ctx, f[2]); err != nil {
			return err
		}
	}
	return err
}

// waited runs write and WAIT in one pipeline, after ASKING if asking. Its
// error is the write's, else the WAIT's, else ErrNotReplicated when too
// few replicas answered.
func (s *Store) waited(ctx context.Context, c redis.Cmdable, asking bool, write func(redis.Pipeliner) redis.Cmder) error {
	var run redis.Cmder
	var acks *redis.Cmd
	_, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
		if asking {
			p.Do(ctx, "asking")
		}
		run = write(p)
		acks = p.Do(ctx, "wait", s.replicas, s.wait.Milliseconds())
		return nil
	})
	switch {
	case run == nil || acks == nil:
		return err
	case run.Err() != nil:
		return run.Err()
	}
	n, werr := acks.Int64()
	if werr != nil {
		return fmt.Errorf("wait: %w", werr)
	}
	if n < int64(s.replicas) {
		return fmt.Errorf("%w: %d of %d within %s", ErrNotReplicated, n, s.replicas, s.wait)
	}
	return err
}

// node is the Cluster master at addr, which a redirect named.
func (s *Store) node(ctx context.Context, addr string) (redis.Cmdable, error) {
	cc, ok := s.rdb.(*redis.ClusterClient)
	if !ok {
		return nil, fmt.Errorf("redirected to %s outside a Cluster", addr)
	}
	var mu sync.Mutex
	var found *redis.Client
	err := cc.ForEachMaster(ctx, func(_ context.Context, c *redis.Client) error {
		if c.Options().Addr == addr {
			mu.Lock()
			found = c
			mu.Unlock()
		}
		return nil
	})
	if found == nil {
		if err == nil {
			err = fmt.Errorf("no master at %s", addr)
		}
		cc.ReloadState(ctx)
		return nil, err
	}
	return found, nil
}

// primary is the client that reaches the primary holding key on one
// connection per pipeline: the client itself, or on Cluster the node's.
func (s *Store) primary(ctx context.Context, key string) (redis.Cmdable, error) {
	if cc, ok := s.rdb.(*redis.ClusterClient); ok {
		return cc.MasterForKey(ctx, key)
	}
	return s.rdb, nil
}
