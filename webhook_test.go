package stepup_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup"
	"github.com/stepupkit/stepup/authsignal"
	"github.com/stepupkit/stepup/stepuptest"
)

// webhookSecret is Config.WebhookSecret in these tests.
const webhookSecret = "whsec-test-secret"

// webhookPath is where reviewApp mounts Guard.Webhook.
const webhookPath = "/stepup/webhook"

// reviewApp is the suite's application on a ServeMux with the webhook
// mounted too.
var reviewApp = muxAdapter(func(mux *http.ServeMux, g *stepup.Guard, h stepuptest.Handlers) {
	guardedRoutes(mux, h)
	mux.Handle("POST /review", h.Review)
	mux.Handle("POST "+webhookPath, g.Webhook())
})

// trackOnly is a provider without GetAction: the guard can learn a
// review's state from webhooks only.
type trackOnly struct{ stepup.Provider }

// countingGetter counts the get-action calls the guard makes.
type countingGetter struct {
	stepup.Provider
	calls atomic.Int32
}

func (c *countingGetter) GetAction(ctx context.Context, user, action, key string) (*authsignal.Action, error) {
	c.calls.Add(1)
	return c.Provider.(stepup.ActionGetter).GetAction(ctx, user, action, key)
}

func newReviewEnv(t *testing.T, provider func(stepup.Provider) stepup.Provider, more ...func(*stepup.Config)) *stepuptest.Env {
	t.Helper()
	return stepuptest.NewEnv(t, reviewApp, stepuptest.Options{Provider: provider, Config: func(c *stepup.Config) {
		stepuptest.ReviewConfig(c)
		c.WebhookSecret = webhookSecret
		for _, f := range more {
			f(c)
		}
	}})
}

// sign returns the X-Signature-V2 value for body at t under secret.
func sign(secret string, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts + "."))
	m.Write(body)
	return "t=" + ts + ",v2=" + base64.RawStdEncoding.EncodeToString(m.Sum(nil))
}

// actionUpdated is a delivery of an action's new state.
func actionUpdated(user, action, key string, state authsignal.State) []byte {
	b, _ := json.Marshal(map[string]any{"version": 1, "id": "evt-" + key + string(state), "type": "action.updated",
		"source": "https://authsignal.com", "tenantId": "t",
		"data": map[string]any{"userId": user, "actionCode": action, "idempotencyKey": key, "state": state}})
	return b
}

// deliver posts body to the webhook with signature sig.
func deliver(t *testing.T, env *stepuptest.Env, body []byte, sig string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, env.Server.URL+webhookPath, strings.NewReader(string(body)))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	if sig != "" {
		req.Header.Set(authsignal.WebhookSignatureHeader, sig)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	return resp.StatusCode
}

// deliverSigned delivers body signed with the test secret at env's time.
func deliverSigned(t *testing.T, env *stepuptest.Env, body []byte) int {
	t.Helper()
	return deliver(t, env, body, sign(webhookSecret, env.Clock.Now(), body))
}

func TestWebhookApprovalNeedsNoCallToAuthsignal(t *testing.T) {
	env := newReviewEnv(t, func(p stepup.Provider) stepup.Provider { return trackOnly{p} })
	b := env.NewBrowser()
	b.Login("alice")
	status := b.Parked(b.Do(http.MethodPost, "/review", stepuptest.Form, "x=1", nil))
	id := stepuptest.ReviewID(status)
	env.Settle("alice", "wire", id, authsignal.StateReviewSucceeded) // Authsignal says so, but the guard cannot ask
	assert.Contains(t, b.Get(status).Body, "Waiting for approval", "without get action nor webhook: pending")

	require.Equal(t, http.StatusOK, deliverSigned(t, env, actionUpdated("alice", "wire", id, authsignal.StateReviewSucceeded)))
	resp := b.Get(status)
	require.Equal(t, http.StatusOK, resp.StatusCode, resp.Body)
	assert.Equal(t, "done: review POST /review x=1", resp.Body)
	assert.Len(t, env.Ledger.Runs("review"), 1)

	// A duplicate delivery after the run changes nothing.
	assert.Equal(t, http.StatusOK, deliverSigned(t, env, actionUpdated("alice", "wire", id, authsignal.StateReviewSucceeded)))
	assert.Equal(t, resp.Body, b.Get(status).Body)
	assert.Len(t, env.Ledger.Runs("review"), 1)
}

