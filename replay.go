package stepup

import (
	"bytes"
	"context"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
)

type replayKey struct{}

// replayMark is carried by a replayed request; the first protected route
// that matches it spends token and park and runs without a new track.
type replayMark struct {
	rec    *Record
	token  string
	settle func() error // the callback's session bookkeeping, once spent
	used   atomic.Bool  // the replay reached its protected route
	spent  atomic.Bool  // token and park were spent for it
}

// replay runs the parked request through root. It spends nothing itself:
// the guard at the protected route spends token and park when the replay
// reaches it (see enforce), and only then settles the session and writes
// its cookie, before the handler runs; the outcome is kept for a refresh
// only then too. An answer written before the replay reaches the guard (a
// redirect, a CSRF or login check refusing it) is held back and replaced
// by a refusal, and the park stays pending for another try.
func (g *Guard) replay(w http.ResponseWriter, r *http.Request, root http.Handler, st *sessionState, ref *parkRef,
	rec *Record, token string) *Error {
	ctx := r.Context()
	m := &replayMark{rec: rec, token: token, settle: func() error {
		g.settle(ctx, st, ref, rec)
		return g.saveSession(w, r, st)
	}}
	before := w.Header().Clone()
	cw := &captureWriter{ResponseWriter: w, limit: int(g.cfg.MaxBodyBytes), mark: m}
	root.ServeHTTP(cw, g.replayRequest(r, m))
	switch {
	case m.spent.Load():
		g.keepOutcome(ctx, rec, cw)
		return nil
	case m.used.Load():
		return nil // the guard at the route refused (another callback won); its answer is written
	}
	h := w.Header()
	clear(h) // nothing of the held-back answer (a Location, a cookie) goes out
	for k, vs := range before {
		h[k] = vs
	}
	return errReplayNotReached(cw.held)
}

// spendReplay spends a replay's token and park when it reaches its route,
// then settles the callback's session (park done, Remember grant, cookie)
// before the handler runs.
func (g *Guard) spendReplay(ctx context.Context, m *replayMark) *Error {
	if e := g.spend(ctx, m.rec, m.token); e != nil {
		return e
	}
	m.spent.Store(true)
	if err := m.settle(); err != nil {
		return internalError(err)
	}
	return nil
}

// replayRequest rebuilds the parked request on top of the live one.
func (g *Guard) replayRequest(live *http.Request, m *replayMark) *http.Request {
	rec := m.rec
	u := &url.URL{RawQuery: rec.Query}
	if p, err := url.PathUnescape(rec.Path); err == nil {
		u.Path = p
		if u.EscapedPath() != rec.Path {
			u.RawPath = rec.Path
		}
	} else {
		u.Path = rec.Path
	}
	ctx := context.WithValue(live.Context(), replayKey{}, m)
	req, _ := http.NewRequestWithContext(ctx, rec.Method, "/", bytes.NewReader(rec.Body))
	req.URL = u
	req.RequestURI = u.RequestURI()
	req.Host = live.Host
	req.RemoteAddr = live.RemoteAddr
	req.TLS = live.TLS
	req.Proto, req.ProtoMajor, req.ProtoMinor = live.Proto, live.ProtoMajor, live.ProtoMinor
	req.Header = g.keepHeaders(rec.Header)
	if ua := live.Header.Get("User-Agent"); ua != "" {
		req.Header.Set("User-Agent", ua)
	}
	for _, c := range live.Header.Values("Cookie") {
		req.Header.Add("Cookie", c)
	}
	for k, vs := range live.Header {
		if forwardingHeader(k) {
			req.Header[k] = append([]string(nil), vs...)
		}
	}
	req.ContentLength = int64(len(rec.Body))
	if len(rec.Body) == 0 {
		req.Body = http.NoBody
	}
	return req
}

// forwardingHeader reports whether k is what a proxy in front tells the
// application about the connection (scheme, client address, host). A
// replay takes these from the live callback request, never from the
// parked one: middleware that redirects plain http to https behind a TLS
// proxy must see the callback's X-Forwarded-Proto.
func forwardingHeader(k string) bool {
	return strings.HasPrefix(k, "X-Forwarded-") || k == "Forwarded" || k == "X-Real-Ip" || k == "X-Url-Scheme"
}

// captureWriter passes a replay's response through and keeps a copy of
// it, up to limit bytes of body, for a refresh of the callback. Whatever is
// written before the replay reaches the guard at its route is not the
// route's answer: it is held back (only its status is noted in held).
type captureWriter struct {
	http.ResponseWriter
	mark   *replayMark
	held   int
	status int
	body   bytes.Buffer
	limit  int
	over   bool
}

// holding reports whether the replay has not reached its route yet.
func (c *captureWriter) holding() bool { return c.mark != nil && !c.mark.used.Load() }

func (c *captureWriter) WriteHeader(code int) {
	if c.holding() {
		if c.held == 0 {
			c.held = code
		}
		return
	}
	if c.status == 0 {
		c.status = code
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *captureWriter) Write(b []byte) (int, error) {
	if c.holding() {
		if c.held == 0 {
			c.held = http.StatusOK
		}
		return len(b), nil
	}
	if c.status == 0 {
		c.status = http.StatusOK
	}
	if !c.over {
		if c.body.Len()+len(b) > c.limit {
			c.over = true
			c.body.Reset()
		} else {
			c.body.Write(b)
		}
	}
	return c.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (c *captureWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }

// FlushError flushes the route's answer; one held back stays unsent.
func (c *captureWriter) FlushError() error {
	if c.holding() {
		return nil
	}
	return http.NewResponseController(c.ResponseWriter).Flush()
}

func outcomeID(parkID string) string { return "o." + parkID }

func (g *Guard) keepOutcome(ctx context.Context, rec *Record, cw *captureWriter) {
	status := cw.status
	if status == 0 {
		status = http.StatusOK
	}
	h := http.Header{}
	for _, k := range []string{"Content-Type", "Location"} {
		if v := cw.Header().Get(k); v != "" {
			h.Set(k, v)
		}
	}
	out := &Record{ID: outcomeID(rec.ID), Kind: KindOutcome, Status: status, Header: h,
		Created: g.now(), Expires: rec.Expires, Park: rec.ID}
	if !cw.over {
		out.Body = cw.body.Bytes()
	}
	_ = g.cfg.Store.Put(ctx, out)
}

// keptOutcome returns the response kept for a refresh of a replay's
// callback, or nil when there is none to show.
func (g *Guard) keptOutcome(ctx context.Context, rec *Record) *Record {
	out, err := g.cfg.Store.Get(ctx, outcomeID(rec.ID))
	if err != nil || out.Kind != KindOutcome || out.Status == 0 || (out.Body == nil && out.Header.Get("Location") == "") {
		return nil
	}
	return out
}

// writeOutcome answers with a kept response; only a same-origin Location
// goes out.
func writeOutcome(w http.ResponseWriter, out *Record) {
	if loc := out.Header.Get("Location"); loc != "" && isLocalLocation(loc) {
		w.Header().Set("Location", loc)
	}
	if ct := out.Header.Get("Content-Type"); ct != "" {
		w.Header().Set("Content-Type", ct)
		w.Header().Set("X-Content-Type-Options", "nosniff")
	}
	w.WriteHeader(out.Status)
	_, _ = w.Write(out.Body)
}
