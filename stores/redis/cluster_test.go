package redisstore_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
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

// clusterT starts three redis-servers in cluster mode, and replicas more
// for each, and joins them with redis-cli --cluster create into one
// cluster of three masters, each serving a third of the slots; it skips t
// without the binaries (fails on CI).
func clusterT(t *testing.T, replicas int) []*redisServer {
	t.Helper()
	var nodes []*redisServer
	for range 3 * (1 + replicas) {
		nodes = append(nodes, serverT(t, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", "2000"))
	}
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("redis-cli is not installed (CI=true): run .ci/redis-deps")
		}
		t.Skip("redis-cli is not installed (apt-get install redis-tools)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args := append([]string{"--cluster", "create"}, addrs(nodes)...)
	out, err := exec.CommandContext(ctx, cli, append(args, "--cluster-replicas", strconv.Itoa(replicas), "--cluster-yes")...).CombinedOutput()
	require.NoError(t, err, "%s", out)
	for _, n := range nodes {
		c := n.client()
		require.Eventually(t, func() bool {
			info, err := c.ClusterInfo(context.Background()).Result()
			if err != nil || !strings.Contains(info, "cluster_state:ok") ||
				!strings.Contains(info, fmt.Sprintf("cluster_known_nodes:%d", len(nodes))) {
				return false
			}
			repl, err := c.Info(context.Background(), "replication").Result()
			return err == nil && (strings.Contains(repl, "role:slave") && strings.Contains(repl, "master_link_status:up") ||
				strings.Contains(repl, "role:master") && strings.Count(repl, "state=online") == replicas)
		}, 20*time.Second, 50*time.Millisecond, "the cluster did not form")
		c.Close()
	}
	return nodes
}

func clusterClient(t *testing.T, nodes []*redisServer) *redis.ClusterClient {
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs(nodes), MaxRedirects: 8})
	t.Cleanup(func() { c.Close() })
	return c
}

// TestCluster runs the store, counter and two-instance suites on a real
// three-master Cluster. The prefix has no hash tag, so the records and
// the users' sets spread over the three masters: a script whose keys were
// not in one slot would fail with CROSSSLOT.
func TestCluster(t *testing.T) {
	nodes := clusterT(t, 0)
	c := clusterClient(t, nodes)
	t.Run("store", func(t *testing.T) {
		stepuptest.RunStore(t, func(now func() time.Time) stepup.Store {
			return redisstore.New(c, freshPrefix(), redisstore.Clock(now))
		})
	})
	t.Run("counter", func(t *testing.T) {
		stepuptest.RunCounter(t, func() stepup.Counter { return redisstore.New(c, freshPrefix()) })
	})
	t.Run("two instances", func(t *testing.T) {
		stepuptest.RunShared(t, muxApp, func(now func() time.Time) stepup.Store {
			return redisstore.New(c, freshPrefix(), redisstore.Clock(now))
		})
	})
	t.Run("durable writes go to the slot's master", func(t *testing.T) {
		// No replica acknowledges here: each write must reach the master
		// of its slot (not MOVED) and then miss its acknowledgement.
		ctx := context.Background()
		prefix := freshPrefix()
		durable := redisstore.New(c, prefix, redisstore.Durable(1, 20*time.Millisecond))
		plain := redisstore.New(c, prefix)
		now := time.Now()
		for i := range 12 {
			id := fmt.Sprint("p", i)
			require.NoError(t, durable.Put(ctx, park(now, id)))
			_, err := durable.Consume(ctx, id)
			require.ErrorIs(t, err, redisstore.ErrNotReplicated)
			_, err = plain.Consume(ctx, id)
			require.ErrorIs(t, err, stepup.ErrConsumed, "the Consume ran on the master of %s", id)
		}
	})
	t.Run("keys spread over every master", func(t *testing.T) {
		for _, n := range nodes {
			nc := n.client()
			size, err := nc.DBSize(context.Background()).Result()
			nc.Close()
			require.NoError(t, err)
			assert.Positive(t, size, "%s holds keys", n.addr())
		}
	})
}

