package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"

	"github.com/labstack/echo/v4"
)

// Validate before challenging: a transfer that cannot run (an amount that
// does not parse, a payee the bank does not know, more than the balance)
// is refused before the guard, so the customer is never asked to verify
// a transfer that would then fail. The handlers read the same fields with
// the same functions and check again when they run: this check is for the
// customer, theirs is the bank's word (the balance may change while the
// customer verifies).

// maxAPIBody bounds the JSON body of an API transfer.
const maxAPIBody = 64 << 10

// order is a transfer as the customer asked for it.
type order struct {
	amount int64  // cents
	to     string // the payee's user name
	// What the customer typed, to fill the form in again.
	rawAmount, rawTo string
}

// refusal is why an order cannot run: an HTTP status and a sentence for
// the customer.
type refusal struct {
	status int
	code   string // the API's error code
	msg    string
}

// newRefusal builds a refusal; refuseForm and apiError answer with it.
func newRefusal(status int, code, msg string) *refusal {
	return &refusal{status: status, code: code, msg: msg}
}

// checkTransfers refuses, before the guard, a transfer that could not run.
// It sits between authorize and the guard in the chain (routes): whether
// a transfer is possible at all is not something a step-up can change.
func (a *App) checkTransfers(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		user := userFrom(r.Context())
		if r.Method != http.MethodPost || user == "" {
			return next(c) // the guard and requireLogin answer
		}
		switch c.Path() {
		case "/transfer":
			if o, bad := a.formOrder(r, user); bad != nil {
				return a.refuseForm(c, o, bad)
			}
		case "/api/transfer":
			body, err := readBody(c, maxAPIBody+1)
			if err != nil {
				return apiError(c, http.StatusBadRequest, "bad_request", "The request body could not be read.")
			}
			if _, bad := a.apiOrder(r, user, body); bad != nil {
				return apiError(c, bad.status, bad.code, bad.msg)
			}
		}
		return next(c)
	}
}

// readBody reads up to limit bytes of the request body. The guard still
// parks the exact body: stepupecho.PreserveBody (routes) records what
// middleware in front of the guard reads, as it does for the CSRF check.
func readBody(c echo.Context, limit int64) ([]byte, error) {
	r := c.Request()
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	return io.ReadAll(io.LimitReader(r.Body, limit))
}

// formOrder reads a form transfer exactly where the policy's attributes
// read it, the url-encoded body with one value each, and checks it.
func (a *App) formOrder(r *http.Request, user string) (order, *refusal) {
	if err := r.ParseForm(); err != nil {
		return order{}, newRefusal(http.StatusBadRequest, "bad_request", "the form could not be read")
	}
	amounts, tos := r.PostForm["amount"], r.PostForm["to"]
	if len(amounts) != 1 || len(tos) != 1 {
		return order{}, newRefusal(http.StatusBadRequest, "bad_request", "send one amount and one payee")
	}
	return a.checkOrder(user, amounts[0], tos[0])
}

// apiOrder decodes an API transfer the way the policy's json attribute
// does (keys matched exactly, the last of duplicate keys wins), refuses
// anything else, and checks it.
func (a *App) apiOrder(r *http.Request, user string, body []byte) (order, *refusal) {
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		return order{}, newRefusal(http.StatusUnsupportedMediaType, "bad_request", "Send application/json.")
	}
	if len(body) > maxAPIBody {
		return order{}, newRefusal(http.StatusRequestEntityTooLarge, "bad_request", "The request is too large.")
	}
	var raw map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&raw); err != nil || raw == nil {
		return order{}, newRefusal(http.StatusBadRequest, "bad_request", `Send {"amount": 5000, "to": "bob"}.`)
	}
	if _, err := dec.Token(); err != io.EOF {
		return order{}, newRefusal(http.StatusBadRequest, "bad_request", "Send one JSON object and nothing after it.")
	}
	for k := range raw {
		if k != "amount" && k != "to" {
			return order{}, newRefusal(http.StatusBadRequest, "bad_request", "Unknown field "+k+".")
		}
	}
	var amount json.Number
	var to string
	if json.Unmarshal(raw["amount"], &amount) != nil || json.Unmarshal(raw["to"], &to) != nil {
		return order{}, newRefusal(http.StatusBadRequest, "bad_request", `Send {"amount": 5000, "to": "bob"}.`)
	}
	o, bad := a.checkOrder(user, amount.String(), to)
	if bad != nil {
		bad.msg = "Nothing was sent: " + bad.msg + "."
	}
	return o, bad
}

// checkOrder checks the amount's format, the payee and the balance.
func (a *App) checkOrder(user, amount, to string) (order, *refusal) {
	o := order{rawAmount: amount, rawTo: to}
	cents, err := parseAmount(amount)
	if err == nil {
		err = checkPayee(to)
	}
	if err != nil {
		return o, newRefusal(http.StatusUnprocessableEntity, "invalid", err.Error())
	}
	payee, ok := a.bank.payee(to)
	if !ok {
		return o, newRefusal(http.StatusUnprocessableEntity, "invalid", errNoPayee.Error())
	}
	o.amount, o.to = cents, payee
	if err := a.bank.check(user, payee, cents); err != nil {
		return o, newRefusal(http.StatusUnprocessableEntity, refusalCode(err), err.Error())
	}
	return o, nil
}

// refusalCode is the API's error code for a transfer the bank refuses.
func refusalCode(err error) string {
	if errors.Is(err, errInsufficientFunds) {
		return "insufficient_funds"
	}
	return "invalid"
}

// refuseForm answers the dashboard again, the form filled in as sent.
func (a *App) refuseForm(c echo.Context, o order, bad *refusal) error {
	return a.renderDashboard(c, bad.status, "Nothing was sent: "+bad.msg+".", o.rawAmount, o.rawTo)
}
