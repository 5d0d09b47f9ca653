package redisstore

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/stepupkit/stepup"
)

// The challenges of a user are a sorted set under
// prefix + "c:{" + hash(user) + "}:u", and those of one session of the
// user one under the same tag + ":s:" + hash(user, session); in a bucket
// other than "" (stepup.Slot.Bucket), ":b:" + hash(bucket) follows the
// tag of both: the slot ids,
// scored by when they expire in unix milliseconds (rounded up, so that a
// slot never stops counting early). The shared tag keeps both in one
// Cluster slot for the scripts; the hashes keep user and session ids out of
// Redis. Each set expires in Redis when its last slot does.

// luaFull is the Lua function the counting scripts share: full(key, cap)
// drops the expired slots of key and, when cap slots remain, answers the
// score of the oldest one in the way, else false.
const luaFull = `local function full(key, cap)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', ARGV[1])
  local n = redis.call('ZCARD', key)
  if n >= cap then
    return redis.call('ZRANGE', key, n - cap, n - cap, 'WITHSCORES')[2]
  end
  return false
end
`

// reserveScript trims the expired slots, checks both caps and counts the
// slot, in one step. KEYS: user set[, session set]. ARGV: now, expiry
// (score), slot id, per-user cap, per-session cap, ttl. It answers {1}
// when counted, else {0, the score of the oldest slot in the way}.
var reserveScript = redis.NewScript(luaFull + `
local w = full(KEYS[1], tonumber(ARGV[4]))
if not w and #KEYS > 1 then w = full(KEYS[2], tonumber(ARGV[5])) end
if w then return {0, tostring(w)} end
for i = 1, #KEYS do
  redis.call('ZADD', KEYS[i], ARGV[2], ARGV[3])
  if redis.call('PTTL', KEYS[i]) < tonumber(ARGV[6]) then redis.call('PEXPIRE', KEYS[i], ARGV[6]) end
end
return {1}
`)

// attachScript counts a slot for one more set. KEYS: set. ARGV: score,
// slot id, ttl.
var attachScript = redis.NewScript(`
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[3]) then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
return 1
`)

// releaseScript removes a slot from its sets. KEYS: sets. ARGV: slot id.
var releaseScript = redis.NewScript(`
for i = 1, #KEYS do redis.call('ZREM', KEYS[i], ARGV[1]) end
return 1
`)

// passScript is reserveScript with a release after it: when it counted
// the slot (KEYS[1], KEYS[2] when ARGV[7] is "2"), it removes the slot ids
// ARGV[8…] from the sets KEYS[ARGV[7]+1…], one id per set, in one step.
// ARGV as reserveScript's, then: the number of sets counted in, the ids.
var passScript = redis.NewScript(luaFull + `
local counted = tonumber(ARGV[7])
local w = full(KEYS[1], tonumber(ARGV[4]))
if not w and counted > 1 then w = full(KEYS[2], tonumber(ARGV[5])) end
if w then return {0, tostring(w)} end
for i = 1, counted do
  redis.call('ZADD', KEYS[i], ARGV[2], ARGV[3])
  if redis.call('PTTL', KEYS[i]) < tonumber(ARGV[6]) then redis.call('PEXPIRE', KEYS[i], ARGV[6]) end
end
for i = counted + 1, #KEYS do redis.call('ZREM', KEYS[i], ARGV[8 + i - counted - 1]) end
return {1}
`)

func hashID(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		fmt.Fprintf(h, "%d:%s", len(p), p)
	}
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil))
}

// bucketPart is what a bucket adds to the keys of its sets: nothing for
// the bucket "" (the keys written before buckets existed), else ":b:" and
// the bucket's hash.
func bucketPart(bucket string) string {
	if bucket == "" {
		return ""
	}
	return ":b:" + hashID(bucket)
}

func (s *Store) userKey(user, bucket string) string {
	return s.prefix + "c:{" + hashID(user) + "}" + bucketPart(bucket) + ":u"
}

