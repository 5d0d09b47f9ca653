package main

import (
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"

	"github.com/gorilla/sessions"
	"github.com/labstack/echo/v4"

	"github.com/stepupkit/stepup"
)

// pageData is what every page template gets.
type pageData struct {
	Title    string
	User     string
	Admin    bool // the user is bank staff: the layout links the admin area
	CSRF     string
	Error    string
	Code     string
	Notice   string
	Script   bool
	Account  Account
	Transfer Transfer
	Form     struct{ Amount, To, Username string }
	Payees   []Account
	How      string
	Accounts []Account
	Events   []decision
	Reviews  []pendingReview
	Grants   []stepup.Grant // the user's remembered verifications (settings)
}

func (a *App) page(c echo.Context, title string) pageData {
	csrf, _ := c.Get("csrf").(string)
	user := userFrom(c.Request().Context())
	return pageData{Title: title, User: user, Admin: a.bank.isAdmin(user), CSRF: csrf}
}

func (a *App) render(c echo.Context, status int, name string, d pageData) error {
	a.pages.render(c.Response(), status, name, d)
	return nil
}

func (a *App) home(c echo.Context) error {
	if userFrom(c.Request().Context()) != "" {
		return c.Redirect(http.StatusSeeOther, "/dashboard")
	}
	return c.Redirect(http.StatusSeeOther, "/login")
}

func (a *App) loginPage(c echo.Context) error {
	if userFrom(c.Request().Context()) != "" {
		return c.Redirect(http.StatusSeeOther, "/dashboard")
	}
	return a.render(c, http.StatusOK, "login.html", a.page(c, "Log in"))
}

func (a *App) login(c echo.Context) error {
	r := c.Request()
	user, password := r.PostFormValue("username"), r.PostFormValue("password")
	if !a.bank.authenticate(user, password) {
		d := a.page(c, "Log in")
		d.Error = "That user name and password do not match."
		d.Form.Username = user
		return a.render(c, http.StatusUnauthorized, "login.html", d)
	}
	// The password checked out: the guard asks Authsignal, and starts the
	// session (startSession) at once for a known device, or after the
	// challenge, in this browser only.
	a.guard.SignIn(c.Response(), r, user)
	return nil
}

// startSession is the guard's SignIn.Complete: a new login session for
// user, with a new id. Whatever this browser held before (another user's
// session, the guard's own state) ends here; the guard dropped its own.
func (a *App) startSession(w http.ResponseWriter, r *http.Request, user string) error {
	sess, _ := a.sessions.Get(r, sessionName)
	clear(sess.Values)
	sess.Values["user"] = user
	sess.Values["sid"] = rand.Text() // this login's id: the guard counts challenges per login session
	return sess.Save(r, w)
}

func (a *App) logout(c echo.Context) error {
	r, w := c.Request(), c.Response()
	if err := a.guard.Forget(w, r); err != nil { // pending step-ups and Remember grants end too
		return err
	}
	sess, _ := a.sessions.Get(r, sessionName)
	clear(sess.Values)
	sess.Options = &sessions.Options{Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteLaxMode}
	if err := sess.Save(r, w); err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/login")
}

func (a *App) dashboard(c echo.Context) error {
	return a.renderDashboard(c, http.StatusOK, "", "", "")
}

func (a *App) renderDashboard(c echo.Context, status int, errMsg, amount, to string) error {
	user := userFrom(c.Request().Context())
	d := a.page(c, "Your accounts")
	d.Account, _ = a.bank.account(user)
	d.Error, d.Form.Amount, d.Form.To = errMsg, amount, to
	d.Script = true
	for _, u := range demoUsers {
		if u.ID != user {
			d.Payees = append(d.Payees, Account{ID: u.ID, IBAN: u.IBAN})
		}
	}
	return a.render(c, status, "dashboard.html", d)
}

