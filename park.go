package stepup

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/stepupkit/stepup/authsignal"
)

// PreserveBody lets middleware that reads the request body (a CSRF check
// reading a form field, say) run before the guard: it records up to
// MaxBodyBytes of what they read, so the guard parks the exact bytes. Put
// it outermost. Without it the guard refuses with ErrBodyConsumed rather
// than park a body it no longer has.
func (g *Guard) PreserveBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, kept := r.Body.(*preservedBody); kept || r.Body == nil || r.Body == http.NoBody {
			next.ServeHTTP(w, r)
			return
		}
		r2 := r.WithContext(r.Context())
		r2.Body = &preservedBody{rc: r.Body, limit: g.cfg.MaxBodyBytes}
		next.ServeHTTP(w, r2)
	})
}

// preservedBody records what earlier middleware reads of a body, so the
// guard can still park the exact bytes. See PreserveBody.
type preservedBody struct {
	rc    io.ReadCloser
	buf   []byte
	limit int64
	over  bool
}

func (p *preservedBody) Read(b []byte) (int, error) {
	n, err := p.rc.Read(b)
	if n > 0 && !p.over {
		if int64(len(p.buf)+n) > p.limit {
			p.over = true
			p.buf = nil
		} else {
			p.buf = append(p.buf, b[:n]...)
		}
	}
	return n, err
}

func (p *preservedBody) Close() error { return p.rc.Close() }

// readBody buffers a protected request's body up to MaxBodyBytes.
func (g *Guard) readBody(r *http.Request) ([]byte, *Error) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	if ct := r.Header.Get("Content-Type"); mayBeMultipart(ct) && isMultipart(ct) {
		return nil, refusal(http.StatusUnsupportedMediaType, "unsupported_body",
			"File uploads cannot be held while you verify. Verify first, then upload again.", ErrUnsupportedBody)
	}
	if ce := r.Header.Get("Content-Encoding"); ce != "" && !strings.EqualFold(ce, "identity") {
		return nil, refusal(http.StatusUnsupportedMediaType, "unsupported_body",
			"Compressed request bodies are not accepted here.", ErrUnsupportedBody)
	}
	tooLarge := &g.tooLarge
	if r.ContentLength > g.cfg.MaxBodyBytes {
		return nil, tooLarge
	}
	var prefix []byte
	src := io.Reader(r.Body)
	if pb, ok := r.Body.(*preservedBody); ok {
		if pb.over {
			return nil, tooLarge
		}
		prefix = pb.buf
		src = pb.rc
	} else if r.PostForm != nil || r.MultipartForm != nil {
		return nil, internalError(ErrBodyConsumed)
	}
	rest, err := readAtMost(src, g.cfg.MaxBodyBytes+1-int64(len(prefix)), r.ContentLength)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, tooLarge
		}
		return nil, refusal(http.StatusBadRequest, "bad_request", "The request body could not be read.", fmt.Errorf("%w: %w", ErrBadRequest, err))
	}
	body := rest
	if len(prefix) > 0 {
		body = append(prefix[:len(prefix):len(prefix)], rest...)
	}
	if int64(len(body)) > g.cfg.MaxBodyBytes {
		return nil, tooLarge
	}
	return body, nil
}

// mayBeMultipart reports whether ct mentions multipart at all, without
// allocating; only then is it parsed.
func mayBeMultipart(ct string) bool {
	for i := 0; i+len("multipart") <= len(ct); i++ {
		if strings.EqualFold(ct[i:i+len("multipart")], "multipart") {
			return true
		}
	}
	return false
}

func isMultipart(ct string) bool {
	mt, _, _ := mime.ParseMediaType(ct)
	return strings.HasPrefix(mt, "multipart/")
}

// readAtMost reads src until EOF or limit bytes, into one buffer sized
// from the announced length when there is one (never beyond limit).
func readAtMost(src io.Reader, limit, announced int64) ([]byte, error) {
	size := int64(512)
	if announced >= 0 {
		size = announced + 1 // room to see EOF without growing
	}
	buf := make([]byte, 0, min(size, limit))
	for int64(len(buf)) < limit {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)] // grow
		}
		n, err := src.Read(buf[len(buf):int(min(int64(cap(buf)), limit))])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
	return buf, nil
}

func hasBody(r *http.Request) bool { return r.Body != nil && r.Body != http.NoBody }

// bodyReader is a buffered body handed to the handler: a reader and its
// no-op Close in one allocation.
type bodyReader struct{ bytes.Reader }

func (*bodyReader) Close() error { return nil }

func newBodyReader(body []byte) io.ReadCloser {
	b := &bodyReader{}
	b.Reset(body)
	return b
}

var defaultReplayHeaders = []string{
	"Content-Type", "Accept", "Accept-Language", "Origin", "Referer",
	"Sec-Fetch-Site", "Sec-Fetch-Mode", "Sec-Fetch-Dest", "Sec-Fetch-User",
	"X-Requested-With", "X-CSRF-Token", "X-XSRF-Token", "Idempotency-Key",
}

