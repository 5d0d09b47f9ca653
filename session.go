package stepup

import (
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/textproto"
	"strings"
	"time"

	"github.com/gorilla/sessions"
)

// What the guard keeps in its session: ids and expiry times only. Parked
// bodies, grants and passes live in the Store, where a client cannot roll
// them back; the cookie only says which of them belong to this browser.
// The data is encoded compactly (sessioncodec.go): 29 bytes a park, 29
// plus the action code a grant or pass. With the default MaxPending (5)
// even 16 grants and 5 passes of 64-character action codes (2.1 KB) stay
// under securecookie's 4096 bytes once encrypted and encoded (about
// 1.8x); with MaxPending 20 and such codes they would not. With
// CookieKeys the value is 4/3 of (the data + 37 bytes): even that largest
// session (2.6 KB) seals to 3.5 KB (TestCookieKeysLargestSessionFits). A
// cookie that cannot be saved refuses the park (500) rather than lose it
// (TestUnsavableSessionRefusesToPark).
//
// The guard seals its cookie itself in two cases (cookieCodec): with
// Config.CookieKeys, with AES-256-GCM under keys derived from them
// (cookie.go); else with a gorilla CookieStore, through copies of the
// store's own codecs (the same hash and block keys, so the same HMAC and
// encryption) whose serializer passes these bytes through: no gob, no
// gorilla map (sessioncodec.go). With any other gorilla Store (filesystem,
// Redis, a wrapper) the bytes go into the gorilla session under
// sessionKey and the Store keeps them its way.
const sessionKey = "stepup"

const (
	maxGrants = 16 // distinct remembered actions per session
	maxPasses = 5  // GET passes waiting to be used
)

type sessionData struct {
	User        string    // hash of the user id the data belongs to
	ID          string    // the session id MaxChallengesPerSession counts by, without Config.SessionID
	Open        int64     // unix seconds until which the last challenge counts against ID
	Established int64     // unix seconds until which the session is established for User (establish)
	Parks       []parkRef // oldest first
	Grants      []grantRef
	Passes      []grantRef
}

type parkRef struct {
	ID      string
	Expires int64 // unix seconds
	Done    bool
}

type grantRef struct {
	ID      string
	Action  string
	Expires int64
}

// sessionState is the guard's view of one request's session.
type sessionState struct {
	sess  *sessions.Session
	data  sessionData
	dirty bool
	stale []string // store ids to delete after a user change or eviction
}

// appendUserHash appends the hash of userID that the session data is
// bound to (16 bytes) to b; with room in b (and a user id of up to 52
// bytes) it allocates nothing, so that a request of the session's own
// user costs no string.
func appendUserHash(b []byte, userID string) []byte {
	var in [64]byte
	h := sha256.Sum256(append(append(in[:0], "stepup-user\x00"...), userID...))
	return base64.RawURLEncoding.AppendEncode(b, h[:12])
}

// loadSession reads the guard's session for userID. A session that cannot
// be decoded (tampered, rotated keys, garbage) is treated as empty: the
// request then simply has no parks, grants or passes. Data that belongs to
// another user is dropped and its store records queued for deletion.
func (g *Guard) loadSession(r *http.Request, userID string) *sessionState {
	st := &sessionState{}
	if raw, ok := g.readSession(r, st); ok && decodeSession(raw, &st.data) != nil {
		st.data = sessionData{}
		st.dirty = true
	}
	var buf [16]byte
	uh := appendUserHash(buf[:0], userID)
	if st.data.User != string(uh) {
		if st.data.User != "" {
			st.stale = append(st.stale, st.allIDs()...)
		}
		st.data = sessionData{User: string(uh)}
		st.dirty = true
	}
	st.prune(g.now())
	return st
}

// readSession returns the encoded session data of r, and false when r
// has none (no cookie, or one that does not open or decode). Without a
// cookie of its own (cookieCodec) it keeps the gorilla session in st for
// saveSession.
func (g *Guard) readSession(r *http.Request, st *sessionState) ([]byte, bool) {
	if g.cookie != nil {
		v, ok := cookieValue(r, g.cfg.SessionName)
		if !ok {
			return nil, false
		}
		return g.cookie.open(v, g.now())
	}
	sess, err := g.cfg.Sessions.Get(r, g.cfg.SessionName)
	if sess == nil {
		sess = sessions.NewSession(g.cfg.Sessions, g.cfg.SessionName)
	}
	st.sess = sess
	if err != nil {
		return nil, false
	}
	raw, ok := sess.Values[sessionKey].([]byte)
	return raw, ok
}

func (st *sessionState) allIDs() []string {
	var ids []string
	for _, p := range st.data.Parks {
		ids = append(ids, p.ID)
	}
	for _, p := range st.data.Grants {
		ids = append(ids, p.ID)
	}
	for _, p := range st.data.Passes {
		ids = append(ids, p.ID)
	}
	return ids
}

