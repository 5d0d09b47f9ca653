package main

import (
	"io"
	"net/http"
	"regexp"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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
	assert.Contains(t, stdout.String(), "embedded Authsignal emulator at http://127.0.0.1:")

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
