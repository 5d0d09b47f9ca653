package redisstore_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup"
	"github.com/stepupkit/stepup/stepuptest"
	redisstore "github.com/stepupkit/stepup/stores/redis"
)

// backend is a Redis the tests run against.
type backend struct {
	name   string
	client func(t testing.TB) redis.UniversalClient
}

// backends are miniredis, always, and a real redis-server when the binary
// is installed; on CI (CI=true) a missing redis-server fails the test.
func backends(t testing.TB) []backend {
	bs := []backend{{"miniredis", func(t testing.TB) redis.UniversalClient {
		c := redis.NewClient(&redis.Options{Addr: miniredis.RunT(t).Addr()})
		t.Cleanup(func() { c.Close() })
		return c
	}}}
	srv := sharedServer(t)
	if srv == nil {
		t.Log("redis-server is not installed: miniredis only (CI=true makes this a failure)")
	} else {
		bs = append(bs, backend{"redis-server", func(t testing.TB) redis.UniversalClient {
			c := srv.client()
			t.Cleanup(func() { c.Close() })
			return c
		}})
	}
	return bs
}

var prefixes atomic.Int64

// freshPrefix keeps the stores of one shared redis-server apart.
func freshPrefix() redisstore.Option {
	return redisstore.Prefix(fmt.Sprintf("test%d:", prefixes.Add(1)))
}

// redisServer is a redis-server the test started in a temporary directory,
// on a free port of 127.0.0.1.
type redisServer struct {
	t        testing.TB
	bin      string
	dir      string
	port     int
	persist  bool     // an append-only file, synced before every answer
	extra    []string // more arguments: a replica's, a cluster node's
	sentinel string   // a Sentinel's config file: run as a Sentinel
	cmd      *exec.Cmd
}

// redisBinary returns the path of redis-server, "" to skip the tests that
// need it. On CI a missing binary fails the test.
func redisBinary(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("redis-server is not installed (CI=true): run .ci/redis-deps")
		}
		return ""
	}
	return bin
}

var shared struct {
	srv  *redisServer
	done bool
}

// sharedServer is one redis-server, in memory only, for the tests and
// benchmarks that only need a Redis, started at the first use and stopped
// by TestMain; nil without the binary.
func sharedServer(t testing.TB) *redisServer {
	t.Helper()
	if !shared.done {
		shared.done = true
		if bin := redisBinary(t); bin != "" {
			dir, err := os.MkdirTemp("", "redisstore-")
			require.NoError(t, err)
			shared.srv = &redisServer{t: t, bin: bin, dir: dir, port: freePort(t)}
			shared.srv.start()
		}
	} else if shared.srv == nil {
		redisBinary(t) // fails on CI
	}
	return shared.srv
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.srv != nil {
		shared.srv.kill()
		_ = os.RemoveAll(shared.srv.dir)
	}
	os.Exit(code)
}

// startRedis starts a redis-server of its own for t, stopped at the end.
func startRedis(t *testing.T) *redisServer {
	t.Helper()
	bin := redisBinary(t)
	if bin == "" {
		t.Skip("redis-server is not installed (apt-get install redis-server); CI=true makes this a failure")
	}
	s := &redisServer{t: t, bin: bin, dir: t.TempDir(), port: freePort(t), persist: true}
	s.start()
	t.Cleanup(s.kill)
	return s
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func (s *redisServer) addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

func (s *redisServer) client() *redis.Client {
	return redis.NewClient(&redis.Options{Addr: s.addr(), MaxRetries: -1, DialTimeout: time.Second})
}

// start runs redis-server and waits until it answers PING.
func (s *redisServer) start() {
	s.t.Helper()
	args := []string{"--port", strconv.Itoa(s.port), "--bind", "127.0.0.1", "--dir", s.dir, "--save", "",
		"--maxmemory-policy", "noeviction", "--logfile", filepath.Join(s.dir, "redis.log")}
	if s.sentinel != "" { // a config file Sentinel rewrites, first
		args = []string{s.sentinel, "--sentinel", "--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
			"--dir", s.dir, "--logfile", filepath.Join(s.dir, "redis.log")}
	}
	if s.persist {
		args = append(args, "--appendonly", "yes", "--appendfsync", "always")
	}
	args = append(args, s.extra...)
	s.cmd = exec.Command(s.bin, args...)
	dieWithTest(s.cmd)
	require.NoError(s.t, s.cmd.Start())
	c := s.client()
	defer c.Close()
	for i := 0; ; i++ {
		if c.Ping(context.Background()).Err() == nil {
			return
		}
		require.Less(s.t, i, 500, "redis-server did not answer PING; see %s", filepath.Join(s.dir, "redis.log"))
		time.Sleep(10 * time.Millisecond)
	}
}

// kill stops the server at once, as a crash would.
func (s *redisServer) kill() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait()
		s.cmd = nil
	}
}

// muxApp mounts the suite's application on a ServeMux behind the guard.
var muxApp = stepuptest.Adapter{
	Name:  "servemux",
	Param: func(name string) string { return "{" + name + "}" },
	Mount: func(t testing.TB, g *stepup.Guard, h stepuptest.Handlers) http.Handler {
		mux := http.NewServeMux()
		mux.Handle("POST /login", h.Login)
		mux.Handle("POST /logout", h.Logout)
		mux.Handle("POST /signin", h.SignIn)
		mux.Handle("POST /transfer", h.Transfer)
		mux.Handle("POST /api/transfer", h.APITrans)
		mux.Handle("PUT /profile", h.Profile)
		mux.Handle("DELETE /items/{id}", h.DeleteItem)
		mux.Handle("GET /report", h.Report)
		mux.Handle("GET /admin", h.Admin)
		mux.Handle("/open", h.Open)
		mux.Handle("POST /block", h.Block)
		mux.Handle("POST /review", h.Review)
		root := g.Middleware(mux)
		mux.Handle("GET "+stepuptest.CallbackPath, g.Callback(root))
		require.NoError(t, g.CheckServeMux(mux))
		return root
	},
}
