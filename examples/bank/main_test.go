package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"regexp"
	"syscall"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup"
)

// run serves until SIGINT or SIGTERM, then shuts down gracefully.
func TestRunServesUntilSignalled(t *testing.T) {
	env := map[string]string{"BANK_ADDR": "127.0.0.1:0", "BANK_EMULATOR_ADDR": "127.0.0.1:0"}
	stdout, stderr := &syncBuffer{}, &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- run(nil, func(k string) string { return env[k] }, stdout, stderr) }()

	// The banner is printed before the signal handler is installed; an
	// answer to a request comes after, since serving starts last.
	open := regexp.MustCompile(`Open +(http://127\.0\.0\.1:\d+)`)
	var base string
	require.Eventually(t, func() bool {
		m := open.FindStringSubmatch(stdout.String())
		if m == nil {
			return false
		}
		base = m[1]
		resp, err := http.Get(base + "/login")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode == http.StatusOK
	}, 10*time.Second, 20*time.Millisecond)
	assert.Contains(t, stdout.String(), "alice / alice-password")
	assert.Contains(t, stdout.String(), "embedded Authsignal emulator at http://localhost:")

	require.NoError(t, syscall.Kill(syscall.Getpid(), syscall.SIGINT))
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(15 * time.Second):
		t.Fatal("run did not stop on SIGINT")
	}
	assert.Contains(t, stderr.String(), "shutting down")
	_, err := http.Get(base + "/login")
	assert.Error(t, err, "the listener is closed")
}

func TestRunRejectsBadFlags(t *testing.T) {
	err := run([]string{"-no-such-flag"}, func(string) string { return "" }, io.Discard, io.Discard)
	assert.Error(t, err)
	err = run([]string{"-addr", "127.0.0.1:0", "-emulator-addr", "127.0.0.1:0", "-policies", "/no/such/file"},
		func(string) string { return "" }, io.Discard, io.Discard)
	assert.ErrorContains(t, err, "/no/such/file")
}

func TestRedisFlag(t *testing.T) {
	mr := miniredis.RunT(t)
	mr.RequireAuth("s3cret")
	closed := func() string { // a port nothing listens on
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		defer ln.Close()
		return ln.Addr().String()
	}()

	for _, tc := range []struct {
		name   string
		given  string
		expect string // the error, "" for a Redis store
	}{
		{"not a Redis URL", "http://127.0.0.1:6379", "-redis: redis: invalid URL scheme: http"},
		{"no Redis there", "redis://:s3cret@" + closed + "/0", "-redis: " + closed + ": "},
		{"wrong password", "redis://:nope@" + mr.Addr() + "/0", "-redis: " + mr.Addr() + ": "},
		{"Redis", "redis://:s3cret@" + mr.Addr() + "/0", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store, where, closeStore, err := openStore(tc.given, "")
			if tc.expect != "" {
				assert.ErrorContains(t, err, tc.expect)
				assert.NotContains(t, err.Error(), "s3cret", "the password stays out of errors")
				return
			}
			require.NoError(t, err)
			defer closeStore()
			assert.Equal(t, "Redis at "+mr.Addr()+", db 0 (shared by every instance using it)", where)
			now := time.Now()
			require.NoError(t, store.Put(context.Background(), &stepup.Record{ID: "p1", Kind: stepup.KindPark,
				Method: http.MethodPost, Path: "/transfer", Created: now, Expires: now.Add(time.Minute)}))
			assert.True(t, mr.Exists("bank:stepup:r:p1"), "the record is in Redis, under the bank's prefix")
		})
	}

	t.Run("no URL: in memory", func(t *testing.T) {
		store, where, closeStore, err := openStore("", "")
		require.NoError(t, err)
		closeStore()
		assert.Nil(t, store, "the guard's default MemoryStore")
		assert.Equal(t, "in memory (this instance only)", where)
	})
	t.Run("BANK_REDIS_URL, and -redis over it", func(t *testing.T) {
		env := map[string]string{"BANK_REDIS_URL": "http://from-env"}
		err := run(nil, func(k string) string { return env[k] }, io.Discard, io.Discard)
		assert.ErrorContains(t, err, "invalid URL scheme: http")
		err = run([]string{"-redis", "ftp://from-flag"}, func(k string) string { return env[k] }, io.Discard, io.Discard)
		assert.ErrorContains(t, err, "invalid URL scheme: ftp")
	})
}

func TestPostgresFlag(t *testing.T) {
	closed := func() string { // a port nothing listens on
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		defer ln.Close()
		return ln.Addr().String()
	}()
	for _, tc := range []struct {
		name            string
		redis, postgres string
		expect          string
	}{
		{"not a PostgreSQL URL", "", "postgres://u:s3cret@127.0.0.1:notaport/db", "-postgres: "},
		{"no PostgreSQL there", "", "postgres://u:s3cret@" + closed + "/bank?connect_timeout=2", "-postgres: " + closed + ": "},
		{"both stores", "redis://127.0.0.1:6379/0", "postgres://127.0.0.1/bank", "-redis and -postgres: choose one store"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, _, err := openStore(tc.redis, tc.postgres)
			assert.ErrorContains(t, err, tc.expect)
			assert.NotContains(t, err.Error(), "s3cret", "the password stays out of errors")
		})
	}
	t.Run("BANK_POSTGRES_URL, and -postgres over it", func(t *testing.T) {
		env := map[string]string{"BANK_POSTGRES_URL": "postgres://from-env:notaport/db"}
		err := run(nil, func(k string) string { return env[k] }, io.Discard, io.Discard)
		assert.ErrorContains(t, err, "-postgres: ")
		assert.ErrorContains(t, err, "from-env")
		err = run([]string{"-postgres", "postgres://from-flag:notaport/db"}, func(k string) string { return env[k] }, io.Discard, io.Discard)
		assert.ErrorContains(t, err, "from-flag")
	})
}
