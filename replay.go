package stepup

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
)

type replayKey struct{}

// replayMark is carried by a replayed request; the first protected route
// that matches it spends token and park and runs without a new track.
type replayMark struct {
	rec   *Record
	token string
	used  atomic.Bool // the replay reached its protected route
	spent atomic.Bool // token and park were spent for it
	// The callback's session bookkeeping, settled once spent.
	g   *Guard
	w   http.ResponseWriter
	r   *http.Request
	st  *sessionState
	ref *parkRef
}

// settle records the spent park in the callback's session (park done,
// Remember grant) and writes its cookie.
func (m *replayMark) settle() error {
	m.g.settle(m.r, m.st, m.ref, m.rec)
	return m.g.saveSession(m.w, m.r, m.st)
}

// replayRun is what one replay needs beside the request, in one
// allocation: the mark the protected route finds, the writer that
// captures the answer, and the reader of the parked body.
type replayRun struct {
	ctx  replayContext
	mark replayMark
	cw   captureWriter
	body bodyReader
}

// replayContext is the replayed request's context: the live request's,
// carrying the replay's mark under replayKey, as context.WithValue would
// make it, without an allocation of its own.
type replayContext struct {
	context.Context
	mark *replayMark
}

// Value returns the replay's mark for replayKey, and the live context's
// value for any other key.
func (c *replayContext) Value(key any) any {
	if _, ok := key.(replayKey); ok {
		return c.mark
	}
	return c.Context.Value(key)
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
	run := &replayRun{mark: replayMark{rec: rec, token: token, g: g, w: w, r: r, st: st, ref: ref}}
	m, cw := &run.mark, &run.cw
	*cw = captureWriter{ResponseWriter: w, limit: int(g.cfg.MaxBodyBytes), mark: m}
	before := w.Header().Clone()
	ctx, end := g.startStep(r.Context(), &Step{Name: StepReplay, Action: rec.Action, Trace: rec.Trace})
	root.ServeHTTP(cw, g.replayRequest(r.WithContext(ctx), run))
	switch {
	case m.spent.Load():
		end(nil)
		g.keepOutcome(r.Context(), rec, cw)
		return nil
	case m.used.Load():
		end(ErrAlreadyUsed)
		return nil // the guard at the route refused (another callback won); its answer is written
	}
	h := w.Header()
	clear(h) // nothing of the held-back answer (a Location, a cookie) goes out
	for k, vs := range before {
		h[k] = vs
	}
	e := errReplayNotReached(cw.held)
	end(e)
	return e
}

// spendReplay spends a replay's token and park when it reaches its route,
// then settles the callback's session (park done, Remember grant, cookie)
// before the handler runs.
func (g *Guard) spendReplay(ctx context.Context, m *replayMark) *Error {
	if m.rec.Kind == KindReview {
		return g.spendReview(ctx, m) // no token, no session to settle
	}
	if e := g.spend(ctx, m.rec, m.token); e != nil {
		return e
	}
	m.spent.Store(true)
	if err := m.settle(); err != nil {
		return internalError(err)
	}
	return nil
}

// replayRequest rebuilds the parked request on top of the live one: the
// parked method, path, query, body and allow-listed headers; the live
// request's host, remote address, TLS state, protocol, User-Agent, cookies
// and forwarding headers.
func (g *Guard) replayRequest(live *http.Request, run *replayRun) *http.Request {
	rec := run.mark.rec
	run.ctx = replayContext{Context: live.Context(), mark: &run.mark}
	req, _ := http.NewRequestWithContext(&run.ctx, rec.Method, "/", nil)
	u := req.URL // "/" parsed: reused for the parked target
	*u = url.URL{RawQuery: rec.Query}
	if p, err := url.PathUnescape(rec.Path); err == nil {
		u.Path = p
		if u.EscapedPath() != rec.Path {
			u.RawPath = rec.Path
		}
	} else {
		u.Path = rec.Path
	}
	req.RequestURI = u.RequestURI()
	req.Host = live.Host
	req.RemoteAddr = live.RemoteAddr
	req.TLS = live.TLS
	req.Proto, req.ProtoMajor, req.ProtoMinor = live.Proto, live.ProtoMajor, live.ProtoMinor
	g.replayHeader(req.Header, rec.Header, live.Header)
	if auth := live.Header.Values("Authorization"); rec.Kind == KindReview && len(auth) > 0 {
		// A review runs on a visit of its own client, whose credentials
		// (checked to be the parked request's user and session) the
		// application's chain checks again, as it does the cookies.
		req.Header["Authorization"] = append([]string(nil), auth...)
	}
	req.ContentLength = int64(len(rec.Body))
	// Body and GetBody as http.NewRequest makes them for a bytes.Reader.
	if body := rec.Body; len(body) > 0 {
		run.body.Reset(body)
		req.Body = &run.body
		req.GetBody = func() (io.ReadCloser, error) { return newBodyReader(body), nil }
	} else {
		req.Body = http.NoBody
		req.GetBody = func() (io.ReadCloser, error) { return http.NoBody, nil }
	}
	return req
}

// replayHeader fills h, the replayed request's empty header, with the
// parked header (what keepHeaders kept: the allow-listed headers and those
// the rule's header attributes read; never one that is not replayable),
// then the live request's User-Agent (when it has one), cookies and
// forwarding headers, each replacing a kept one of its name; every value in
// one allocation.
func (g *Guard) replayHeader(h, parked, live http.Header) {
	ua, cookies := live.Get("User-Agent"), live.Values("Cookie")
	n := len(cookies) + 1 // the User-Agent
	for k, vs := range parked {
		if replayable(k) {
			n += len(vs)
		}
	}
	for k, vs := range live {
		if forwardingHeader(k) {
			n += len(vs)
		}
	}
	all := make(headerValues, 0, n)
	for k, vs := range parked {
		if replayable(k) {
			h[k] = all.copyOf(vs)
		}
	}
	if ua != "" {
		h["User-Agent"] = all.copyOf([]string{ua})
	}
	if c := all.copyOf(cookies); c != nil {
		h["Cookie"] = c
	}
	for k, vs := range live {
		if forwardingHeader(k) {
			h[k] = all.copyOf(vs)
		}
	}
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
	var h http.Header // none when the answer has neither
	for _, k := range [...]string{"Content-Type", "Location"} {
		if v := cw.Header().Get(k); v != "" {
			if h == nil {
				h = make(http.Header, 2)
			}
			h[k] = []string{v}
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
