package stepup

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/stepupkit/stepup/authsignal"
)

// TokenHeader is the request header an API client uses to resend a
// request together with the token of the challenge it completed.
const TokenHeader = "Step-Up-Token"

// usePassOrGrant lets a request through on a GET pass or a Remember
// grant, consuming the pass in the store, and says which; "" means neither.
// A pass opens only the request that presents what the parked GET's rules
// judged (body is the request's buffered body); its attributes are then
// returned (a grant carries none).
func (g *Guard) usePassOrGrant(r *http.Request, st *sessionState, rl *rule, user string, body []byte) (How, map[string]any) {
	ctx := r.Context()
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		for _, p := range st.data.Passes {
			if p.Action != rl.Action {
				continue
			}
			rec, err := g.cfg.Store.Get(ctx, p.ID)
			if err != nil || rec.Kind != KindPass || rec.Consumed || rec.UserID != user || rec.Action != rl.Action ||
				rec.Path != r.URL.EscapedPath() || rec.Query != r.URL.RawQuery {
				continue
			}
			attrs, e := rl.judge(r, body, rec.Judged)
			if e != nil {
				continue // not the GET that was judged: no pass for it; it is judged afresh
			}
			if _, err := g.cfg.Store.Consume(ctx, p.ID); err != nil {
				continue
			}
			st.removePass(p.ID)
			return HowPass, attrs
		}
	}
	if rl.Remember > 0 {
		now := g.now()
		for _, gr := range st.data.Grants {
			if gr.Action != rl.Action {
				continue
			}
			if !isGrantSlot(gr.ID) {
				continue
			}
			rec, err := g.cfg.Store.Get(ctx, gr.ID)
			if err == nil && liveGrant(rec, user, rl.Action, gr.Expires, now) && rl.methods.accepts(rec.VerificationMethod) {
				// Per user and action, whatever the request: see SECURITY.md.
				return HowRemembered, nil
			}
		}
	}
	return "", nil
}

// redeemToken accepts an API retry that carries the token of a completed
// challenge: validated, bound to the recorded challenge, spent once. It
// returns the request to serve, with its verification.
func (g *Guard) redeemToken(w http.ResponseWriter, r *http.Request, rl *rule, user, token string) (*http.Request, *Error) {
	body, e := g.readBody(r)
	if e != nil {
		return nil, e
	}
	rec, e := g.validate(r, user, rl.Action, token, prefetched{})
	if e != nil {
		return nil, e
	}
	if !rl.methods.accepts(rec.VerificationMethod) {
		return nil, errWrongMethod(rec.VerificationMethod, rl.Methods) // the policy that runs it now
	}
	h := sha256.Sum256(body)
	if rec.Kind != KindAPI || rec.Method != r.Method || rec.Path != r.URL.EscapedPath() || rec.Query != r.URL.RawQuery ||
		!bytes.Equal(rec.BodyHash, h[:]) {
		return nil, errStepUpFailed(errors.New("retry differs from the challenged request"))
	}
	// The attributes read from the retry, only when they (and every other
	// input the rules read) are what the challenged request presented.
	attrs, e := rl.judge(r, body, rec.Judged)
	if e != nil {
		return nil, e
	}
	if e := g.spend(r.Context(), rec, token); e != nil {
		return nil, e
	}
	st := g.loadSession(r, user)
	g.grant(r.Context(), st, rec)
	g.passed(r, st, rec)
	_ = g.saveSession(w, r, st) // API clients may keep no cookies; the grant and the mark are then simply not kept
	return verified(r, rl.Action, user, HowToken, attrs, hasBody(r), body), nil
}

// prefetched is what a caller of validate read from the Store already:
// the record it expects the token to name (park), and, when usedRead,
// whether the token's spent mark was there (used).
type prefetched struct {
	park     *Record
	usedRead bool
	used     bool
}