// verification is how the guard let this request through. A protected
// handler that finds none refuses: it would mean a policy is missing.
func verification(r *http.Request, action string) (string, error) {
	v, ok := stepup.VerificationFrom(r.Context())
	if !ok || v.Action != action || v.UserID != userFrom(r.Context()) {
		return "", echo.NewHTTPError(http.StatusInternalServerError, "This route is not protected by a step-up policy.")
	}
	return string(v.How), nil
}

// transfer executes a form transfer. It reads the fields exactly where
// the policy's attribute reads them: the url-encoded body, one value each.
// checkTransfers ran the same checks before the guard; they run again
// here, and the bank checks the balance once more as it moves the money.
func (a *App) transfer(c echo.Context) error {
	r := c.Request()
	how, err := verification(r, "transfer")
	if err != nil {
		return err
	}
	user := userFrom(r.Context())
	o, bad := a.formOrder(r, user)
	if bad != nil {
		return a.refuseForm(c, o, bad)
	}
	t, err := a.bank.transfer(user, o.to, o.amount, how, "form")
	if err != nil {
		return a.refuseForm(c, o, newRefusal(http.StatusUnprocessableEntity, refusalCode(err), err.Error()))
	}
	a.log.Info("transfer", "user", t.From, "to", t.To, "amount", money(t.Amount), "verified", how, "id", t.ID)
	return c.Redirect(http.StatusSeeOther, "/transfers/"+t.ID)
}

func (a *App) transferResult(c echo.Context) error {
	user := userFrom(c.Request().Context())
	t, ok := a.bank.transferOf(user, c.Param("id"))
	if !ok {
		return echo.NewHTTPError(http.StatusNotFound, "There is no such transfer.")
	}
	d := a.page(c, "Transfer done")
	d.Transfer = t
	d.Account, _ = a.bank.account(user)
	return a.render(c, http.StatusOK, "transfer.html", d)
}

// apiTransfer is the JSON twin of transfer. It decodes the body the way
// the policy's json attribute does (apiOrder), so that the amount it
// moves is the amount the risk rules saw.
func (a *App) apiTransfer(c echo.Context) error {
	r := c.Request()
	how, err := verification(r, "transfer")
	if err != nil {
		return err
	}
	user := userFrom(r.Context())
	body, err := io.ReadAll(io.LimitReader(r.Body, maxAPIBody+1))
	if err != nil {
		return apiError(c, http.StatusBadRequest, "bad_request", "The request body could not be read.")
	}
	o, bad := a.apiOrder(r, user, body)
	if bad != nil {
		return apiError(c, bad.status, bad.code, bad.msg)
	}
	t, err := a.bank.transfer(user, o.to, o.amount, how, "api")
	if err != nil {
		return apiError(c, http.StatusUnprocessableEntity, refusalCode(err), "Nothing was sent: "+err.Error()+".")
	}
	a.log.Info("transfer", "user", t.From, "to", t.To, "amount", money(t.Amount), "verified", how, "id", t.ID)
	acct, _ := a.bank.account(t.From)
	return c.JSON(http.StatusOK, map[string]any{
		"id": t.ID, "amount": money(t.Amount), "currency": currency, "to": t.To, "verified": how,
		"balance": money(acct.Balance), "balanceCents": acct.Balance,
		"message": "Transfer of " + money(t.Amount) + " to " + t.To + " done " + verifiedPhrase(how) + ".",
	})
}

// apiAccount is the account as the dashboard shows it: the script reads
// it after an API transfer to update the balance and the recent
// transactions, each written as the page writes them.
func (a *App) apiAccount(c echo.Context) error {
	acct, _ := a.bank.account(userFrom(c.Request().Context()))
	recent := make([]map[string]string, 0, len(acct.Recent))
	for _, e := range acct.Recent {
		recent = append(recent, map[string]string{"id": e.TransferID, "time": clockTime(e.At), "with": e.Party,
			"amount": money(e.Amount), "verification": verifiedPhrase(e.Verified)})
	}
	return c.JSON(http.StatusOK, map[string]any{
		"user": acct.ID, "iban": acct.IBAN, "email": acct.Email, "currency": currency,
		"balance": money(acct.Balance), "balanceCents": acct.Balance, "transactions": len(acct.Recent), "recent": recent,
	})
}