func (s *Store) sessionKey(user, bucket, session string) string {
	return s.prefix + "c:{" + hashID(user) + "}" + bucketPart(bucket) + ":s:" + hashID(user, session)
}

// slotKeys are the sets s is counted in by Reserve.
func (s *Store) slotKeys(sl stepup.Slot) []string {
	if sl.Session == "" {
		return []string{s.userKey(sl.User, sl.Bucket)}
	}
	return []string{s.userKey(sl.User, sl.Bucket), s.sessionKey(sl.User, sl.Bucket, sl.Session)}
}

// score is when a slot stops counting, in unix milliseconds rounded up.
func score(sl stepup.Slot) int64 {
	return (sl.Expires.UnixNano() + int64(time.Millisecond) - 1) / int64(time.Millisecond)
}

// Reserve implements stepup.Counter, in one script.
func (s *Store) Reserve(ctx context.Context, sl stepup.Slot, perUser, perSession int) (time.Duration, error) {
	if perUser < 1 || perSession < 1 {
		return 0, errors.New("redisstore: reserve: caps must be at least 1")
	}
	var res []any
	err := s.call(ctx, "reserve", func(ctx context.Context) error {
		var err error
		res, err = reserveScript.Run(ctx, s.rdb, s.slotKeys(sl), sl.At.UnixMilli(), score(sl), sl.ID,
			perUser, perSession, ttl(sl.At, sl.Expires)).Slice()
		return err
	})
	if err != nil {
		return 0, err
	}
	if ok, _ := res[0].(int64); ok == 1 {
		return 0, nil
	}
	if len(res) != 2 {
		return 0, errors.New("redisstore: reserve: unexpected answer")
	}
	str, _ := res[1].(string)
	until, err := strconv.ParseFloat(str, 64)
	if err != nil {
		return 0, fmt.Errorf("redisstore: reserve: bad score: %w", err)
	}
	return max(time.UnixMilli(int64(until)).Sub(sl.At), time.Millisecond), stepup.ErrTooManyChallenges
}

// Attach implements stepup.Counter.
func (s *Store) Attach(ctx context.Context, sl stepup.Slot, session string) error {
	return s.call(ctx, "attach", func(ctx context.Context) error {
		return attachScript.Run(ctx, s.rdb, []string{s.sessionKey(sl.User, sl.Bucket, session)}, score(sl), sl.ID,
			ttl(sl.At, sl.Expires)).Err()
	})
}

// Pass implements stepup.PassCounter, in one script: the sets of a user
// share a hash tag, so it runs on Cluster too.
func (s *Store) Pass(ctx context.Context, sl stepup.Slot, ceiling int, from []stepup.Slot) error {
	if ceiling < 1 {
		return errors.New("redisstore: pass: the ceiling must be at least 1")
	}
	keys := s.slotKeys(sl)
	args := []any{sl.At.UnixMilli(), score(sl), sl.ID, ceiling, ceiling, ttl(sl.At, sl.Expires), len(keys)}
	for _, f := range from {
		if f.User != sl.User {
			return errors.New("redisstore: pass: a slot of another user")
		}
		for _, k := range s.slotKeys(f) {
			keys = append(keys, k)
			args = append(args, f.ID)
		}
	}
	var res []any
	err := s.call(ctx, "pass", func(ctx context.Context) error {
		var err error
		res, err = passScript.Run(ctx, s.rdb, keys, args...).Slice()
		return err
	})
	if err != nil {
		return err
	}
	if ok, _ := res[0].(int64); ok != 1 {
		return fmt.Errorf("redisstore: pass: %w", stepup.ErrTooManyChallenges)
	}
	return nil
}

// Release implements stepup.Counter.
func (s *Store) Release(ctx context.Context, sl stepup.Slot) error {
	return s.call(ctx, "release", func(ctx context.Context) error {
		return releaseScript.Run(ctx, s.rdb, s.slotKeys(sl), sl.ID).Err()
	})
}