// validate asks the provider about token and checks every binding against
// the record the token's idempotency key names: pre.park, when the caller
// read it already (the park of a callback), else read now. It does not
// spend anything: a record read before the provider answered may have been
// consumed since, which the spend's Consume finds, atomically.
func (g *Guard) validate(r *http.Request, user, action, token string, pre prefetched) (*Record, *Error) {
	if len(token) > 8192 {
		return nil, errStepUpFailed(errors.New("token too long"))
	}
	used := pre.used
	if !pre.usedRead {
		_, err := g.cfg.Store.Get(r.Context(), usedID(token))
		if err != nil && !errors.Is(err, ErrNotFound) {
			return nil, errBusy(err)
		}
		used = err == nil
	}
	if used {
		return nil, errUsed()
	}
	sctx, end := g.startStep(r.Context(), &Step{Name: StepValidate, Action: action})
	ctx, cancel := context.WithTimeout(sctx, g.cfg.ProviderTimeout)
	vr, err := g.cfg.Provider.Validate(ctx, authsignal.ValidateRequest{Token: token, UserID: user, Action: action})
	cancel()
	end(err)
	if err != nil {
		if e := g.misconfiguredProvider(err); e != nil {
			return nil, e
		}
		return nil, providerError(err)
	}
	if vr == nil || !vr.IsValid || vr.State != authsignal.StateChallengeSucceeded ||
		vr.UserID != user || vr.Action != action || vr.IdempotencyKey == "" {
		return nil, errStepUpFailed(fmt.Errorf("validate: valid=%t state=%q", vr != nil && vr.IsValid, stateOf(vr)))
	}
	rec, err := pre.park, error(nil)
	if rec == nil || rec.ID != vr.IdempotencyKey {
		rec, err = g.cfg.Store.Get(r.Context(), vr.IdempotencyKey)
	}
	switch {
	case errors.Is(err, ErrNotFound):
		return nil, errStepUpFailed(errors.New("no challenge recorded for this token"))
	case err != nil:
		return nil, errBusy(err)
	case rec.Consumed:
		return nil, errUsed()
	case rec.UserID != user || rec.Action != action || rec.ID != vr.IdempotencyKey:
		return nil, errStepUpFailed(errors.New("token bound to another challenge"))
	case rec.wasShown(token):
		return nil, errStepUpFailed(errors.New("token handed out with the challenge, not earned by it"))
	case !rec.Methods.accepts(vr.VerificationMethod):
		// A proof of this very challenge, made the wrong way: refused,
		// nothing spent (methods.go; SECURITY.md, threat 27).
		return nil, errWrongMethod(vr.VerificationMethod, rec.Methods.Names())
	}
	rec.VerificationMethod = keptMethod(vr.VerificationMethod) // this copy only: records are never rewritten
	return rec, nil
}

// spend records the token as used and consumes the record, in the store
// (one step with a Spender): of concurrent attempts exactly one gets
// through, the one whose Consume takes the park.
func (g *Guard) spend(ctx context.Context, rec *Record, token string) *Error {
	now := g.now()
	_, err := g.records.Spend(ctx, &Record{ID: usedID(token), Kind: KindUsed, Created: now,
		Expires: now.Add(g.cfg.ParkTTL + time.Minute), Park: rec.ID}, rec.ID)
	switch {
	case errors.Is(err, ErrExists) || errors.Is(err, ErrConsumed) || errors.Is(err, ErrNotFound):
		return errUsed()
	case err != nil:
		// Nothing spent that counts: the park stays pending for another
		// try, or was consumed and is refused as used. The token is given
		// back in either case (a write that failed only on its way back is
		// undone): the park's Consume, not this record, is what lets
		// exactly one attempt through.
		_ = g.cfg.Store.Delete(ctx, usedID(token))
		return errBusy(err)
	}
	return nil
}

// shownTokens hashes the tokens a track response hands out with the
// challenge: its token (meant for client SDKs) and every value in the
// challenge URL's query, which holds a token that whoever opens the page
// can read. They name the action, so the provider calls them valid once
// the challenge succeeded, but they prove nothing about who completed it:
// they never redeem the park.
func shownTokens(resp *authsignal.TrackResponse) [][]byte {
	var out [][]byte
	add := func(tok string) {
		if tok == "" || len(out) == maxShown {
			return
		}
		h := shownHash(tok)
		for _, o := range out {
			if bytes.Equal(o, h[:]) {
				return
			}
		}
		out = append(out, h[:])
	}
	add(resp.Token)
	if u, err := url.Parse(resp.URL); err == nil {
		// Every value of its query, as url.Values would hold them, without
		// the map; a value in a pair url.ParseQuery would drop (a bad key, a
		// ';') counts as shown too.
		for q := u.RawQuery; q != ""; {
			var pair string
			pair, q, _ = strings.Cut(q, "&")
			_, v, _ := strings.Cut(pair, "=")
			if v, err := url.QueryUnescape(v); err == nil {
				add(v)
			}
		}
	}
	return out
}

// shownHash is what a record keeps of a token the track handed out:
// SHA-256("stepup-shown\x00" + token), hashed without an allocation for
// tokens of up to hashBuffer bytes.
func shownHash(token string) [sha256.Size]byte {
	var buf [hashBuffer]byte
	return sha256.Sum256(append(append(buf[:0], "stepup-shown\x00"...), token...))
}

// wasShown reports whether token is one the track response handed out.
func (r *Record) wasShown(token string) bool {
	h := shownHash(token)
	found := 0
	for _, s := range r.Shown {
		found |= subtle.ConstantTimeCompare(s, h[:])
	}
	return found == 1
}

func stateOf(vr *authsignal.ValidateResponse) authsignal.State {
	if vr == nil {
		return ""
	}
	return vr.State
}
