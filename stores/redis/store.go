package redisstore

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/stepupkit/stepup"
)

// Store is a stepup.Store and a stepup.Counter in Redis, shared by every
// instance of the application that uses the same Redis and key prefix. It
// is safe for concurrent use and immutable after New.
type Store struct {
	rdb     redis.UniversalClient
	prefix  string
	timeout time.Duration
	now     func() time.Time

	replicas int           // Durable: replicas that must acknowledge a state change
	wait     time.Duration // Durable: how long they may take
}

var (
	_ stepup.Spender     = (*Store)(nil)
	_ stepup.MultiGetter = (*Store)(nil)
	_ stepup.PassCounter = (*Store)(nil)
)

// Option configures a Store.
type Option func(*Store)

// Prefix sets the prefix of every key the store writes, so that several
// applications can share one Redis. Default "stepup:". A prefix with a hash
// tag ("{stepup}:") puts every key in one Cluster slot.
func Prefix(p string) Option { return func(s *Store) { s.prefix = p } }

// Timeout bounds every call to Redis: a Redis that does not answer in
// time is an error, and the guard fails closed (503). Default 2 seconds.
func Timeout(d time.Duration) Option {
	return func(s *Store) {
		if d > 0 {
			s.timeout = d
		}
	}
}

// Clock sets the clock that decides when records and counted challenges
// expire; it should be the guard's (stepup.Config.Now). Default time.Now.
// Redis also forgets every key on its own when it is no longer needed.
func Clock(now func() time.Time) Option {
	return func(s *Store) {
		if now != nil {
			s.now = now
		}
	}
}

// New returns a Store on client: a *redis.Client, a failover client for
// Sentinel, or a *redis.ClusterClient.
func New(client redis.UniversalClient, opts ...Option) *Store {
	s := &Store{rdb: client, prefix: "stepup:", timeout: 2 * time.Second, now: time.Now}
	for _, o := range opts {
		o(s)
	}
	return s
}

// A record is a hash under prefix + "r:" + id:
//
//	r  the record, as stepup.MarshalRecord encodes it
//	e  its expiry, unix nanoseconds as 20 digits (strings compare exactly)
//	c  "0" while pending, else the nonce of the Consume that took it
//	n  the nonce of the Put that wrote it
//
// The key also expires in Redis (PEXPIRE) when the record does. The nonces
// make a command that go-redis retries after a lost answer find its own
// write, rather than report ErrExists or ErrConsumed for it.

// putScript answers 1 when written, 0 when a live record has the id, -1
// when a new challenge (ARGV[7] "1") would eat into the reserve: Redis
// uses more than 7/8 of its maxmemory.
var putScript = redis.NewScript(`
local e = redis.call('HGET', KEYS[1], 'e')
if e and e > ARGV[1] then
  if redis.call('HGET', KEYS[1], 'n') == ARGV[5] then return 1 end
  return 0
end
if ARGV[7] == '1' then
  local info = redis.pcall('INFO', 'memory')
  if type(info) == 'string' then
    local used = tonumber(string.match(info, 'used_memory:(%d+)'))
    local limit = tonumber(string.match(info, 'maxmemory:(%d+)'))
    if used and limit and limit > 0 and used * 8 > limit * 7 then return -1 end
  end
end
redis.call('HSET', KEYS[1], 'r', ARGV[3], 'e', ARGV[2], 'c', ARGV[4], 'n', ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[6])
return 1
`)

var consumeScript = redis.NewScript(`
local v = redis.call('HMGET', KEYS[1], 'r', 'e', 'c')
if not v[1] or not v[2] or v[2] <= ARGV[1] then return {0} end
if v[3] ~= '0' and v[3] ~= ARGV[2] then return {1} end
redis.call('HSET', KEYS[1], 'c', ARGV[2])
return {2, v[1]}
`)

// spendScript puts a spent token (KEYS[1]) and consumes its park
// (KEYS[2]) in one step: it answers {3} when a live record has the
// token's id, {0} when the park is missing or expired, {1} when it was
// consumed, else {2, the park}. ARGV: now, the token's expiry, its
// record, the nonce of this spend, the token's ttl. A retry of the same
// spend (same nonce) finds its own writes and answers {2} again.
var spendScript = redis.NewScript(`
local e = redis.call('HGET', KEYS[1], 'e')
if e and e > ARGV[1] and redis.call('HGET', KEYS[1], 'n') ~= ARGV[4] then return {3} end
local v = redis.call('HMGET', KEYS[2], 'r', 'e', 'c')
if not v[1] or not v[2] or v[2] <= ARGV[1] then return {0} end
if v[3] ~= '0' and v[3] ~= ARGV[4] then return {1} end
redis.call('HSET', KEYS[1], 'r', ARGV[3], 'e', ARGV[2], 'c', '0', 'n', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('HSET', KEYS[2], 'c', ARGV[4])
return {2, v[1]}
`)

