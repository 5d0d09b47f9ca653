package stepup_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup"
	"github.com/stepupkit/stepup/authsignal"
	"github.com/stepupkit/stepup/stepuptest"
)

// stepLog records Config.OnStep: each step as it begins and ends.
type stepLog struct {
	mu    sync.Mutex
	lines []string
	trace func(n int) string // the Trace to set on the n-th park
	parks int
}

type stepKey struct{}

func (l *stepLog) onStep(ctx context.Context, s *stepup.Step) (context.Context, func(error)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	begin := "begin " + string(s.Name) + " " + s.Action
	if s.Name == stepup.StepReplay {
		begin += " trace=" + s.Trace
	}
	if s.Name == stepup.StepPark && l.trace != nil {
		l.parks++
		s.Trace = l.trace(l.parks)
	}
	l.lines = append(l.lines, begin)
	name := s.Name
	return context.WithValue(ctx, stepKey{}, name), func(err error) {
		l.mu.Lock()
		defer l.mu.Unlock()
		end := "end " + string(name)
		if err != nil {
			end += " error"
		}
		l.lines = append(l.lines, end)
	}
}

func (l *stepLog) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}

// A browser flow tells OnStep of its track and park when challenged, and of
// its validate and replay at the callback; the replay carries the Trace the
// park step set, kept with the park, and runs in the context OnStep gave.
func TestOnStepReportsEachStepAndLinksTheReplayToItsPark(t *testing.T) {
	log := &stepLog{trace: func(int) string { return "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" }}
	var inReplay stepup.StepName
	env := stepuptest.NewEnv(t, muxAdapter(func(mux *http.ServeMux, _ *stepup.Guard, h stepuptest.Handlers) {
		mux.Handle("POST /transfer", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			inReplay, _ = r.Context().Value(stepKey{}).(stepup.StepName)
			h.Transfer.ServeHTTP(w, r)
		}))
	}), stepuptest.Options{Config: func(c *stepup.Config) { c.OnStep = log.onStep }})
	b := env.NewBrowser()
	b.Login("alice")
	cb := b.Complete(b.Challenge(b.Do(http.MethodPost, "/transfer", stepuptest.Form, "amount=5000", nil)))
	assert.Equal(t, []string{"begin track transfer", "end track", "begin park transfer", "end park"}, log.all())
	require.Equal(t, http.StatusOK, b.Get(cb).StatusCode)
	assert.Equal(t, []string{"begin track transfer", "end track", "begin park transfer", "end park",
		"begin validate transfer", "end validate",
		"begin replay transfer trace=00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "end replay"}, log.all())
	assert.Equal(t, stepup.StepReplay, inReplay, "the handler runs in the replay step's context")
}

// A Trace that is not printable ASCII of at most 256 bytes is not kept;
// a failed step ends with its error.
func TestOnStepDropsABadTraceAndReportsFailures(t *testing.T) {
	for _, tc := range []struct {
		name, trace, kept string
	}{
		{"256 bytes", strings.Repeat("t", 256), strings.Repeat("t", 256)},
		{"257 bytes", strings.Repeat("t", 257), ""},
		{"a control byte", "00-a\n-01", ""},
		{"DEL", "00-a\x7f-01", ""},
		{"non-ASCII", "00-é-01", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			log := &stepLog{trace: func(int) string { return tc.trace }}
			env := newPolicyEnv(t, guardedApp, guardedApp.Policies(), func(c *stepup.Config) { c.OnStep = log.onStep })
			b := env.NewBrowser()
			b.Login("alice")
			require.Equal(t, http.StatusOK, b.Get(b.Complete(b.Challenge(b.Do(http.MethodPost, "/transfer", stepuptest.Form, "amount=5000", nil)))).StatusCode)
			assert.Contains(t, log.all(), "begin replay transfer trace="+tc.kept)
		})
	}
	t.Run("a provider that fails ends track with its error", func(t *testing.T) {
		log := &stepLog{}
		env := stepuptest.NewEnv(t, guardedApp, stepuptest.Options{
			Config:   func(c *stepup.Config) { c.OnStep = log.onStep; c.ProviderTimeout = 50 * time.Millisecond },
			Provider: func(stepup.Provider) stepup.Provider { return failingProvider{} },
		})
		b := env.NewBrowser()
		b.Login("alice")
		assert.Equal(t, http.StatusServiceUnavailable, b.Do(http.MethodPost, "/transfer", stepuptest.Form, "amount=5000", nil).StatusCode)
		assert.Equal(t, []string{"begin track transfer", "end track error"}, log.all())
	})
}

// failingProvider is Authsignal down.
type failingProvider struct{ stepup.Provider }

func (failingProvider) Track(context.Context, string, string, authsignal.TrackRequest) (*authsignal.TrackResponse, error) {
	return nil, errors.New("connection refused")
}