var neverReplay = map[string]bool{
	"Authorization": true, "Proxy-Authorization": true, "Cookie": true, "Host": true,
	"Content-Length": true, "Transfer-Encoding": true, "Content-Encoding": true, "Connection": true,
	"Keep-Alive": true, "Te": true, "Trailer": true, "Upgrade": true, "Proxy-Connection": true,
	"Forwarded": true, "X-Real-Ip": true, "X-Http-Method-Override": true, "X-Http-Method": true,
	"X-Method-Override": true, "X-Original-Url": true, "X-Rewrite-Url": true, "X-Url-Scheme": true, TokenHeader: true,
}

// checkHeaders refuses with 431 a request whose headers keepHeaders would
// park for rl (the allow-listed ones and those its header attributes read,
// every value of each: the replay shows the handler what the original
// request showed it) are over MaxHeaderValues or MaxHeaderBytes.
func (g *Guard) checkHeaders(h http.Header, rl *rule) *Error {
	values, size := 0, 0
	for k, vs := range h {
		if !g.parks(rl, k) {
			continue
		}
		values += len(vs)
		for _, v := range vs {
			size += len(k) + len(v)
		}
		if values > g.cfg.MaxHeaderValues || size > g.cfg.MaxHeaderBytes {
			return refusal(http.StatusRequestHeaderFieldsTooLarge, "headers_too_large",
				"This request carries more headers than can be held while you verify.",
				fmt.Errorf("%w: over %d values or %d bytes", ErrHeaderTooLarge, g.cfg.MaxHeaderValues, g.cfg.MaxHeaderBytes))
		}
	}
	return nil
}

// keeps reports whether a header of name k is parked and replayed: on the
// allow-list, and not one that is never replayed.
func (g *Guard) keeps(k string) bool { return g.replayHeaders[k] && !neverReplay[k] }

// parks reports whether a header of name k is parked for a request rl
// protects: one the guard keeps, or one a header attribute of rl reads,
// so that the replay presents what was judged. Headers that are never
// replayed, and forwarding headers (the live request's), are not parked
// even then: a replay of a request judged on them is refused.
func (g *Guard) parks(rl *rule, k string) bool {
	return g.keeps(k) || rl.readsHeader(k) && replayable(k)
}

// replayable reports whether a parked header of name k may be replayed:
// not one that is never replayed, nor a forwarding header (the replay
// takes those from the live request, as it takes its User-Agent when it
// has one).
func replayable(k string) bool { return !neverReplay[k] && !forwardingHeader(k) }

// keepHeaders is the part of h parked for rl (see parks): a map sized
// once, every value in one allocation.
func (g *Guard) keepHeaders(h http.Header, rl *rule) http.Header {
	keys, values := 0, 0
	for k, vs := range h {
		if g.parks(rl, k) {
			keys++
			values += len(vs)
		}
	}
	out := make(http.Header, keys)
	all := make(headerValues, 0, values)
	for k, vs := range h {
		if g.parks(rl, k) {
			out[k] = all.copyOf(vs)
		}
	}
	return out
}

// headerValues hands out copies of header values from one backing array,
// allocated with room for them all.
type headerValues []string

// copyOf copies vs as append([]string(nil), vs...) would (nil when
// empty), capped so that appending to the copy never writes into the next.
func (a *headerValues) copyOf(vs []string) []string {
	if len(vs) == 0 {
		return nil
	}
	start := len(*a)
	*a = append(*a, vs...)
	return (*a)[start:len(*a):len(*a)]
}

// park keeps the request server-side under parkID, for the callback
// (browser navigations: body and the headers parks names) or for the token
// retry (API requests: the body's hash), with the digest of what the rules
// judged: custom, as sent to the provider, and the headers (see judged).
func (g *Guard) park(r *http.Request, rl *rule, user, parkID string, shown [][]byte, body []byte,
	custom map[string]any) (*Record, *Error) {
	digest, err := judged(rl, custom, r.Header)
	if err != nil {
		return nil, internalError(err)
	}
	now := g.now()
	rec := &Record{
		ID: parkID, Kind: KindPark, UserID: user, Action: rl.Action, Method: r.Method,
		Path: r.URL.EscapedPath(), Query: r.URL.RawQuery, Remember: rl.Remember, Shown: shown, Judged: digest,
		Methods: rl.methods, Created: now, Expires: now.Add(g.cfg.ParkTTL),
	}
	if !safePath(rec.Path) || !safeQuery(rec.Query) {
		return nil, errUnresumable()
	}
	if g.cfg.IsAPI(r) {
		rec.Kind = KindAPI
		h := sha256.Sum256(body)
		rec.BodyHash = h[:]
	} else {
		rec.Body = body
		rec.Header = g.keepHeaders(r.Header, rl)
	}
	step := &Step{Name: StepPark, Action: rl.Action}
	ctx, end := g.startStep(r.Context(), step)
	rec.Trace = step.Trace
	err = g.cfg.Store.Put(ctx, rec)
	end(err)
	if err != nil {
		return nil, errBusy(err)
	}
	return rec, nil
}