// TestClusterReshardDuringFlow migrates the slot that holds a user's keys
// (the prefix's hash tag puts the parks, spent tokens and the user's
// counted challenges in one slot) to another master between the challenge
// and the callback, by hand as redis-cli --cluster reshard does: IMPORTING
// and MIGRATING, MIGRATE of every key, the callback while the slot is
// still migrating (ASK), then SETSLOT NODE. The parked request runs once;
// with Durable, on a cluster with a replica per master, too (the durable
// writes follow ASK and MOVED themselves).
func TestClusterReshardDuringFlow(t *testing.T) {
	for _, tc := range []struct {
		name     string
		replicas int
		opts     []redisstore.Option
	}{
		{"three masters", 0, nil},
		{"three masters with a replica each, Durable", 1, []redisstore.Option{redisstore.Durable(1, 2*time.Second)}},
	} {
		t.Run(tc.name, func(t *testing.T) { reshardDuringFlow(t, tc.replicas, tc.opts) })
	}
}

func reshardDuringFlow(t *testing.T, replicas int, opts []redisstore.Option) {
	nodes := clusterT(t, replicas)
	c := clusterClient(t, nodes)
	ctx := context.Background()
	o := stepuptest.Options{Store: func(now func() time.Time) stepup.Store {
		return redisstore.New(c, append([]redisstore.Option{redisstore.Prefix("{alice}:"), redisstore.Clock(now)}, opts...)...)
	}}
	env := stepuptest.NewEnv(t, muxApp, o)
	other := env.Instance(muxApp, o)
	b := env.NewBrowser()
	b.Login("alice")
	cb := b.Complete(b.Challenge(b.Do(http.MethodPost, "/transfer", stepuptest.Form, "amount=5000&to=bob", nil)))

	slot := int(c.ClusterKeySlot(ctx, "{alice}").Val())
	src, err := c.MasterForKey(ctx, "{alice}")
	require.NoError(t, err)
	var masters []*redis.Client
	var mu sync.Mutex
	require.NoError(t, c.ForEachMaster(ctx, func(_ context.Context, m *redis.Client) error {
		mu.Lock() // ForEachMaster calls concurrently
		defer mu.Unlock()
		masters = append(masters, m)
		return nil
	}))
	var dst *redis.Client
	for _, m := range masters {
		if m.Options().Addr != src.Options().Addr {
			dst = m
			break
		}
	}
	require.NotNil(t, dst)
	srcID, err := src.Do(ctx, "cluster", "myid").Text()
	require.NoError(t, err)
	dstID, err := dst.Do(ctx, "cluster", "myid").Text()
	require.NoError(t, err)
	require.NoError(t, dst.Do(ctx, "cluster", "setslot", slot, "importing", srcID).Err())
	require.NoError(t, src.Do(ctx, "cluster", "setslot", slot, "migrating", dstID).Err())
	keys, err := src.ClusterGetKeysInSlot(ctx, slot, 100).Result()
	require.NoError(t, err)
	require.NotEmpty(t, keys, "the park and the user's counted challenge are in the slot")
	host, port, err := net.SplitHostPort(dst.Options().Addr)
	require.NoError(t, err)
	args := []any{"migrate", host, port, "", 0, 5000, "keys"}
	for _, k := range keys {
		args = append(args, k)
	}
	require.NoError(t, src.Do(ctx, args...).Err())

	resp := b.Get(stepuptest.OnInstance(cb, other)) // the slot is migrating: ASK to the new master
	require.Equal(t, http.StatusOK, resp.StatusCode, resp.Body)
	assert.Equal(t, "done: transfer POST /transfer amount=5000&to=bob", resp.Body)

	for _, m := range masters {
		require.NoError(t, m.Do(ctx, "cluster", "setslot", slot, "node", dstID).Err())
	}
	require.Eventually(t, func() bool {
		m, err := c.MasterForKey(ctx, "{alice}")
		if err != nil || m.Options().Addr != dst.Options().Addr {
			c.ReloadState(ctx)
			return false
		}
		return true
	}, 10*time.Second, 50*time.Millisecond, "the client sees the slot moved")
	again := b.Get(stepuptest.OnInstance(cb, env.Server))
	assert.Equal(t, resp.Body, again.Body, "the refresh after the move shows the kept answer")
	srcKeys, err := src.ClusterCountKeysInSlot(ctx, slot).Result()
	require.NoError(t, err)
	assert.Zero(t, srcKeys, "nothing was written on the old master")
	assert.Len(t, env.Ledger.Runs("transfer"), 1, "the parked request ran once")
}