func (s *Store) recordKey(id string) string { return s.prefix + "r:" + id }

// stamp writes t as unix nanoseconds in 20 digits, so that Lua compares
// two of them exactly as strings.
func stamp(t time.Time) string { return fmt.Sprintf("%020d", max(t.UnixNano(), 0)) }

// ttl is how long Redis keeps a key for something that ends at end:
// whole milliseconds, rounded up, at least one.
func ttl(now, end time.Time) int64 {
	return max(1, (end.Sub(now).Nanoseconds()+int64(time.Millisecond)-1)/int64(time.Millisecond))
}

func nonce() string { return rand.Text() }

// call runs f under the store's timeout and names a failure. go-redis
// bounds a command by the client's ReadTimeout, not by the context, unless
// the client sets ContextTimeoutEnabled: call returns when the timeout
// passes whatever the client's options, and f's results are then unused.
func (s *Store) call(ctx context.Context, op string, f func(ctx context.Context) error) error {
	return s.callFor(ctx, op, s.timeout, f)
}

// callDurable is call for a state change that Durable makes wait: its
// timeout is the store's plus the WAIT's.
func (s *Store) callDurable(ctx context.Context, op string, f func(ctx context.Context) error) error {
	if !s.durable() {
		return s.call(ctx, op, f)
	}
	return s.callFor(ctx, op, s.timeout+s.wait, f)
}

func (s *Store) callFor(ctx context.Context, op string, timeout time.Duration, f func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- f(ctx) }()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		select {
		case err = <-done: // it answered after all
		default:
			err = ctx.Err()
		}
	}
	if err != nil {
		if strings.HasPrefix(err.Error(), "OOM ") {
			err = fmt.Errorf("%w: %w", stepup.ErrStoreFull, err)
		}
		return fmt.Errorf("redisstore: %s: %w", op, err)
	}
	return nil
}

// Put implements stepup.Store: one script checks that no live record has
// the id and writes the record with its expiry. A Redis out of memory is
// stepup.ErrStoreFull; so is a new challenge (KindPark, KindAPI, KindSignIn…) when Redis
// has a maxmemory and uses more than 7/8 of it: the last eighth is a
// reserve for the records that follow a passed challenge (see stepup.Store).
func (s *Store) Put(ctx context.Context, rec *stepup.Record) error {
	if rec == nil || rec.ID == "" {
		return errors.New("redisstore: put: record without id")
	}
	data, err := stepup.MarshalRecord(rec)
	if err != nil {
		return fmt.Errorf("redisstore: put: %w", err)
	}
	consumed, challenge := "0", "0"
	if rec.Consumed {
		consumed = "1"
	}
	switch rec.Kind {
	case stepup.KindPark, stepup.KindAPI, stepup.KindSignIn, stepup.KindSignInAPI, stepup.KindReview:
		challenge = "1"
	}
	now := s.now()
	var written int64
	run := s.call
	if challenge == "0" {
		run = s.callDurable // what follows a passed challenge must happen once
	}
	err = run(ctx, "put", func(ctx context.Context) error {
		var err error
		written, err = s.runScript(ctx, challenge == "0", putScript, []string{s.recordKey(rec.ID)},
			stamp(now), stamp(rec.Expires), data, consumed, nonce(), ttl(now, rec.Expires), challenge).Int64()
		return err
	})
	if err != nil {
		return err
	}
	switch written {
	case 0:
		return stepup.ErrExists
	case -1:
		return fmt.Errorf("redisstore: put: %w: no new challenges while Redis uses over 7/8 of its maxmemory", stepup.ErrStoreFull)
	}
	return nil
}

// Get implements stepup.Store with one read.
func (s *Store) Get(ctx context.Context, id string) (*stepup.Record, error) {
	var vals []any
	err := s.call(ctx, "get", func(ctx context.Context) error {
		var err error
		vals, err = s.rdb.HMGet(ctx, s.recordKey(id), "r", "c").Result()
		return err
	})
	if err != nil {
		return nil, err
	}
	data, ok := vals[0].(string)
	if !ok {
		return nil, stepup.ErrNotFound
	}
	c, _ := vals[1].(string)
	return s.decode(id, data, c != "0")
}

