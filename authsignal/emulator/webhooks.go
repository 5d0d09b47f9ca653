package emulator

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Webhooks. When a webhook URL is set (Config.WebhookURL, or SetWebhook),
// every change of an action's state (a PATCH, the hosted page settling a
// challenge, …) is delivered there as Authsignal delivers its webhooks: a
// POST of a JSON envelope
//
//	{"version": 1, "id": "<unique>", "source": "https://authsignal.com",
//	 "time": "<RFC 3339>", "tenantId": "emulator", "type": "action.updated",
//	 "data": {"userId", "actionCode", "idempotencyKey", "state", "stateUpdatedAt"}}
//
// signed in the X-Signature-V2 header, "t=<unix seconds>,v2=<signature>",
// the signature being the base64 (standard, unpadded) HMAC-SHA256 of
// "<t>.<body>" keyed with the webhook secret; t is the emulator's clock.
// Deliveries leave in the background, one attempt each, in the order the
// changes happen; Deliveries lists them and WaitWebhooks waits for those
// on their way.

// WebhookType is the type of the deliveries the emulator sends.
const WebhookType = "action.updated"

// WebhookDelivery is one delivery the emulator made.
type WebhookDelivery struct {
	Type           string
	UserID         string
	Action         string
	IdempotencyKey string
	State          string
	Status         int    // the receiver's status; 0 when it could not be reached
	Err            string // why it could not be reached
}

// webhookSender delivers the emulator's webhooks.
type webhookSender struct {
	mu      sync.Mutex
	url     string
	secret  string
	client  *http.Client
	wg      sync.WaitGroup
	queue   chan webhookMsg // keeps deliveries in order
	done    []WebhookDelivery
	started bool
}

// SetWebhook sets where, and with which signing secret, the emulator
// delivers its webhooks from now on; an empty url stops them. For tests
// whose receiver starts after the emulator.
func (e *Emulator) SetWebhook(url, secret string) {
	w := &e.webhooks
	w.mu.Lock()
	defer w.mu.Unlock()
	w.url, w.secret = url, secret
}

// Deliveries returns the webhook deliveries made so far, oldest first.
func (e *Emulator) Deliveries() []WebhookDelivery {
	w := &e.webhooks
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]WebhookDelivery(nil), w.done...)
}

// WaitWebhooks waits until every delivery queued so far was made.
func (e *Emulator) WaitWebhooks() { e.webhooks.wg.Wait() }

// webhookLocked queues the delivery of rec's state change, with e.mu held.
func (e *Emulator) webhookLocked(rec *actionRecord) {
	w := &e.webhooks
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.url == "" {
		return
	}
	now := e.now()
	var id [16]byte
	_, _ = rand.Read(id[:])
	type data struct {
		UserID         string `json:"userId"`
		ActionCode     string `json:"actionCode"`
		IdempotencyKey string `json:"idempotencyKey"`
		State          string `json:"state"`
		StateUpdatedAt string `json:"stateUpdatedAt"`
	}
	body, err := json.Marshal(struct {
		Version  int    `json:"version"`
		ID       string `json:"id"`
		Source   string `json:"source"`
		Time     string `json:"time"`
		TenantID string `json:"tenantId"`
		Type     string `json:"type"`
		Data     data   `json:"data"`
	}{1, fmt.Sprintf("%x", id), "https://authsignal.com", now.UTC().Format(time.RFC3339Nano), "emulator", WebhookType,
		data{rec.key.user, rec.key.action, rec.key.key, rec.state, rec.updatedAt.UTC().Format(timeLayout)}})
	if err != nil {
		return
	}
	if !w.started {
		w.started = true
		w.client = &http.Client{Timeout: 10 * time.Second}
		w.queue = make(chan webhookMsg, 1024)
		go e.deliverWebhooks()
	}
	ts := strconv.FormatInt(now.Unix(), 10)
	mac := hmac.New(sha256.New, []byte(w.secret))
	mac.Write([]byte(ts + "."))
	mac.Write(body)
	sig := "t=" + ts + ",v2=" + base64.RawStdEncoding.EncodeToString(mac.Sum(nil))
	msg := webhookMsg{w.url, sig, body, WebhookDelivery{Type: WebhookType, UserID: rec.key.user, Action: rec.key.action,
		IdempotencyKey: rec.key.key, State: rec.state}}
	w.wg.Add(1)
	select {
	case w.queue <- msg:
	default: // the queue is full: this change is not delivered
		w.wg.Done()
		e.logf("emulator: webhook queue full; a delivery was dropped")
	}
}

// webhookMsg is one delivery on its way.
type webhookMsg struct {
	URL, Sig string
	Body     []byte
	D        WebhookDelivery
}

// deliverWebhooks makes the queued deliveries, one at a time, in order.
func (e *Emulator) deliverWebhooks() {
	w := &e.webhooks
	for m := range w.queue {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, m.URL, bytes.NewReader(m.Body))
		if err == nil {
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("X-Signature-V2", m.Sig)
			var resp *http.Response
			if resp, err = w.client.Do(req); err == nil {
				m.D.Status = resp.StatusCode
				resp.Body.Close()
			}
		}
		cancel()
		if err != nil {
			m.D.Err = err.Error()
		}
		e.logf("emulator: webhook %s %s state=%s status=%d", m.D.Type, m.D.Action, m.D.State, m.D.Status)
		w.mu.Lock()
		if len(w.done) >= maxDeliveriesKept {
			w.done = w.done[1:]
		}
		w.done = append(w.done, m.D)
		w.mu.Unlock()
		w.wg.Done()
	}
}

// maxDeliveriesKept bounds what Deliveries remembers.
const maxDeliveriesKept = 1000
