package stepup

import (
	"context"
	"errors"
	"html/template"
	"log/slog"
	"net/http"

	"github.com/stepupkit/stepup/authsignal"
)

// EventType names a decision of the guard.
type EventType string

// The decisions the guard reports.
const (
	EventAllow     EventType = "allow"     // the handler runs (Authsignal allowed, a pass or a grant)
	EventChallenge EventType = "challenge" // the request was parked and a challenge sent
	EventBlock     EventType = "block"     // Authsignal answered BLOCK
	EventReview    EventType = "review"    // Authsignal answered REVIEW_REQUIRED
	EventReplay    EventType = "replay"    // a verified request runs (callback replay or token retry)
	EventRefuse    EventType = "refuse"    // the guard refused; Reason and Err say why
	EventFailOpen  EventType = "fail_open" // the provider failed and the policy let the request through
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
	Err    error  // the cause of a refusal or a fail-open, for logs
}

func (g *Guard) emit(ctx context.Context, ev Event, typ EventType, reason string) {
	ev.Type = typ
	ev.Reason = reason
	if g.cfg.OnEvent != nil {
		g.cfg.OnEvent(ctx, ev)
	}
	logger, level := g.cfg.Logger, logLevel(typ, ev.Err)
	if logger == nil && level >= slog.LevelWarn {
		logger = slog.Default()
	}
	if logger != nil && logger.Enabled(ctx, level) {
		attrs := []slog.Attr{
			slog.String("event", string(typ)), slog.String("action", ev.Action), slog.String("user", ev.UserID),
			slog.String("method", ev.Method), slog.String("path", ev.Path),
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
		logger.LogAttrs(ctx, level, "stepup", attrs...)
	}
}

// logLevel is Info for the decisions of a working guard, Warn for
// refusals, blocks, reviews and fail-opens, and Error when the guard
// cannot work (provider, store, session or wiring failures).
func logLevel(typ EventType, err error) slog.Level {
	switch {
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
func (g *Guard) Misconfigured(r *http.Request, reason string) *Error {
	e := errMisconfigured(reason)
	return g.refuse(r.Context(), Event{Method: r.Method, Path: r.URL.Path}, e)
}

// refuse reports a refusal and returns it.
func (g *Guard) refuse(ctx context.Context, ev Event, e *Error) *Error {
	ev.Err = e.Err
	g.emit(ctx, ev, EventRefuse, e.Code)
	return e
}

var refusalPage = template.Must(template.New("refusal").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<style>body{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;color:#222}h1{font-size:1.4rem}</style>
</head><body><h1>{{.Title}}</h1><p id="stepup-message">{{.Message}}</p><p><a href="/">Back to the start page</a></p></body></html>
`))

// writeError answers a refusal: Config.ErrorHandler when set, else JSON for
// API clients and a plain page for browsers. Only the public code and
// message are written.
func (g *Guard) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var e *Error
	if !errors.As(err, &e) {
		e = internalError(err)
	}
	if g.cfg.ErrorHandler != nil {
		g.cfg.ErrorHandler(w, r, e)
		return
	}
	WriteError(w, r, e, g.cfg.IsAPI(r))
}

// WriteError writes the default answer for a refusal: JSON
// {"error": code, "message": …} when api is true, else a small HTML page.
// Error handlers that only want to change some refusals can call it for
// the others.
func WriteError(w http.ResponseWriter, r *http.Request, e *Error, api bool) {
	w.Header().Set("Cache-Control", "no-store")
	if api {
		writeJSON(w, e.Status, map[string]string{"error": e.Code, "message": e.Message})
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(e.Status)
	title := http.StatusText(e.Status)
	if e.Status == http.StatusForbidden || e.Status == http.StatusConflict {
		title = "Verification not completed"
	}
	_ = refusalPage.Execute(w, struct{ Title, Message string }{title, e.Message})
}