// prune drops expired entries; the store forgets them on its own.
func (st *sessionState) prune(now time.Time) {
	t := now.Unix()
	if st.data.Open != 0 && st.data.Open <= t {
		st.data.Open = 0
		st.dirty = true
	}
	keepPark := st.data.Parks[:0]
	for _, p := range st.data.Parks {
		if p.Expires > t {
			keepPark = append(keepPark, p)
		}
	}
	if len(keepPark) != len(st.data.Parks) {
		st.dirty = true
	}
	st.data.Parks = keepPark
	st.data.Grants = pruneGrants(st, st.data.Grants, t)
	st.data.Passes = pruneGrants(st, st.data.Passes, t)
}

func pruneGrants(st *sessionState, gs []grantRef, t int64) []grantRef {
	keep := gs[:0]
	for _, g := range gs {
		if g.Expires > t {
			keep = append(keep, g)
		}
	}
	if len(keep) != len(gs) {
		st.dirty = true
	}
	return keep
}

// id returns the session's id for the per-session challenge cap, making
// one when it has none.
func (st *sessionState) id() string {
	if st.data.ID == "" {
		st.data.ID = newID()
		st.dirty = true
	}
	return st.data.ID
}

// opened records that a challenge counts against the session's id (made
// when it has none) until until, so that the cookie keeps the id as long
// as the per-session cap counts it.
func (st *sessionState) opened(until time.Time) {
	st.id()
	if until.Unix() > st.data.Open {
		st.data.Open = until.Unix()
		st.dirty = true
	}
}

// establishedFor is how long a session stays established after the last
// challenge passed in it: the lifetime of a gorilla CookieStore's
// cookies (securecookie's default MaxAge).
const establishedFor = 30 * 24 * time.Hour

// establish records that a challenge of the session's user was passed in
// it at now: the session is established for establishedFor.
func (st *sessionState) establish(now time.Time) {
	st.data.Established = now.Add(establishedFor).Unix()
	st.dirty = true
}

// established reports whether the session was established for its user
// (see establish) and still is at now. A nil state, a request without
// the guard's cookie, is not. A mark past its time stays in the data
// until the session is written without it; it counts for nothing.
func (st *sessionState) established(now time.Time) bool {
	return st != nil && st.data.Established > now.Unix()
}

// until is when the last thing the session holds expires (unix seconds),
// 0 when it holds nothing.
func (st *sessionState) until() int64 {
	t := max(st.data.Open, st.data.Established)
	for _, p := range st.data.Parks {
		t = max(t, p.Expires)
	}
	for _, gs := range [][]grantRef{st.data.Grants, st.data.Passes} {
		for _, g := range gs {
			t = max(t, g.Expires)
		}
	}
	return t
}

// addPark records a new park, evicting the oldest beyond max.
func (st *sessionState) addPark(id string, expires time.Time, max int) {
	st.data.Parks = append(st.data.Parks, parkRef{ID: id, Expires: expires.Unix()})
	for len(st.data.Parks) > max {
		st.stale = append(st.stale, st.data.Parks[0].ID)
		st.data.Parks = st.data.Parks[1:]
	}
	st.dirty = true
}

func (st *sessionState) park(id string) *parkRef {
	for i := range st.data.Parks {
		if st.data.Parks[i].ID == id {
			return &st.data.Parks[i]
		}
	}
	return nil
}

// addGrant replaces any grant for the same action.
func (st *sessionState) addGrant(id, action string, expires time.Time) {
	st.data.Grants = addRef(st, st.data.Grants, grantRef{ID: id, Action: action, Expires: expires.Unix()}, true, maxGrants)
}

func (st *sessionState) addPass(id, action string, expires time.Time) {
	st.data.Passes = addRef(st, st.data.Passes, grantRef{ID: id, Action: action, Expires: expires.Unix()}, false, maxPasses)
}

func addRef(st *sessionState, refs []grantRef, ref grantRef, unique bool, max int) []grantRef {
	if unique {
		keep := refs[:0]
		for _, r := range refs {
			if r.Action == ref.Action {
				st.stale = append(st.stale, r.ID)
				continue
			}
			keep = append(keep, r)
		}
		refs = keep
	}
	refs = append(refs, ref)
	for len(refs) > max {
		st.stale = append(st.stale, refs[0].ID)
		refs = refs[1:]
	}
	st.dirty = true
	return refs
}

func (st *sessionState) removePass(id string) {
	keep := st.data.Passes[:0]
	for _, p := range st.data.Passes {
		if p.ID != id {
			keep = append(keep, p)
		}
	}
	st.data.Passes = keep
	st.dirty = true
}

// save writes the session when it changed and deletes stale store records.
// It must run before the response is written.
func (g *Guard) saveSession(w http.ResponseWriter, r *http.Request, st *sessionState) error {
	for _, id := range st.stale {
		g.endRecord(r.Context(), id)
	}
	st.stale = nil
	if !st.dirty {
		return nil
	}
	now := g.now().Unix()
	maxAge := -1 // the session holds nothing: delete the cookie
	if t := st.until(); t > now {
		maxAge = int(t - now)
	}
	if err := g.writeSession(w, r, st, encodeSession(&st.data), maxAge); err != nil {
		return err
	}
	st.dirty = false
	return nil
}