func TestWebhookDecisionSparesThePoll(t *testing.T) {
	var getter *countingGetter
	env := newReviewEnv(t, func(p stepup.Provider) stepup.Provider { getter = &countingGetter{Provider: p}; return getter })
	b := env.NewBrowser()
	b.Login("alice")
	status := b.Parked(b.Do(http.MethodPost, "/review", stepuptest.Form, "x=1", nil))
	require.Equal(t, http.StatusOK, deliverSigned(t, env,
		actionUpdated("alice", "wire", stepuptest.ReviewID(status), authsignal.StateReviewSucceeded)))
	require.Equal(t, http.StatusOK, b.Get(status).StatusCode)
	assert.Len(t, env.Ledger.Runs("review"), 1)
	assert.Zero(t, getter.calls.Load(), "the webhook's decision: no call to Authsignal")
}

func TestWebhookRefusesForgeries(t *testing.T) {
	env := newReviewEnv(t, func(p stepup.Provider) stepup.Provider { return trackOnly{p} })
	b := env.NewBrowser()
	b.Login("alice")
	status := b.Parked(b.Do(http.MethodPost, "/review", stepuptest.Form, "x=1", nil))
	approve := actionUpdated("alice", "wire", stepuptest.ReviewID(status), authsignal.StateReviewSucceeded)
	now := env.Clock.Now()
	tests := []struct {
		name string
		body []byte
		sig  string
	}{
		{"no signature", approve, ""},
		{"another secret", approve, sign("not-the-secret", now, approve)},
		{"signed for another body", approve, sign(webhookSecret, now, []byte(`{"type":"action.updated"}`))},
		{"too old", approve, sign(webhookSecret, now.Add(-6*time.Minute), approve)},
		{"from the future", approve, sign(webhookSecret, now.Add(6*time.Minute), approve)},
		{"garbled header", approve, "t=abc,v2=zzz"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, http.StatusUnauthorized, deliver(t, env, tc.body, tc.sig))
			assert.Contains(t, b.Get(status).Body, "Waiting for approval", "nothing recorded")
		})
	}
	assert.Empty(t, env.Ledger.Runs("review"))
	t.Run("at the edge of the tolerance it is accepted", func(t *testing.T) {
		assert.Equal(t, http.StatusOK, deliver(t, env, approve, sign(webhookSecret, now.Add(-5*time.Minute), approve)))
		assert.Equal(t, http.StatusOK, b.Get(status).StatusCode)
		assert.Len(t, env.Ledger.Runs("review"), 1)
	})
}

func TestWebhookOrderAndMismatch(t *testing.T) {
	park := func(t *testing.T) (*stepuptest.Env, *stepuptest.Browser, string) {
		env := newReviewEnv(t, func(p stepup.Provider) stepup.Provider { return trackOnly{p} })
		b := env.NewBrowser()
		b.Login("alice")
		return env, b, b.Parked(b.Do(http.MethodPost, "/review", stepuptest.Form, "x=1", nil))
	}
	t.Run("rejection then a late approval: ended, nothing runs", func(t *testing.T) {
		env, b, status := park(t)
		id := stepuptest.ReviewID(status)
		require.Equal(t, http.StatusOK, deliverSigned(t, env, actionUpdated("alice", "wire", id, authsignal.StateReviewFailed)))
		require.Equal(t, http.StatusOK, deliverSigned(t, env, actionUpdated("alice", "wire", id, authsignal.StateReviewSucceeded)))
		resp := b.Get(status)
		assert.Equal(t, http.StatusForbidden, resp.StatusCode, resp.Body)
		assert.Empty(t, env.Ledger.Runs("review"))
	})
	t.Run("approval then a rejection before the visit: the rejection wins", func(t *testing.T) {
		env, b, status := park(t)
		id := stepuptest.ReviewID(status)
		require.Equal(t, http.StatusOK, deliverSigned(t, env, actionUpdated("alice", "wire", id, authsignal.StateReviewSucceeded)))
		require.Equal(t, http.StatusOK, deliverSigned(t, env, actionUpdated("alice", "wire", id, authsignal.StateReviewFailed)))
		assert.Equal(t, http.StatusForbidden, b.Get(status).StatusCode)
		assert.Empty(t, env.Ledger.Runs("review"))
	})
	t.Run("a pending state after the approval changes nothing", func(t *testing.T) {
		env, b, status := park(t)
		id := stepuptest.ReviewID(status)
		require.Equal(t, http.StatusOK, deliverSigned(t, env, actionUpdated("alice", "wire", id, authsignal.StateReviewSucceeded)))
		require.Equal(t, http.StatusOK, deliverSigned(t, env, actionUpdated("alice", "wire", id, authsignal.StateReviewRequired)))
		assert.Equal(t, http.StatusOK, b.Get(status).StatusCode)
		assert.Len(t, env.Ledger.Runs("review"), 1)
	})
	t.Run("a delivery naming another user or action decides nothing", func(t *testing.T) {
		env, b, status := park(t)
		id := stepuptest.ReviewID(status)
		require.Equal(t, http.StatusOK, deliverSigned(t, env, actionUpdated("mallory", "wire", id, authsignal.StateReviewSucceeded)))
		require.Equal(t, http.StatusOK, deliverSigned(t, env, actionUpdated("alice", "transfer", id, authsignal.StateReviewSucceeded)))
		require.Equal(t, http.StatusOK, deliverSigned(t, env, actionUpdated("mallory", "wire", id, authsignal.StateReviewFailed)))
		assert.Contains(t, b.Get(status).Body, "Waiting for approval")
		assert.Empty(t, env.Ledger.Runs("review"))
	})
	t.Run("unknown parks, other types and bad ids are acknowledged, nothing else", func(t *testing.T) {
		env, b, status := park(t)
		for _, body := range [][]byte{
			actionUpdated("alice", "wire", "AAAAAAAAAAAAAAAAAAAAAA", authsignal.StateReviewSucceeded),
			actionUpdated("alice", "wire", "../x", authsignal.StateReviewSucceeded),
			[]byte(`{"type":"authenticator.created","data":{"userId":"alice"}}`),
			[]byte(`{"type":"action.created","data":{"userId":"alice","actionCode":"wire","idempotencyKey":"` +
				stepuptest.ReviewID(status) + `","state":"REVIEW_SUCCEEDED"}}`),
		} {
			assert.Equal(t, http.StatusOK, deliverSigned(t, env, body), string(body))
		}
		assert.Contains(t, b.Get(status).Body, "Waiting for approval")
	})
	t.Run("signed bodies that are not a webhook: 400", func(t *testing.T) {
		env, _, _ := park(t)
		for _, body := range []string{``, `[]`, `{"data":{}}`, `{"type":"action.updated"} {}`, `{"type":1}`} {
			assert.Equal(t, http.StatusBadRequest, deliverSigned(t, env, []byte(body)), body)
		}
	})
}