// challenge answers a parked request with its challenge: a 401 with the
// challenge URL for an API request, a 303 to it for a browser, whose
// session then holds the park id.
func (g *Guard) challenge(w http.ResponseWriter, r *http.Request, rec *Record, challengeURL string, st *sessionState,
	display []DisplayValue) *Error {
	if rec.Kind == KindAPI {
		if st != nil && g.cfg.SessionID == nil {
			// Keep the id the per-session cap counts this challenge by.
			st.opened(rec.Expires)
			_ = g.saveSession(w, r, st) // API clients may keep no cookies; the per-user cap still holds
		}
		w.Header().Set("Cache-Control", "no-store")
		g.writeAPIChallenge(w, rec.Action, challengeURL, rec.Methods.Names(), display)
		return nil
	}
	var page []byte
	if g.cfg.ConfirmPage != nil && len(display) > 0 {
		var e *Error
		if page, e = g.renderConfirm(rec.Action, challengeURL, display); e != nil {
			_ = g.cfg.Store.Delete(r.Context(), rec.ID)
			return e
		}
	}
	if st == nil {
		st = g.loadSession(r, rec.UserID)
	}
	st.addPark(rec.ID, rec.Expires, g.cfg.MaxPending)
	if g.cfg.SessionID == nil {
		st.opened(rec.Expires)
	}
	if err := g.saveSession(w, r, st); err != nil {
		_ = g.cfg.Store.Delete(r.Context(), rec.ID)
		return internalError(err)
	}
	if page != nil {
		writeConfirm(w, page) // the user sees what they approve, then follows the link
		return nil
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Location", challengeURL)
	w.WriteHeader(http.StatusSeeOther)
	return nil
}

// openChallenge parks the request under parkID and answers with the
// challenge at resp.URL (a 303 for a browser, the 401 for an API client),
// keeping the slot reserved for it; an unenrolled user sent to enrol takes
// the same path. st is the guard's session when already loaded, sid the
// session the slot was reserved for.
func (g *Guard) openChallenge(w http.ResponseWriter, r *http.Request, rl *rule, user, parkID string,
	resp *authsignal.TrackResponse, body []byte, custom map[string]any, st *sessionState, sid string, slot Slot, ev *Event) *Error {
	ctx := r.Context()
	if st == nil && g.cfg.SessionID == nil {
		st = g.loadSession(r, user)
	}
	if st != nil && g.cfg.SessionID == nil && st.data.ID == "" {
		// The id the slot was reserved for: the session gets it now.
		st.data.ID, st.dirty = sid, true
	}
	e := rl.checkAllowed(resp) // no accepted method available: nothing to park
	var rec *Record
	if e == nil {
		rec, e = g.park(r, rl, user, parkID, shownTokens(resp), body, custom)
	}
	if e == nil {
		kind := "browser"
		if rec.Kind == KindAPI {
			kind = "api"
		}
		if resp.State == authsignal.StateAllow {
			kind = "enroll-" + kind // ALLOW for an unenrolled user: the challenge is the enrolment
		}
		g.emit(ctx, *ev, EventChallenge, kind)
		e = g.challenge(w, r, rec, resp.URL, st, rl.display(custom))
	}
	if e != nil {
		_ = g.limiter.Release(ctx, slot)
		return e
	}
	if sid == "" && st != nil && st.data.ID != "" {
		// The session id made for this challenge; should the counter
		// fail now, the challenge still counts for its user.
		_ = g.limiter.Attach(ctx, slot, st.data.ID)
	}
	return nil
}

// writeAPIChallenge writes the 401 that sends an API client to the
// challenge at challengeURL for action: with "methods" when the action
// accepts only some, and "display" when it shows the user values.
func (g *Guard) writeAPIChallenge(w http.ResponseWriter, action, challengeURL string, methods []string, display []DisplayValue) {
	w.Header().Set("WWW-Authenticate", fmt.Sprintf(
		`Bearer error="insufficient_user_authentication", error_description="Step-up authentication is required for %s", acr_values="%s"`,
		action, action))
	body := map[string]any{
		"error":       "insufficient_user_authentication",
		"message":     "This action needs an extra verification. Complete the challenge at url, then resend the request with the token in the " + TokenHeader + " header.",
		"action":      action,
		"url":         challengeURL,
		"tokenHeader": TokenHeader,
		"expiresIn":   int(g.cfg.ParkTTL / time.Second),
	}
	if len(methods) > 0 {
		body["methods"] = methods
	}
	if d := displayJSON(display); d != nil {
		body["display"] = d
	}
	writeJSON(w, http.StatusUnauthorized, body)
}

// errUnresumable refuses a request whose target a Location header could not
// carry back (a raw query with bytes outside printable ASCII, say): it
// could not be parked and resumed.
func errUnresumable() *Error {
	return refusal(http.StatusBadRequest, "bad_request", "This address cannot be verified and resumed.", ErrBadRequest)
}