func apiError(c echo.Context, status int, code, msg string) error {
	return c.JSON(status, map[string]string{"error": code, "message": msg})
}

func (a *App) settings(c echo.Context) error {
	d := a.page(c, "Settings")
	d.Account, _ = a.bank.account(d.User)
	switch c.QueryParam("changed") {
	case "email":
		d.Notice = "Your email address is now " + d.Account.Email + "."
	case "revoked":
		d.Notice = "Done: the next time, you verify again."
	}
	grants, err := a.guard.Grants(c.Request().Context(), d.User)
	if err != nil {
		d.Error = "Your remembered verifications cannot be shown right now; try again in a moment."
		return a.render(c, http.StatusServiceUnavailable, "settings.html", d)
	}
	d.Grants = grants
	return a.render(c, http.StatusOK, "settings.html", d)
}

// revokeGrants ends the user's remembered verifications, in every browser:
// the one action the form names, or all of them.
func (a *App) revokeGrants(c echo.Context) error {
	r := c.Request()
	var actions []string
	if action := r.PostFormValue("action"); action != "" {
		actions = []string{action}
	}
	if err := a.guard.Revoke(r.Context(), userFrom(r.Context()), actions...); err != nil {
		return echo.NewHTTPError(http.StatusServiceUnavailable, "Nothing may have been revoked; try again in a moment.").SetInternal(err)
	}
	return c.Redirect(http.StatusSeeOther, "/settings?changed=revoked")
}

// changeEmail always needs a step-up (policy changeEmail, rule default
// CHALLENGE_REQUIRED).
func (a *App) changeEmail(c echo.Context) error {
	r := c.Request()
	if _, err := verification(r, "changeEmail"); err != nil {
		return err
	}
	if err := r.ParseForm(); err != nil {
		return echo.NewHTTPError(http.StatusBadRequest, "The form could not be read.")
	}
	emails := r.PostForm["email"]
	if len(emails) != 1 || checkEmail(emails[0]) != nil {
		d := a.page(c, "Settings")
		d.Account, _ = a.bank.account(d.User)
		d.Error = "Nothing was changed: enter one email address such as you@example.com."
		return a.render(c, http.StatusUnprocessableEntity, "settings.html", d)
	}
	if err := a.bank.setEmail(userFrom(r.Context()), emails[0]); err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/settings?changed=email")
}

// admin needs a step-up, remembered for five minutes (policy adminAccess),
// and a staff member: authorize refuses customers before the guard; the
// check here keeps the page closed if the route ever loses that middleware.
func (a *App) admin(c echo.Context) error {
	how, err := verification(c.Request(), "adminAccess")
	if err != nil {
		return err
	}
	if !a.bank.isAdmin(userFrom(c.Request().Context())) {
		return echo.NewHTTPError(http.StatusForbidden, "The admin area is for the bank's staff.")
	}
	d := a.page(c, "Admin")
	d.How = how
	for _, u := range demoUsers {
		acct, _ := a.bank.account(u.ID)
		d.Accounts = append(d.Accounts, acct)
	}
	d.Events = a.events.list()
	d.Reviews = a.pendingReviews()
	return a.render(c, http.StatusOK, "admin.html", d)
}

// verifiedPhrase says how a transfer got through the guard.
func verifiedPhrase(how string) string {
	switch how {
	case "challenge":
		return "after verification"
	case "token":
		return "after verification (API)"
	case "allow":
		return "without extra verification"
	case "remembered":
		return "under a recent verification"
	case "fail_open":
		return "without verification (Authsignal unavailable)"
	case "review":
		return "after the bank's review"
	}
	return "(" + how + ")"
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