func TestWebhookRequestsItRefuses(t *testing.T) {
	env := newReviewEnv(t, nil)
	req, err := http.NewRequest(http.MethodGet, env.Server.URL+webhookPath, nil)
	require.NoError(t, err)
	resp := httptest.NewRecorder()
	env.Guard.Webhook().ServeHTTP(resp, req)
	assert.Equal(t, http.StatusMethodNotAllowed, resp.Code)
	assert.Equal(t, http.MethodPost, resp.Header().Get("Allow"))

	big := make([]byte, 64<<10+1)
	assert.Equal(t, http.StatusRequestEntityTooLarge, deliver(t, env, big, sign(webhookSecret, env.Clock.Now(), big)))

	noSecret, err := stepup.New(func() stepup.Config { c := validConfig(); return c }())
	require.NoError(t, err)
	body := actionUpdated("alice", "wire", "AAAAAAAAAAAAAAAAAAAAAA", authsignal.StateReviewSucceeded)
	req = httptest.NewRequest(http.MethodPost, "/stepup/webhook", strings.NewReader(string(body)))
	req.Header.Set(authsignal.WebhookSignatureHeader, sign("", time.Now(), body))
	rec := httptest.NewRecorder()
	noSecret.Webhook().ServeHTTP(rec, req)
	assert.Equal(t, http.StatusInternalServerError, rec.Code, "no WebhookSecret: every delivery refused")
}

func TestEmulatorWebhooksDriveTheReview(t *testing.T) {
	env := newReviewEnv(t, func(p stepup.Provider) stepup.Provider { return trackOnly{p} })
	env.Emulator.SetWebhook(env.Server.URL+webhookPath, webhookSecret)
	b := env.NewBrowser()
	b.Login("alice")
	status := b.Parked(b.Do(http.MethodPost, "/review", stepuptest.Form, "x=1", nil))
	env.Settle("alice", "wire", stepuptest.ReviewID(status), authsignal.StateReviewSucceeded)
	env.Emulator.WaitWebhooks()
	ds := env.Emulator.Deliveries()
	require.NotEmpty(t, ds)
	last := ds[len(ds)-1]
	assert.Equal(t, http.StatusOK, last.Status, last.Err)
	assert.Equal(t, "REVIEW_SUCCEEDED", last.State)
	resp := b.Get(status)
	require.Equal(t, http.StatusOK, resp.StatusCode, resp.Body)
	assert.Len(t, env.Ledger.Runs("review"), 1)

	env.Emulator.SetWebhook(env.Server.URL+webhookPath, "a wrong secret")
	status2 := b.Parked(b.Do(http.MethodPost, "/review", stepuptest.Form, "x=2", nil))
	env.Settle("alice", "wire", stepuptest.ReviewID(status2), authsignal.StateReviewSucceeded)
	env.Emulator.WaitWebhooks()
	ds = env.Emulator.Deliveries()
	assert.Equal(t, http.StatusUnauthorized, ds[len(ds)-1].Status, "a delivery signed with another secret is refused")
	assert.Contains(t, b.Get(status2).Body, "Waiting for approval")
}

