package main

import (
	"context"
	"net"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup/examples/quickstart/internal/quicktest"
)

func TestQuickStartChallengesAndReplaysOnce(t *testing.T) {
	url := startRedis(t)
	got := quicktest.Run(t, newApp, map[string]string{"REDIS_URL": url})
	assert.Equal(t, "transfer 1: 5000 sent (step-up: challenge)\n", got.Answer)

	opts, err := redis.ParseURL(url)
	require.NoError(t, err)
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	keys, err := rdb.Keys(context.Background(), "quickstart:stepup:*").Result()
	require.NoError(t, err)
	assert.NotEmpty(t, keys, "the step-up records are in Redis")
}

func TestQuickStartNamesAnUnreachableRedis(t *testing.T) {
	_, err := newApp("127.0.0.1:8080", func(k string) string {
		if k == "REDIS_URL" {
			return "redis://127.0.0.1:" + strconv.Itoa(freePort(t)) + "/0"
		}
		return ""
	})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "redis at 127.0.0.1:")
}

// startRedis starts a redis-server of the test's own on a free port, without
// persistence, and returns its URL. Without the binary the test is skipped,
// except under CI=true, where it fails (.ci/redis-deps installs it).
func startRedis(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("redis-server is not installed (CI=true): run .ci/redis-deps")
		}
		t.Skip("redis-server is not installed")
	}
	port := strconv.Itoa(freePort(t))
	cmd := exec.Command(bin, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", t.TempDir())
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + port})
	defer rdb.Close()
	require.Eventually(t, func() bool { return rdb.Ping(context.Background()).Err() == nil }, 10*time.Second, 20*time.Millisecond)
	return "redis://127.0.0.1:" + port + "/0"
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
