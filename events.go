package stepup

import (
	"context"
	"errors"
	"log/slog"
	"net/http"

	"github.com/stepupkit/stepup/authsignal"
)

// EventType names a decision of the guard.
type EventType string

// The decisions the guard reports.
const (
	EventAllow     EventType = "allow"     // the handler runs (Authsignal allowed, a pass or a grant; reason "unenrolled": a user with no second factor)
	EventChallenge EventType = "challenge" // the request was parked and a challenge sent
	EventBlock     EventType = "block"     // Authsignal answered BLOCK
	EventReview    EventType = "review"    // Authsignal answered REVIEW_REQUIRED
	EventReplay    EventType = "replay"    // a verified request runs (callback replay or token retry)
	EventRefuse    EventType = "refuse"    // the guard refused; Reason and Err say why
	EventFailOpen  EventType = "fail_open" // the provider failed and the policy let the request through
	EventSignIn    EventType = "sign_in"   // a sign-in completed: Config.SignIn.Complete ran
)

// Event describes one decision. It never holds a token, a body, a cookie
// or a key.
type Event struct {
	Type   EventType
	Action string
	UserID string
	Method string
	Route  string // the policy's route ("/" for Require)
	Path   string // the request path
	State  authsignal.State
	Reason string // short, for people: "browser", "api", "pass", "token"…
	// Err is the cause of a refusal or a fail-open, for logs; on an allow,
	// the Store or Counter that could not answer (the request ran on the
	// provider's ALLOW; challenges are refused until the store is back).
	// The log names a store fault once per 10 seconds, with how many lines
	// it left out; OnEvent sees every event.
	Err error
	// SignIn is true for the decisions of a sign-in (Guard.SignIn and the
	// callback of a pending sign-in); their log lines say sign_in=true.
	SignIn bool
}

func (g *Guard) emit(ctx context.Context, ev Event, typ EventType, reason string) {
	ev.Type = typ
	ev.Reason = reason
	if g.cfg.OnEvent != nil {
		g.cfg.OnEvent(ctx, ev)
	}
	logger, level := g.cfg.Logger, logLevel(typ, reason, ev.Err)
	if logger == nil && level >= slog.LevelWarn {
		logger = slog.Default()
	}
	if logger != nil && logger.Enabled(ctx, level) {
		write, skipped := g.faults.line(ev.Err, g.now())
		if !write {
			return // a store fault named less than faultLogEvery ago
		}
		attrs := []slog.Attr{
			slog.String("event", string(typ)), slog.String("action", ev.Action), slog.String("user", ev.UserID),
			slog.String("method", ev.Method), slog.String("path", ev.Path),
		}
		if ev.SignIn {
			attrs = append(attrs, slog.Bool("sign_in", true))
		}
		if reason != "" {
			attrs = append(attrs, slog.String("reason", reason))
		}
		if ev.State != "" {
			attrs = append(attrs, slog.String("state", string(ev.State)))
		}
		if ev.Err != nil {
			attrs = append(attrs, slog.String("error", ev.Err.Error()))
		}
		if skipped > 0 {
			attrs = append(attrs, slog.Int64("store_faults_not_logged", skipped))
		}
		logger.LogAttrs(ctx, level, "stepup", attrs...)
	}
}

// logLevel is Info for the decisions of a working guard, Warn for
// refusals, blocks, reviews, fail-opens and passes without a second factor
// (Policy.Unenrolled UnenrolledAllow), and Error when the guard cannot work
// (provider, store, session or wiring failures).
func logLevel(typ EventType, reason string, err error) slog.Level {
	switch {
	case typ == EventAllow && reason == reasonUnenrolled:
		return slog.LevelWarn
	case typ == EventAllow && isStoreFault(err):
		return slog.LevelWarn // allowed while the Store or Counter is down: challenges are refused meanwhile
	case typ == EventRefuse && errors.Is(err, ErrNotLoggedIn):
		return slog.LevelInfo
	case typ == EventRefuse && (errors.Is(err, ErrProvider) || errors.Is(err, ErrInternal) || errors.Is(err, ErrMisconfigured)):
		return slog.LevelError
	case typ == EventRefuse || typ == EventFailOpen || typ == EventBlock || typ == EventReview:
		return slog.LevelWarn
	}
	return slog.LevelInfo
}

// Misconfigured reports a wiring mistake that an adapter found at request
// time (for example echo middleware registered with Pre, where no route is
// matched yet) and returns the 500 refusal to answer with. reason says how
// to fix the wiring; it is logged, never shown to the client.
//
// For router adapters; an application does not need it.
func (g *Guard) Misconfigured(r *http.Request, reason string) *Error {
	e := errMisconfigured(reason)
	g.report(r.Context(), Event{Method: r.Method, Path: r.URL.Path}, e)
	return e
}

// report tells Config.OnEvent and the log about a refusal, once, from the
// entry point that answers it: a BLOCK or REVIEW_REQUIRED answer as such,
// anything else as EventRefuse with the refusal's code.
func (g *Guard) report(ctx context.Context, ev Event, e *Error) {
	ev.Err = e.Err
	switch {
	case errors.Is(e.Err, ErrBlocked):
		g.emit(ctx, ev, EventBlock, "")
	case errors.Is(e.Err, ErrReview):
		g.emit(ctx, ev, EventReview, "")
	default:
		g.emit(ctx, ev, EventRefuse, e.Code)
	}
}