// barrierStore holds the first Get of one id, once read, until a second one
// has read it too (or two seconds have passed), so that two visits both find
// the park pending and race for it.
type barrierStore struct {
	stepup.Store
	mu      sync.Mutex
	id      string
	gets    int
	waiting chan struct{}
}

func (s *barrierStore) Get(ctx context.Context, id string) (*stepup.Record, error) {
	rec, err := s.Store.Get(ctx, id) // read before waiting: both visits see the park pending
	s.mu.Lock()
	n := 0
	if id == s.id {
		s.gets++
		n = s.gets
	}
	s.mu.Unlock()
	switch n {
	case 1:
		select {
		case <-s.waiting:
		case <-time.After(2 * time.Second):
		}
	case 2:
		close(s.waiting)
	}
	return rec, err
}

func TestWebhookApprovedReviewRunsOnceUnderConcurrentVisits(t *testing.T) {
	// Both visits find the approval in the Store and the park pending, so
	// both replay it and race for it at the route: exactly one runs it,
	// the other gets 409, never an error.
	var store *barrierStore
	env := stepuptest.NewEnv(t, reviewApp, stepuptest.Options{
		Provider: func(p stepup.Provider) stepup.Provider { return trackOnly{p} },
		Store: func(now func() time.Time) stepup.Store {
			store = &barrierStore{Store: stepup.NewMemoryStore(stepup.MemoryClock(now)), waiting: make(chan struct{})}
			return store
		},
		Config: func(c *stepup.Config) { stepuptest.ReviewConfig(c); c.WebhookSecret = webhookSecret },
	})
	b := env.NewBrowser()
	b.Login("alice")
	status := b.Parked(b.Do(http.MethodPost, "/review", stepuptest.Form, "x=1", nil))
	require.Equal(t, http.StatusOK, deliverSigned(t, env,
		actionUpdated("alice", "wire", stepuptest.ReviewID(status), authsignal.StateReviewSucceeded)))
	store.mu.Lock()
	store.id = stepuptest.ReviewID(status)
	store.mu.Unlock()

	statuses := make(chan int, 2)
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, err := http.NewRequest(http.MethodGet, env.Server.URL+status, nil)
			if !assert.NoError(t, err) {
				return
			}
			req.Header.Set("Accept", "text/html")
			resp, err := b.C.Do(req)
			if !assert.NoError(t, err) {
				return
			}
			resp.Body.Close()
			statuses <- resp.StatusCode
		}()
	}
	wg.Wait()
	close(statuses)
	var got []int
	for s := range statuses {
		got = append(got, s)
	}
	assert.ElementsMatch(t, []int{http.StatusOK, http.StatusConflict}, got, "one run, one 409: never an error")
	assert.Len(t, env.Ledger.Runs("review"), 1, "exactly one execution")
}

func TestWebhookAuthenticatorDeletedRevokesGrants(t *testing.T) {
	env := newReviewEnv(t, nil)
	b := env.NewBrowser()
	b.Login("alice")
	require.Equal(t, http.StatusSeeOther, b.Get(b.Complete(b.Challenge(b.Get("/admin")))).StatusCode)
	require.Equal(t, http.StatusOK, b.Get("/admin").StatusCode, "remembered")

	other := []byte(`{"type":"authenticator.deleted","data":{"userId":"bob","verificationMethod":"EMAIL_OTP"}}`)
	require.Equal(t, http.StatusOK, deliverSigned(t, env, other))
	require.Equal(t, http.StatusOK, b.Get("/admin").StatusCode, "another user's authenticator: alice's grant stands")

	deleted := []byte(`{"type":"authenticator.deleted","data":{"userId":"alice","verificationMethod":"EMAIL_OTP"}}`)
	assert.Equal(t, http.StatusUnauthorized, deliver(t, env, deleted, sign("forged", env.Clock.Now(), deleted)))
	require.Equal(t, http.StatusOK, b.Get("/admin").StatusCode, "a forged delivery revokes nothing")
	require.Equal(t, http.StatusOK, deliverSigned(t, env, deleted))
	b.Challenge(b.Get("/admin")) // challenged again
}
