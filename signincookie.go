package stepup

import (
	"encoding/json"
	"net/http"
	"slices"
	"time"

	"github.com/gorilla/sessions"
)

// The sign-in cookie: next to the guard's session cookie, a cookie of
// its own, sealed like it, which carries what must survive the login that
// replaces the application's session, and which no other user's request
// can read: the pending sign-in of this browser, and the users who signed
// in from it.
const (
	signInCookieSuffix = "-signin"
	signInValueKey     = "stepup-signin" // its value in a gorilla session, with neither CookieKeys nor a CookieStore
	maxKnownUsers      = 4               // users remembered as having signed in from one browser
	knownBrowserTTL    = 30 * 24 * time.Hour
)

// signInState is the sign-in cookie of one request.
type signInState struct {
	sess *sessions.Session // through Config.Sessions, without a codec
	data signInData
}

// signInData is what the sign-in cookie holds: ids and user hashes, never
// a user id, a token or a credential.
type signInData struct {
	Pending string   `json:"p,omitempty"` // the pending sign-in's record id
	Until   int64    `json:"u,omitempty"` // when it expires (unix seconds)
	Done    bool     `json:"d,omitempty"` // it completed here: a refresh of its callback goes to Next
	Browser string   `json:"b,omitempty"` // this browser's random id, the bucket of its sign-in challenges
	Known   []string `json:"k,omitempty"` // hashes of the users who signed in from this browser (appendUserHash), newest last
}

func (sc *signInState) knows(user string) bool {
	if sc.data.Browser == "" {
		return false
	}
	var buf [16]byte
	return slices.Contains(sc.data.Known, string(appendUserHash(buf[:0], user)))
}

// signedIn remembers that user signed in from this browser.
func (sc *signInState) signedIn(user string) {
	if sc.data.Browser == "" {
		sc.data.Browser = newID()
	}
	uh := string(appendUserHash(nil, user))
	sc.data.Known = slices.DeleteFunc(sc.data.Known, func(k string) bool { return k == uh })
	sc.data.Known = append(sc.data.Known, uh)
	if n := len(sc.data.Known); n > maxKnownUsers {
		sc.data.Known = sc.data.Known[n-maxKnownUsers:]
	}
}

// loadSignIn reads the sign-in cookie; one that does not open or decode
// is an empty one, as is a pending sign-in past its expiry.
func (g *Guard) loadSignIn(r *http.Request) *signInState {
	sc := &signInState{}
	var raw []byte
	ok := false
	if g.signIn.codec != nil {
		if v, found := cookieValue(r, g.signIn.cookie); found {
			raw, ok = g.signIn.codec.open(v, g.now())
		}
	} else {
		sess, err := g.cfg.Sessions.Get(r, g.signIn.cookie)
		if sess == nil {
			sess = sessions.NewSession(g.cfg.Sessions, g.signIn.cookie)
		}
		sc.sess = sess
		if err == nil {
			raw, ok = sess.Values[signInValueKey].([]byte)
		}
	}
	if ok && (len(raw) > 2048 || json.Unmarshal(raw, &sc.data) != nil ||
		(sc.data.Pending != "" && !validID(sc.data.Pending)) || len(sc.data.Known) > maxKnownUsers) {
		sc.data = signInData{}
	}
	if sc.data.Pending != "" && sc.data.Until <= g.now().Unix() {
		sc.data.Pending, sc.data.Until, sc.data.Done = "", 0, false
	}
	return sc
}

// saveSignIn writes the sign-in cookie, for as long as what it holds
// lasts: the pending sign-in, or knownBrowserTTL once a user signed in.
func (g *Guard) saveSignIn(w http.ResponseWriter, r *http.Request, sc *signInState) error {
	now := g.now()
	until := time.Unix(sc.data.Until, 0)
	if len(sc.data.Known) > 0 {
		until = now.Add(knownBrowserTTL)
	}
	maxAge := -1
	var raw []byte
	if until.After(now) {
		maxAge = int(until.Sub(now) / time.Second)
		var err error
		if raw, err = json.Marshal(&sc.data); err != nil {
			return err
		}
	}
	opts := g.sessionOptions(maxAge)
	if g.signIn.codec != nil {
		v := ""
		if raw != nil {
			var err error
			if v, err = g.signIn.codec.seal(raw, until); err != nil {
				return err
			}
		}
		http.SetCookie(w, sessions.NewCookie(g.signIn.cookie, v, opts))
		return nil
	}
	// loadSignIn gave sc its session: through Config.Sessions it always does.
	if raw == nil {
		delete(sc.sess.Values, signInValueKey)
	} else {
		sc.sess.Values[signInValueKey] = raw
	}
	sc.sess.Options = opts
	return sc.sess.Save(r, w)
}
