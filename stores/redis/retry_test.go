package redisstore_test

import (
	"bytes"
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup"
	redisstore "github.com/stepupkit/stepup/stores/redis"
)

// lossyProxy relays connections to a Redis, and when armed loses the answer
// to the next script call: Redis runs it, the client sees its connection
// closed, and go-redis sends the same command again on a new one.
type lossyProxy struct {
	ln      net.Listener
	target  string
	armed   atomic.Bool
	dropped atomic.Int32
	wg      sync.WaitGroup
}

func newLossyProxy(t *testing.T, target string) *lossyProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &lossyProxy{ln: ln, target: target}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(func() { ln.Close(); p.wg.Wait() })
	return p
}

func (p *lossyProxy) serve() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		server, err := net.Dial("tcp", p.target)
		if err != nil {
			client.Close()
			continue
		}
		var drop atomic.Bool // the next answer on this connection is lost
		p.wg.Add(2)
		go func() { // server to client
			defer p.wg.Done()
			defer client.Close()
			buf := make([]byte, 64<<10)
			for {
				n, err := server.Read(buf)
				if err != nil || drop.Load() {
					return // Redis ran the command; its answer goes nowhere
				}
				if _, err := client.Write(buf[:n]); err != nil {
					return
				}
			}
		}()
		go func() { // client to server
			defer p.wg.Done()
			defer server.Close()
			buf := make([]byte, 64<<10)
			for {
				n, err := client.Read(buf)
				if err != nil {
					return
				}
				if bytes.Contains(bytes.ToLower(buf[:n]), []byte("evalsha")) && p.armed.CompareAndSwap(true, false) {
					p.dropped.Add(1)
					drop.Store(true)
				}
				if _, err := server.Write(buf[:n]); err != nil {
					return
				}
			}
		}()
	}
}

// TestRetriedScriptFindsItsOwnWrite: when the answer to Put or Consume is
// lost and go-redis retries the same command, the retry finds its own
// write (by its nonce) instead of reporting ErrExists or ErrConsumed for it.
func TestRetriedScriptFindsItsOwnWrite(t *testing.T) {
	mr := miniredis.RunT(t)
	proxy := newLossyProxy(t, mr.Addr())
	client := redis.NewClient(&redis.Options{Addr: proxy.ln.Addr().String(), MaxRetries: 2,
		MinRetryBackoff: time.Millisecond, MaxRetryBackoff: time.Millisecond})
	t.Cleanup(func() { client.Close() }) // before the proxy waits for its connections
	s := redisstore.New(client)
	ctx := context.Background()
	now := time.Now()
	// Load both scripts, so that the calls below are EVALSHAs that run.
	require.NoError(t, s.Put(ctx, park(now, "warm")))
	_, err := s.Consume(ctx, "warm")
	require.NoError(t, err)

	var rec *stepup.Record
	proxy.armed.Store(true)
	require.NoError(t, s.Put(ctx, park(now, "p1")), "the retried Put found its own record")
	require.Equal(t, int32(1), proxy.dropped.Load(), "an answer was lost")
	assert.ErrorIs(t, s.Put(ctx, park(now, "p1")), stepup.ErrExists, "another Put still cannot overwrite it")

	proxy.armed.Store(true)
	rec, err = s.Consume(ctx, "p1")
	require.NoError(t, err, "the retried Consume found its own win")
	assert.Equal(t, "amount=5000", string(rec.Body))
	require.Equal(t, int32(2), proxy.dropped.Load())
	_, err = s.Consume(ctx, "p1")
	assert.ErrorIs(t, err, stepup.ErrConsumed, "any other Consume loses")
}