// GetMany implements stepup.MultiGetter: the reads of Get, in one
// pipeline (on Cluster, one per node, sent together).
func (s *Store) GetMany(ctx context.Context, ids ...string) ([]*stepup.Record, error) {
	cmds := make([]*redis.SliceCmd, len(ids))
	err := s.call(ctx, "get", func(ctx context.Context) error {
		_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, id := range ids {
				cmds[i] = p.HMGet(ctx, s.recordKey(id), "r", "c")
			}
			return nil
		})
		return err
	})
	if err != nil {
		return nil, err
	}
	out := make([]*stepup.Record, len(ids))
	for i, cmd := range cmds {
		vals := cmd.Val()
		data, ok := vals[0].(string)
		if !ok {
			continue
		}
		c, _ := vals[1].(string)
		rec, err := s.decode(ids[i], data, c != "0")
		switch {
		case errors.Is(err, stepup.ErrNotFound):
		case err != nil:
			return nil, err
		default:
			out[i] = rec
		}
	}
	return out, nil
}

// Consume implements stepup.Store: one script checks that the record is
// live and pending and marks it consumed, so that of any number of
// concurrent callers on any instance exactly one gets it.
func (s *Store) Consume(ctx context.Context, id string) (*stepup.Record, error) {
	var res []any
	err := s.callDurable(ctx, "consume", func(ctx context.Context) error {
		var err error
		res, err = s.runScript(ctx, true, consumeScript, []string{s.recordKey(id)}, stamp(s.now()), nonce()).Slice()
		return err
	})
	if err != nil {
		return nil, err
	}
	state, _ := res[0].(int64)
	switch {
	case state == 0:
		return nil, stepup.ErrNotFound
	case state == 1:
		return nil, stepup.ErrConsumed
	case len(res) != 2:
		return nil, errors.New("redisstore: consume: unexpected answer")
	}
	data, _ := res[1].(string)
	return s.decode(id, data, true)
}

// Spend implements stepup.Spender: one script puts the spent token and
// consumes its park (with Durable, acknowledged as one write). On Cluster
// the two keys are in different slots, which no script can use together:
// there Spend is a Put of the token then a Consume of the park, and a park
// that cannot be consumed has the token deleted again; of concurrent
// spends the Consume still lets exactly one through.
func (s *Store) Spend(ctx context.Context, used *stepup.Record, park string) (*stepup.Record, error) {
	if used == nil || used.ID == "" || used.Park != park || park == "" {
		return nil, errors.New("redisstore: spend: a spent token names its park")
	}
	if _, ok := s.rdb.(*redis.ClusterClient); ok {
		return s.spendApart(ctx, used, park)
	}
	data, err := stepup.MarshalRecord(used)
	if err != nil {
		return nil, fmt.Errorf("redisstore: spend: %w", err)
	}
	now := s.now()
	var res []any
	err = s.callDurable(ctx, "spend", func(ctx context.Context) error {
		var err error
		res, err = s.runScript(ctx, true, spendScript, []string{s.recordKey(used.ID), s.recordKey(park)},
			stamp(now), stamp(used.Expires), data, nonce(), ttl(now, used.Expires)).Slice()
		return err
	})
	if err != nil {
		return nil, err
	}
	state, _ := res[0].(int64)
	switch {
	case state == 0:
		return nil, stepup.ErrNotFound
	case state == 1:
		return nil, stepup.ErrConsumed
	case state == 3:
		return nil, stepup.ErrExists
	case state != 2 || len(res) != 2:
		return nil, errors.New("redisstore: spend: unexpected answer")
	}
	rec, _ := res[1].(string)
	return s.decode(park, rec, true)
}

// spendApart is Spend in two steps, for a Cluster.
func (s *Store) spendApart(ctx context.Context, used *stepup.Record, park string) (*stepup.Record, error) {
	if err := s.Put(ctx, used); err != nil {
		return nil, err
	}
	rec, err := s.Consume(ctx, park)
	if errors.Is(err, stepup.ErrNotFound) || errors.Is(err, stepup.ErrConsumed) {
		_ = s.Delete(ctx, used.ID) // a refused spend leaves nothing
	}
	return rec, err
}

// Delete implements stepup.Store.
func (s *Store) Delete(ctx context.Context, id string) error {
	return s.callDurable(ctx, "delete", func(ctx context.Context) error {
		return s.del(ctx, s.recordKey(id))
	})
}

// decode checks bytes read from Redis, which are not trusted: a record
// that does not decode, or is not the one asked for, is an error.
func (s *Store) decode(id, data string, consumed bool) (*stepup.Record, error) {
	rec, err := stepup.UnmarshalRecord([]byte(data))
	if err != nil {
		return nil, fmt.Errorf("redisstore: %w", err)
	}
	if rec.ID != id {
		return nil, errors.New("redisstore: the record under this id names another")
	}
	if !s.now().Before(rec.Expires) {
		return nil, stepup.ErrNotFound
	}
	rec.Consumed = consumed
	return rec, nil
}
