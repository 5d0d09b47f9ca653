package main

import (
	"fmt"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/stepupkit/stepup/authsignal"
)

// Transfers over 50,000.00 wait for the bank's approval (rules.yaml:
// REVIEW_REQUIRED; policies.yaml: review: 24h). The customer's browser
// waits on the guard's status page; a staff member approves or rejects the
// transfer in the admin area, which PATCHes the action at Authsignal (here
// the emulator), and the customer's next look at the status page runs it
// once (docs/review.md).

// pendingReview is one transfer waiting for review, as the admin page
// lists it.
type pendingReview struct {
	User, Action, Key string
	Amount, To        string
}

// pendingReviews lists the actions the embedded emulator holds for review.
// With Authsignal itself the bank's staff use Authsignal's portal instead:
// the list is empty.
func (a *App) pendingReviews() []pendingReview {
	if a.emu == nil {
		return nil
	}
	var out []pendingReview
	for _, t := range a.emu.Tracked() {
		if t.State != string(authsignal.StateReviewRequired) {
			continue
		}
		r := pendingReview{User: t.UserID, Action: t.Action, Key: t.IdempotencyKey}
		if v, ok := t.Custom["amount"]; ok {
			r.Amount = fmt.Sprint(v)
		}
		if v, ok := t.Custom["to"]; ok {
			r.To = fmt.Sprint(v)
		}
		out = append(out, r)
	}
	return out
}

// settleReview approves or rejects a transfer held for review: staff only
// (authorize), behind the admin area's step-up (policy adminAccess).
func (a *App) settleReview(c echo.Context) error {
	if _, err := verification(c.Request(), "adminAccess"); err != nil {
		return err
	}
	state := authsignal.StateReviewFailed
	switch c.FormValue("decision") {
	case "approve":
		state = authsignal.StateReviewSucceeded
	case "reject":
	default:
		return echo.NewHTTPError(http.StatusBadRequest, "Approve or reject.")
	}
	user, action, key := c.FormValue("user"), c.FormValue("action"), c.FormValue("key")
	if action != "transfer" {
		return echo.NewHTTPError(http.StatusBadRequest, "Only transfers are reviewed here.")
	}
	if _, err := a.client.UpdateAction(c.Request().Context(), user, action, key, state); err != nil {
		return echo.NewHTTPError(http.StatusBadGateway, "Authsignal did not take the decision.").SetInternal(err)
	}
	return c.Redirect(http.StatusSeeOther, "/admin?reviewed="+string(state))
}
