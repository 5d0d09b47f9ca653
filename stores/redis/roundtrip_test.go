package redisstore_test

// Round trips to Redis per step of a flow, counted by a go-redis hook on
// the store's client: every command is one, and a pipeline (Durable's
// write and WAIT) is one.

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup"
	"github.com/stepupkit/stepup/stepuptest"
	redisstore "github.com/stepupkit/stepup/stores/redis"
)

// tripCounter counts the round trips of a client and the commands in them.
type tripCounter struct {
	mu    sync.Mutex
	trips int
	cmds  []string
	quiet bool // count only: no names kept (benchmarks)
}

func (c *tripCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *tripCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.add(cmd)
		return next(ctx, cmd)
	}
}

func (c *tripCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.add(cmds...)
		return next(ctx, cmds)
	}
}

func (c *tripCounter) add(cmds ...redis.Cmder) {
	if c.quiet {
		c.mu.Lock()
		c.trips++
		c.mu.Unlock()
		return
	}
	names := make([]string, len(cmds))
	for i, cmd := range cmds {
		names[i] = cmd.Name()
	}
	c.mu.Lock()
	c.trips++
	c.cmds = append(c.cmds, strings.Join(names, "+"))
	c.mu.Unlock()
}

// count returns the round trips counted since the last take.
func (c *tripCounter) count() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return int64(c.trips)
}

// take returns the round trips counted since the last take, and their commands.
func (c *tripCounter) take() (int, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, cmds := c.trips, strings.Join(c.cmds, " ")
	c.trips, c.cmds = 0, nil
	return n, cmds
}

// TestRoundTrips counts the Redis round trips of each step of a browser
// flow with a replay (challenge, callback), a browser flow of a GET
// (challenge, callback, GET with the pass) and an API flow (challenge,
// retry with the token), on a real redis-server when there is one, after
// a first flow has loaded the scripts. Each step stays within its budget.
func TestRoundTrips(t *testing.T) {
	for _, be := range backends(t) {
		t.Run(be.name, func(t *testing.T) {
			var trips tripCounter
			addr := be.client(t).(*redis.Client).Options().Addr
			_, _, err := net.SplitHostPort(addr)
			require.NoError(t, err)
			c := redis.NewClient(&redis.Options{Addr: addr})
			t.Cleanup(func() { c.Close() })
			c.AddHook(&trips)
			env := stepuptest.NewEnv(t, muxApp, stepuptest.Options{Store: func(now func() time.Time) stepup.Store {
				return redisstore.New(c, freshPrefix(), redisstore.Clock(now))
			}})
			b := env.NewBrowser()
			b.Login("alice")

			type step struct {
				name   string
				budget int
				do     func() *stepuptest.Response
				want   int
			}
			var cb, loc, challenge string
			// The first round loads the scripts (a NOSCRIPT answer, then
			// the script: two round trips once per server); the second counts.
			for round := range 2 {
				trips.take()
				total := map[string]int{}
				for _, flow := range []struct {
					name  string
					steps []step
				}{
					{"browser POST", []step{
						{"challenge", 2, func() *stepuptest.Response {
							resp := b.Do(http.MethodPost, "/transfer", stepuptest.Form, "amount=6000", nil)
							cb = b.Complete(b.Challenge(resp))
							return resp
						}, http.StatusSeeOther},
						{"callback and replay", 4, func() *stepuptest.Response { return b.Get(cb) }, http.StatusOK},
					}},
					{"browser GET", []step{
						{"challenge", 2, func() *stepuptest.Response {
							resp := b.Get("/report")
							cb = b.Complete(b.Challenge(resp))
							return resp
						}, http.StatusSeeOther},
						{"callback", 5, func() *stepuptest.Response {
							resp := b.Get(cb)
							loc = resp.Header.Get("Location")
							return resp
						}, http.StatusSeeOther},
						{"GET with the pass", 2, func() *stepuptest.Response { return b.Get(loc) }, http.StatusOK},
					}},
					{"API", []step{
						{"challenge", 2, func() *stepuptest.Response {
							resp := b.API(http.MethodPost, "/api/transfer", `{"amount":5000}`, nil)
							var doc struct{ URL string }
							require.NoError(t, json.Unmarshal([]byte(resp.Body), &doc))
							challenge = doc.URL
							return resp
						}, http.StatusUnauthorized},
						{"retry with the token", 4, func() *stepuptest.Response {
							tok := stepuptest.Param(b.Complete(challenge), "token")
							return b.API(http.MethodPost, "/api/transfer", `{"amount":5000}`,
								http.Header{stepup.TokenHeader: {tok}})
						}, http.StatusOK},
					}},
				} {
					for _, s := range flow.steps {
						resp := s.do()
						require.Equal(t, s.want, resp.StatusCode, "%s, %s: %s", flow.name, s.name, resp.Body)
						n, cmds := trips.take()
						if round == 0 {
							continue
						}
						t.Logf("%s, %s: %d round trips: %s", flow.name, s.name, n, cmds)
						assert.LessOrEqual(t, n, s.budget, "%s, %s: %s", flow.name, s.name, cmds)
						total[flow.name] += n
					}
					if round == 1 {
						t.Logf("%s: %d round trips in all", flow.name, total[flow.name])
					}
				}
			}
		})
	}
}
