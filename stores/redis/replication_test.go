package redisstore_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// serverT starts a redis-server of its own for t, in memory only, with
// extra arguments, stopped at the end; it skips t without the binary
// (fails on CI).
func serverT(t testing.TB, extra ...string) *redisServer {
	t.Helper()
	bin := redisBinary(t)
	if bin == "" {
		t.Skip("redis-server is not installed (apt-get install redis-server); CI=true makes this a failure")
	}
	s := &redisServer{t: t, bin: bin, dir: t.TempDir(), port: freePort(t), extra: extra}
	s.start()
	t.Cleanup(s.kill)
	return s
}

// replicaT starts a replica of the server at addr.
func replicaT(t testing.TB, addr string) *redisServer {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	require.NoError(t, err)
	r := serverT(t, "--replicaof", host, port)
	c := r.client()
	defer c.Close()
	require.Eventually(t, func() bool {
		info, err := c.Info(context.Background(), "replication").Result()
		return err == nil && strings.Contains(info, "master_link_status:up")
	}, 10*time.Second, 20*time.Millisecond, "the replica did not sync")
	return r
}

// sentinelsT starts n Sentinels that watch the primary at addr as
// "mymaster" (quorum 2, down after 500 ms) and waits until each knows the
// others and the replicas.
func sentinelsT(t *testing.T, addr string, n, replicas int) []*redisServer {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	require.NoError(t, err)
	var out []*redisServer
	for range n {
		dir := t.TempDir()
		conf := filepath.Join(dir, "sentinel.conf")
		require.NoError(t, os.WriteFile(conf, []byte(fmt.Sprintf(`sentinel monitor mymaster %s %s 2
sentinel down-after-milliseconds mymaster 500
sentinel failover-timeout mymaster 1500
sentinel parallel-syncs mymaster 1
`, host, port)), 0o600))
		s := &redisServer{t: t, bin: redisBinary(t), dir: dir, port: freePort(t), sentinel: conf}
		s.start()
		t.Cleanup(s.kill)
		out = append(out, s)
	}
	for _, s := range out {
		sc := redis.NewSentinelClient(&redis.Options{Addr: s.addr()})
		require.Eventually(t, func() bool {
			ctx := context.Background()
			others, err1 := sc.Sentinels(ctx, "mymaster").Result()
			reps, err2 := sc.Replicas(ctx, "mymaster").Result()
			return err1 == nil && err2 == nil && len(others) == n-1 && len(reps) == replicas
		}, 20*time.Second, 50*time.Millisecond, "sentinel %s did not discover its peers", s.addr())
		sc.Close()
	}
	return out
}

func addrs(servers []*redisServer) []string {
	var out []string
	for _, s := range servers {
		out = append(out, s.addr())
	}
	return out
}

// failoverClient connects through the Sentinels, as an application would.
func failoverClient(t *testing.T, sentinels []*redisServer) *redis.Client {
	c := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: "mymaster", SentinelAddrs: addrs(sentinels),
		DialTimeout: 500 * time.Millisecond, ReadTimeout: 3 * time.Second, MaxRetries: 3,
		MinRetryBackoff: 10 * time.Millisecond, MaxRetryBackoff: 100 * time.Millisecond})
	t.Cleanup(func() { c.Close() })
	return c
}

// awaitSwitch waits until the Sentinels agree on a primary other than
// from, it answers as one with at least replicas replicas online, and c
// writes to it; it returns the primary's address.
func awaitSwitch(t *testing.T, sentinels []*redisServer, from string, replicas int, c *redis.Client) string {
	t.Helper()
	ctx := context.Background()
	var primary string
	require.Eventually(t, func() bool {
		primary = ""
		for _, s := range sentinels {
			sc := redis.NewSentinelClient(&redis.Options{Addr: s.addr()})
			got, err := sc.GetMasterAddrByName(ctx, "mymaster").Result()
			sc.Close()
			if err != nil || len(got) != 2 {
				return false
			}
			addr := net.JoinHostPort(got[0], got[1])
			if addr == from || (primary != "" && addr != primary) {
				return false
			}
			primary = addr
		}
		p := redis.NewClient(&redis.Options{Addr: primary})
		defer p.Close()
		info, err := p.Info(ctx, "replication").Result()
		if err != nil || !strings.Contains(info, "role:master") || strings.Count(info, "state=online") < replicas {
			return false
		}
		// Until go-redis hears of the switch, some of its connections may
		// still reach the old primary, which takes writes until the
		// Sentinels make it a replica: wait until writes land on the new.
		for i := range 8 {
			key := fmt.Sprint("probe:", i)
			if c.Set(ctx, key, primary, time.Minute).Err() != nil || p.Get(ctx, key).Val() != primary {
				return false
			}
		}
		return true
	}, 30*time.Second, 20*time.Millisecond, "no failover from %s", from)
	return primary
}

// linkProxy relays a replica's replication link to its primary and can
// freeze it: the primary's stream stops reaching the replica, as on a
// network partition, so the primary's next writes are not replicated.
type linkProxy struct {
	ln     net.Listener
	target string
	frozen atomic.Bool
	mu     sync.Mutex
	conns  []net.Conn
	wg     sync.WaitGroup
}

func newLinkProxy(t *testing.T, target string) *linkProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &linkProxy{ln: ln, target: target}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(func() { ln.Close(); p.cut(); p.wg.Wait() })
	return p
}

func (p *linkProxy) addr() string { return p.ln.Addr().String() }

func (p *linkProxy) serve() {
	defer p.wg.Done()
	for {
		replica, err := p.ln.Accept()
		if err != nil {
			return
		}
		primary, err := net.Dial("tcp", p.target)
		if err != nil || p.frozen.Load() {
			replica.Close()
			if primary != nil {
				primary.Close()
			}
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, replica, primary)
		p.mu.Unlock()
		relay := func(dst, src net.Conn, freezes bool) {
			defer p.wg.Done()
			defer dst.Close()
			buf := make([]byte, 64<<10)
			for {
				n, err := src.Read(buf)
				if err != nil {
					return
				}
				if freezes && p.frozen.Load() {
					continue // partitioned: the replica never sees it
				}
				if _, err := dst.Write(buf[:n]); err != nil {
					return
				}
			}
		}
		p.wg.Add(2)
		go relay(replica, primary, true)
		go relay(primary, replica, false)
	}
}

// cut closes every relayed connection.
func (p *linkProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}