// writeSession writes the encoded session data: the guard's own cookie
// with CookieKeys or a CookieStore, sealed for as long as maxAge says,
// else through the gorilla session.
func (g *Guard) writeSession(w http.ResponseWriter, r *http.Request, st *sessionState, raw []byte, maxAge int) error {
	opts := g.sessionOptions(maxAge)
	if g.cookie != nil {
		v, err := g.cookie.seal(raw, g.now().Add(time.Duration(maxAge)*time.Second))
		if err != nil {
			return err
		}
		http.SetCookie(w, sessions.NewCookie(g.cfg.SessionName, v, opts))
		return nil
	}
	if st.sess == nil {
		sess, _ := g.cfg.Sessions.Get(r, g.cfg.SessionName)
		if sess == nil {
			sess = sessions.NewSession(g.cfg.Sessions, g.cfg.SessionName)
		}
		st.sess = sess
	}
	if raw == nil {
		delete(st.sess.Values, sessionKey)
	} else {
		st.sess.Values[sessionKey] = raw
	}
	st.sess.Options = opts
	return st.sess.Save(r, w)
}

// Forget ends every step-up state of the current browser: pending parks
// and passes are deleted from the Store, its Remember grants ended (see
// Revoke for the user's other browsers), and the session is cleared, but
// for the mark that the browser is established for its user (it grants
// nothing; see Config.MaxChallengesPerUser). Call it at logout.
func (g *Guard) Forget(w http.ResponseWriter, r *http.Request) error {
	st := &sessionState{}
	var raw []byte
	ok := false
	if g.cookie != nil {
		raw, ok = g.readSession(r, st)
	} else {
		sess, err := g.cfg.Sessions.Get(r, g.cfg.SessionName)
		if sess == nil {
			return err
		}
		st.sess = sess
		raw, ok = sess.Values[sessionKey].([]byte)
	}
	if ok && decodeSession(raw, &st.data) == nil {
		for _, id := range st.allIDs() {
			g.endRecord(r.Context(), id)
		}
		// The browser stays established for its user: a mark that grants
		// nothing, kept so that the user's next challenges, and sign-ins,
		// from this browser stay out of the bucket fresh clients fill.
		now := g.now().Unix()
		if st.data.Established > now {
			kept := sessionData{User: st.data.User, Established: st.data.Established}
			return g.writeSession(w, r, st, encodeSession(&kept), int(kept.Established-now))
		}
	}
	return g.writeSession(w, r, st, nil, -1)
}

// sessionOptions are the cookie options of the guard's own session,
// whatever the Store's defaults (gorilla's NewCookieStore would otherwise
// send SameSite=None and a 30-day Max-Age): the whole site, not readable
// by scripts, sent on the top-level redirect back from the challenge page
// and not on cross-site subrequests, Secure when the callback is https, and
// kept no longer than what it holds. maxAge < 0 deletes the cookie.
func (g *Guard) sessionOptions(maxAge int) *sessions.Options {
	return &sessions.Options{
		Path:     "/",
		MaxAge:   maxAge,
		Secure:   g.callback.Scheme == "https",
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode,
	}
}

func hasCookie(r *http.Request, name string) bool {
	_, ok := cookieValue(r, name)
	return ok
}

// maxCookies is net/http's cap on the cookies of a request
// (defaultCookieMaxNum), unless GODEBUG httpcookiemaxnum changes it.
const maxCookies = 3000

// cookieValue is r.Cookie(name)'s value, found without net/http's list of
// every cookie: the first cookie called name, in the Cookie headers'
// order, whose value net/http accepts (quotes stripped). name is a valid
// cookie name (New checks it). Past net/http's cap on the number of
// cookies, or with GODEBUG httpcookiemaxnum, it asks r.Cookie.
// FuzzCookieValue holds it to r.Cookie.
func cookieValue(r *http.Request, name string) (string, bool) {
	lines := r.Header["Cookie"]
	n := 0
	for _, line := range lines {
		n += strings.Count(line, ";") + 1
	}
	if n > maxCookies || godebugMaySet("httpcookiemaxnum") {
		c, err := r.Cookie(name)
		if err != nil {
			return "", false
		}
		return c.Value, true
	}
	for _, line := range lines {
		for line != "" {
			var part string
			part, line, _ = strings.Cut(line, ";")
			k, v, _ := strings.Cut(textproto.TrimString(part), "=")
			if textproto.TrimString(k) != name {
				continue
			}
			if len(v) > 1 && v[0] == '"' && v[len(v)-1] == '"' {
				v = v[1 : len(v)-1]
			}
			if validCookieValue(v) {
				return v, true
			}
		}
	}
	return "", false
}

// validCookieValue is net/http's test of a cookie value's bytes.
func validCookieValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if b := v[i]; b < 0x20 || b >= 0x7f || b == '"' || b == ';' || b == '\\' {
			return false
		}
	}
	return true
}
