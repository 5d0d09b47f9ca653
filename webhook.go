package stepup

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/stepupkit/stepup/authsignal"
)

// webhookMaxBytes bounds a webhook delivery's body.
const webhookMaxBytes = 64 << 10

// Webhook returns the handler for the webhooks Authsignal sends, to mount
// where Authsignal is configured to deliver them (POST only). Each
// delivery's X-Signature-V2 is checked against Config.WebhookSecret with
// authsignal.VerifyWebhook (HMAC-SHA256 over the timestamp and the raw
// body, five minutes' tolerance) before anything in it is read: a delivery
// without a valid signature is refused with 401 and changes nothing.
//
// A delivery of type "action.updated" whose data names a review park
// (Policy.Review) by its idempotency key, with the park's user id and
// action code, records the reviewer's decision in the Store, so that the
// next visit of the status URL needs no call to Authsignal:
// REVIEW_SUCCEEDED approves it; any other settled state (REVIEW_FAILED,
// BLOCK, …) ends it for good. Duplicates and reordered deliveries are
// harmless: a decision is written once and never changed, a rejection
// ends the park whenever it arrives unless the request already ran, and a
// delivery for a park that ran, ended, expired or is unknown changes
// nothing. A delivery of type "authenticator.deleted" ends the user's
// Remember grants everywhere (Guard.Revoke). Other types are acknowledged
// and ignored. What the guard reads
// of a delivery is in docs/review.md.
//
// It answers 200 once the delivery is handled (or ignored), 400 for a
// signed body that is not a webhook, 503 when the Store fails (Authsignal
// retries), and 500 without a WebhookSecret.
func (g *Guard) Webhook() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		ev := Event{Method: r.Method, Path: r.URL.Path, Route: "webhook"}
		if e := g.serveWebhook(r, &ev); e != nil {
			g.report(r.Context(), ev, e)
			g.retryAfter(w, e)
			if e.Status == http.StatusMethodNotAllowed {
				w.Header().Set("Allow", http.MethodPost)
			}
			writeJSON(w, e.Status, map[string]string{"error": e.Code, "message": e.Message})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
}

// webhookEvent is what the guard reads of a delivery: Authsignal's
// envelope ({id, type, time, tenantId, data, …}) and, for an action, the
// action's user, code, idempotency key and state.
type webhookEvent struct {
	ID   string `json:"id"`
	Type string `json:"type"`
	Data struct {
		UserID         string           `json:"userId"`
		ActionCode     string           `json:"actionCode"`
		Action         string           `json:"action"` // the deprecated twin some payloads carry
		IdempotencyKey string           `json:"idempotencyKey"`
		State          authsignal.State `json:"state"`
	} `json:"data"`
}

// actionCode is the delivery's action code: actionCode, else action.
func (e *webhookEvent) actionCode() string {
	if e.Data.ActionCode != "" {
		return e.Data.ActionCode
	}
	return e.Data.Action
}

// parseWebhook decodes a delivery's verified body: one JSON object with a
// type; nothing may follow it. Fields the guard does not read are ignored.
func parseWebhook(body []byte) (*webhookEvent, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	var ev webhookEvent
	if err := dec.Decode(&ev); err != nil {
		return nil, fmt.Errorf("webhook body: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("webhook body: data after the JSON object")
	}
	if ev.Type == "" {
		return nil, errors.New("webhook body: no type")
	}
	return &ev, nil
}

// serveWebhook verifies and handles one delivery, or returns the refusal.
func (g *Guard) serveWebhook(r *http.Request, ev *Event) *Error {
	if r.Method != http.MethodPost {
		return refusal(http.StatusMethodNotAllowed, "method_not_allowed", "Webhooks are POSTed.", ErrBadRequest)
	}
	if g.cfg.WebhookSecret == "" {
		return errMisconfigured("Guard.Webhook needs Config.WebhookSecret, the signing secret of Authsignal's webhooks")
	}
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, webhookMaxBytes))
	if err != nil {
		return refusal(http.StatusRequestEntityTooLarge, "body_too_large", "This delivery is too large.", ErrBodyTooLarge)
	}
	err = authsignal.VerifyWebhook(body, r.Header.Get(authsignal.WebhookSignatureHeader), g.cfg.WebhookSecret, 0, g.now())
	if err != nil {
		return refusal(http.StatusUnauthorized, "bad_signature", "This delivery is not signed by Authsignal.",
			fmt.Errorf("%w: webhook: %w", ErrStepUpFailed, err))
	}
	we, err := parseWebhook(body)
	if err != nil {
		return refusal(http.StatusBadRequest, "bad_request", "This delivery could not be read.",
			fmt.Errorf("%w: %w", ErrBadRequest, err))
	}
	if we.Type == "authenticator.deleted" {
		// A factor of the user is gone (lost, reset): what it proved must
		// not go on opening remembered actions anywhere.
		ev.UserID = we.Data.UserID
		if we.Data.UserID == "" {
			return refusal(http.StatusBadRequest, "bad_request", "This delivery names no user.",
				fmt.Errorf("%w: webhook: authenticator.deleted without a user id", ErrBadRequest))
		}
		if err := g.Revoke(r.Context(), we.Data.UserID); err != nil {
			return errBusy(err) // Authsignal delivers it again
		}
		g.emit(r.Context(), *ev, EventRefuse, "webhook: authenticator deleted: grants revoked")
		return nil
	}
	if we.Type != "action.updated" {
		return nil // acknowledged; nothing the guard acts on
	}
	ev.UserID, ev.Action, ev.State = we.Data.UserID, we.actionCode(), we.Data.State
	return g.decide(r.Context(), we, ev)
}

// decide records what a verified action.updated delivery says of a review
// park (see Webhook).
func (g *Guard) decide(ctx context.Context, we *webhookEvent, ev *Event) *Error {
	id := we.Data.IdempotencyKey
	rec, err := g.cfg.Store.Get(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return nil // ran and gone, expired, or never parked here
	} else if err != nil {
		return errBusy(err)
	}
	if rec.Kind != KindReview || rec.UserID != we.Data.UserID || rec.Action != we.actionCode() {
		g.emit(ctx, *ev, EventRefuse, "webhook: names a record that is not this action's review")
		return nil
	}
	state := stateOfReview(we.Data.State)
	if state == reviewPending {
		return nil
	}
	if state == reviewApproved {
		d := &Record{ID: decisionID(id), Kind: KindDecision, Status: decisionApproved, Created: g.now(), Expires: rec.Expires, Park: id}
		if err := g.cfg.Store.Put(ctx, d); err != nil && !errors.Is(err, ErrExists) {
			return errBusy(err) // Authsignal delivers it again
		}
		g.emit(ctx, *ev, EventReview, "approved")
		return nil
	}
	// A rejection ends the park here and now, whatever was recorded
	// before, unless it already ran.
	if e := g.endReview(ctx, rec); e != nil && !errors.Is(e, ErrAlreadyUsed) {
		return e // Authsignal delivers it again
	}
	g.emit(ctx, *ev, EventReview, "rejected")
	return nil
}
